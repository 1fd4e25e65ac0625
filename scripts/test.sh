#!/usr/bin/env bash
# Bring up what the tests need (scripts/setup.sh), then lint and run the whole test suite.
# Extra arguments go to pytest, e.g. `bash scripts/test.sh -k registry -x`.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"

bash scripts/setup.sh
echo "test: ruff check"
.venv/bin/ruff check jupyter_faas tests bench
# Two pytest processes: Playwright's sync API (tests/browser) and pytest-jupyter's event
# loop clash inside one ("This event loop is already running"). Both always run; the
# script fails when either fails.
echo "test: pytest (everything but tests/browser)"
status=0
.venv/bin/pytest -q --ignore=tests/browser "$@" || status=$?
echo "test: pytest tests/browser (JupyterLab in Chromium)"
browser=0
.venv/bin/pytest -q tests/browser "$@" || browser=$?
# Exit status 5 is "no tests collected": a -k filter that selects no browser test is fine.
if ((browser == 5 && $# > 0)); then
    browser=0
fi
if ((status != 0 || browser != 0)); then
    echo "test: FAILED (pytest exit status $status, browser tests $browser)" >&2
    exit 1
fi
