# A real Terraform stack that needs no provider download and no network: only the built-in terraform_data
# resource. berth persists terraform.tfstate between tasks (see --persist in run.sh).
terraform {
  required_version = ">= 1.4"
}

variable "environment" {
  type    = string
  default = "demo"
}

resource "terraform_data" "network" {
  input = "${var.environment}-network"
}

resource "terraform_data" "app" {
  input            = "${var.environment}-app"
  triggers_replace = [terraform_data.network.id]
}

output "app" {
  value = terraform_data.app.output
}
