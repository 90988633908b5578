#!/usr/bin/env bash
# The path a new user takes: create a stack for this directory and run Terraform through berth, three tasks in a
# row, with terraform.tfstate persisted between them.
#   examples/terraform-stack/run.sh [path/to/berth]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
BERTH=${1:-${BERTH:-$here/../../build/berth}}
STACK=${STACK:-terraform-demo}

if ! docker run --rm --network none berth/runner:latest sh -c 'command -v terraform' >/dev/null 2>&1; then
  echo "run.sh: the runner image has no terraform (the host had no /usr/local/bin/terraform when it was built)" >&2
  exit 2
fi
if ! "$BERTH" stack show "$STACK" >/dev/null 2>&1; then
  "$BERTH" stack create "$STACK" --image berth/runner:latest --project-dir "$here" \
    --init 'terraform init -input=false -no-color' --persist terraform.tfstate --timeout 10m
fi
set -x
"$BERTH" task run "$STACK" -- terraform apply -auto-approve -input=false -no-color
"$BERTH" task run "$STACK" -- terraform state list
"$BERTH" task run "$STACK" -- terraform taint terraform_data.app
"$BERTH" stack state "$STACK"
