#!/usr/bin/env bash
# Bring up everything (scripts/setup.sh), then run the demo. Extra arguments go to the demo.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"

bash scripts/setup.sh
exec .venv/bin/python -m jupyter_faas.demo "$@"
