#!/usr/bin/env bash
# The web UI in a real browser: headless Chromium driven by Selenium (ui_test.py) against a real `berth serve` and
# real tasks on the Docker daemon. Skips (exit 77, one line) when Chromium, chromedriver or Selenium are absent
# (ci/install-deps.sh installs them: chromium chromium-driver python3-selenium).
set -u
here=$(cd "$(dirname "$0")" && pwd)
: "${BERTH:?set BERTH to the berth binary}"
export BERTH BERTH_SRC="${BERTH_SRC:-$here/../..}"
chrome=$(command -v chromium || command -v chromium-browser || command -v google-chrome || true)
driver=$(command -v chromedriver || true)
py=""
for p in python3 /usr/bin/python3; do
  if command -v "$p" >/dev/null && "$p" -c 'import selenium' 2>/dev/null; then
    py=$p
    break
  fi
done
if [ -z "$chrome" ] || [ -z "$driver" ] || [ -z "$py" ]; then
  echo "ui tests skipped: needs chromium, chromedriver and python3-selenium (ci/install-deps.sh)"
  exit 77
fi
if ! docker version >/dev/null 2>&1; then
  echo "ui tests: no Docker daemon answers" >&2
  exit 1
fi
export BERTH_CHROME=$chrome BERTH_CHROMEDRIVER=$driver
exec "$py" "$here/ui_test.py"
