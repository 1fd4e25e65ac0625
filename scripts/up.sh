#!/usr/bin/env bash
# Bring up everything and show the loop: scripts/setup.sh (engine, registry, venv, base
# image), the function server on 127.0.0.1:3233, the demo notebook executed headless in a
# real kernel (capture, build, local test, push, deploy, invoke), then JupyterLab on the
# demo notebook, ready to deploy from the Functions sidebar.
#
#   bash scripts/up.sh            everything, ending in JupyterLab (Ctrl+C stops it)
#   bash scripts/up.sh --no-lab   stop after the headless demo
#   bash scripts/up.sh --hub      JupyterHub instead of the demo: scripts/hub.sh (docs/hub.md)
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
STATE="${FAAS_STATE_DIR:-$REPO/.state}"
API="http://127.0.0.1:3233"
cd "$REPO"

lab=1
hub=0
for arg in "$@"; do
    case "$arg" in
    --no-lab) lab=0 ;;
    --hub) hub=1 ;;
    *) echo "up: unknown option $arg (use --no-lab or --hub)" >&2; exit 2 ;;
    esac
done

bash scripts/setup.sh

# A hub's server limits each namespace (hub/faas_server_config.py); a demo's does not.
serve=(.venv/bin/jupyter faas serve)
[[ $hub == 1 ]] && serve+=(--config hub/faas_server_config.py)
if curl -fsS "$API/api/v1" >/dev/null 2>&1; then
    echo "up: function server: answering on $API"
    [[ $hub == 1 ]] && echo "up:   (started before: restart it with ${serve[*]} for the hub's limits)"
else
    echo "up: function server: starting on $API (log: $STATE/server.log)"
    mkdir -p "$STATE"
    setsid "${serve[@]}" >"$STATE/server.log" 2>&1 </dev/null &
    for _ in $(seq 1 240); do
        curl -fsS "$API/api/v1" >/dev/null 2>&1 && break
        sleep 0.5
    done
    curl -fsS "$API/api/v1" >/dev/null 2>&1 || {
        echo "up: the function server did not start; last lines of $STATE/server.log:" >&2
        tail -n 20 "$STATE/server.log" >&2
        exit 1
    }
fi

if [[ $hub == 1 ]]; then
    exec bash scripts/hub.sh
fi

.venv/bin/python -m jupyter_faas.demo

if [[ $lab == 1 ]]; then
    root=()
    [[ $(id -u) == 0 ]] && root=(--allow-root)
    echo "up: JupyterLab on demo/peaks.ipynb: open the URL below; the λ tab on the left is the"
    echo "up: Functions sidebar, and 'Deploy cell as function' is in the command palette."
    exec .venv/bin/jupyter lab demo/peaks.ipynb --ip=127.0.0.1 --no-browser "${root[@]}"
fi
