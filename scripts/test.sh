#!/usr/bin/env bash
# Bring up what the tests need (scripts/setup.sh), then lint and run the whole test suite.
# Extra arguments go to pytest, e.g. `bash scripts/test.sh -k registry -x`.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
STATE="${FAAS_STATE_DIR:-$REPO/.state}"
cd "$REPO"
mkdir -p "$STATE"
rm -f "$STATE"/junit-*.xml

bash scripts/setup.sh
echo "test: ruff check"
.venv/bin/ruff check jupyter_faas tests bench
# Two pytest processes: Playwright's sync API (tests/browser) and pytest-jupyter's event
# loop clash inside one ("This event loop is already running"). Both always run; the
# script fails when either fails.
echo "test: pytest (everything but tests/browser)"
status=0
.venv/bin/pytest -q --ignore=tests/browser --junitxml="$STATE/junit-main.xml" "$@" || status=$?
echo "test: pytest tests/browser (JupyterLab in Chromium)"
browser=0
.venv/bin/pytest -q tests/browser --junitxml="$STATE/junit-browser.xml" "$@" || browser=$?
# Exit status 5 is "no tests collected": a -k filter that selects no browser test is fine.
if ((browser == 5 && $# > 0)); then
    browser=0
fi
# One closing line for both runs: "test: N passed, N failed, N skipped".
.venv/bin/python - "$STATE"/junit-*.xml <<'PY'
import sys
import xml.etree.ElementTree as ET

total = failed = skipped = 0
for path in sys.argv[1:]:
    for suite in ET.parse(path).getroot().iter("testsuite"):
        total += int(suite.get("tests", 0))
        failed += int(suite.get("failures", 0)) + int(suite.get("errors", 0))
        skipped += int(suite.get("skipped", 0))
print(f"test: {total - failed - skipped} passed, {failed} failed, {skipped} skipped")
PY
if ((status != 0 || browser != 0)); then
    echo "test: FAILED (pytest exit status $status, browser tests $browser)" >&2
    exit 1
fi
