#!/usr/bin/env bash
# Bring up what the tests need (scripts/setup.sh), then lint and run the whole test suite.
# Extra arguments go to pytest, e.g. `bash scripts/test.sh -k registry -x`.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"

bash scripts/setup.sh
echo "test: ruff check"
.venv/bin/ruff check jupyter_faas tests bench
echo "test: pytest"
.venv/bin/pytest -q "$@"
