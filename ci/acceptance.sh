#!/usr/bin/env bash
# Runs the user-level acceptance scripts from ../shared/acceptance against a built berth binary. They live beside
# the project's CI checkout, not in this repository: without them this prints one line and exits 0.
set -uo pipefail
cd "$(dirname "$0")/.."
BERTH=$(cd "$(dirname "${1:-build/berth}")" && pwd)/$(basename "${1:-build/berth}")
export BERTH
dir=${BERTH_ACCEPTANCE_DIR:-../shared/acceptance}
if [ ! -d "$dir" ]; then
  echo "acceptance: $dir not found; skipped"
  exit 0
fi
failed=0
for name in ${BERTH_ACCEPTANCE:-foundation redaction tasks governance server live identity store fleet integrations product ui}; do
  script=$dir/$name.sh
  [ -f "$script" ] || continue
  echo "--- acceptance: $name"
  if ! bash "$script"; then
    failed=1
  fi
done
exit $failed
