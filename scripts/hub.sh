#!/usr/bin/env bash
# JupyterHub for jupyter-faas on this machine, as root: installs JupyterHub and DockerSpawner
# (hub/requirements.txt) into the project's venv and configurable-http-proxy from npm, builds
# the project's wheel and the single-user image FROM the offline base image, then starts the
# hub (hub/jupyterhub_config.py), which starts the faas service, and prints how to log in.
# Needs what scripts/setup.sh makes and a running function server (scripts/up.sh --hub does
# both, then runs this). Every step is skipped when already done.
#
#   bash scripts/hub.sh             prepare, start the hub (in the background), print the URL
#   bash scripts/hub.sh --prepare   packages, proxy, wheel and image only; prints the image
#   bash scripts/hub.sh --stop      stop the hub (users' servers stop with it)
#
# Environment: every FAAS_HUB_* setting of hub/jupyterhub_config.py, and
#   FAAS_STATE_DIR  where logs and state live (default: REPO/.state; the hub's in .state/hub)
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
STATE="${FAAS_STATE_DIR:-$REPO/.state}"
export FAAS_HUB_STATE="${FAAS_HUB_STATE:-$STATE/hub}"
HUB_STATE="$FAAS_HUB_STATE"
VENV="$REPO/.venv"
PROXY_VERSION="5.3.0"
IP="${FAAS_HUB_IP:-127.0.0.1}"
PORT="${FAAS_HUB_PORT:-8000}"
URL="http://$IP:$PORT"
# Node (npm) reaches its registry through this machine's TLS settings.
if [[ -z ${NODE_EXTRA_CA_CERTS:-} && -f /etc/ssl/certs/ca-certificates.crt ]]; then
    export NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt
fi

say() { printf 'hub: %s\n' "$*" >&2; }
die() {
    printf 'hub: ERROR: %s\n' "$*" >&2
    exit 1
}

hub_pid() {
    local pid
    pid="$(cat "$HUB_STATE/jupyterhub.pid" 2>/dev/null || true)"
    [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null && echo "$pid"
}

ensure_packages() {
    local stamp="$HUB_STATE/.packages" want
    want="$(sha256sum "$REPO/hub/requirements.txt" | cut -d' ' -f1)"
    if [[ -f $stamp && "$(cat "$stamp")" == "$want" ]] && "$VENV/bin/python" -c 'import jupyterhub, dockerspawner' 2>/dev/null; then
        say "packages: JupyterHub and DockerSpawner present"
        return
    fi
    say "packages: pip install -r hub/requirements.txt"
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check -r "$REPO/hub/requirements.txt"
    printf '%s\n' "$want" >"$stamp"
}

ensure_proxy() {
    local bin="$HUB_STATE/node_modules/.bin/configurable-http-proxy"
    if [[ -x $bin && "$("$bin" --version 2>/dev/null)" == "$PROXY_VERSION" ]]; then
        say "proxy: configurable-http-proxy $PROXY_VERSION present"
        return
    fi
    command -v npm >/dev/null 2>&1 || die "npm is not on PATH: install Node.js 18 or newer with npm."
    say "proxy: npm install configurable-http-proxy@$PROXY_VERSION"
    npm install --prefix "$HUB_STATE" --no-audit --no-fund --loglevel=error --no-save \
        "configurable-http-proxy@$PROXY_VERSION" >/dev/null
}

# The project's wheel (with the JupyterLab extension). In a git checkout it is built from
# the committed HEAD (git archive), so edits in progress never reach users' image; it is
# rebuilt when HEAD's package sources change.
ensure_wheel() {
    local dir="$HUB_STATE/wheels" stamp want src
    stamp="$dir/.sources"
    if git -C "$REPO" rev-parse --verify -q HEAD >/dev/null 2>&1; then
        want="$(git -C "$REPO" rev-parse HEAD:jupyter_faas HEAD:labextension HEAD:pyproject.toml | sha256sum | cut -d' ' -f1)"
    else
        want="$(cd "$REPO" && find jupyter_faas labextension/src labextension/style labextension/package.json \
            pyproject.toml README.md -type f -not -path '*/__pycache__/*' -not -path 'jupyter_faas/labextension/*' \
            -print0 | LC_ALL=C sort -z | xargs -0 sha256sum | sha256sum | cut -d' ' -f1)"
    fi
    if [[ -f $stamp && "$(cat "$stamp")" == "$want" ]] && compgen -G "$dir/jupyter_faas-*.whl" >/dev/null; then
        say "wheel: up to date"
        return
    fi
    say "wheel: building the jupyter-faas wheel (1-3 minutes)"
    rm -rf "$dir"
    mkdir -p "$dir"
    src="$REPO"
    if git -C "$REPO" rev-parse --verify -q HEAD >/dev/null 2>&1; then
        src="$(mktemp -d)"
        git -C "$REPO" archive HEAD | tar -x -C "$src"
    fi
    (cd "$src" && "$VENV/bin/python" -m pip wheel -q --disable-pip-version-check --no-deps -w "$dir" .)
    [[ $src == "$REPO" ]] || rm -rf "$src"
    printf '%s\n' "$want" >"$stamp"
}

ensure_image() {
    local wheel
    wheel="$(compgen -G "$HUB_STATE/wheels/jupyter_faas-*.whl" | head -n1)"
    "$VENV/bin/python" -m jupyter_faas.hub.image --context "$REPO/hub/singleuser" --wheel "$wheel"
}

prepare() {
    [[ $EUID -eq 0 ]] || die "run as root: the hub confines its users' network with iptables."
    [[ -x $VENV/bin/python ]] || die "no venv at $VENV: run bash scripts/setup.sh first."
    mkdir -p "$HUB_STATE"
    ensure_packages
    ensure_proxy
    ensure_wheel
    FAAS_HUB_IMAGE="$(ensure_image)"
    export FAAS_HUB_IMAGE
    say "image: $FAAS_HUB_IMAGE"
}

start() {
    local pid log="$HUB_STATE/jupyterhub.log"
    if pid="$(hub_pid)"; then
        say "JupyterHub: running already (pid $pid; log: $log)"
    else
        curl -fsS --noproxy '*' "${FAAS_SERVER_URL:-http://127.0.0.1:3233}/api/v1" >/dev/null 2>&1 ||
            die "no function server answers on ${FAAS_SERVER_URL:-http://127.0.0.1:3233}: start it (bash scripts/up.sh --hub)."
        say "JupyterHub: starting (log: $log)"
        (cd "$HUB_STATE" && PATH="$VENV/bin:$PATH" setsid "$VENV/bin/jupyterhub" \
            -f "$REPO/hub/jupyterhub_config.py" >>"$log" 2>&1 </dev/null &)
        for _ in $(seq 1 240); do
            curl -fsS --noproxy '*' -o /dev/null "$URL/hub/api" 2>/dev/null && break
            sleep 0.5
        done
        curl -fsS --noproxy '*' -o /dev/null "$URL/hub/api" 2>/dev/null || {
            tail -n 30 "$log" >&2
            die "JupyterHub did not answer on $URL/hub/api within 120 s (log above)."
        }
    fi
    cat <<EOF
hub: JupyterHub is up: open $URL
hub:   log in with any user name and the shared password in $HUB_STATE/password
hub:   ($(cat "$HUB_STATE/password")); admins (FAAS_HUB_ADMIN_USERS, default 'admin') log in with
hub:   the password in $HUB_STATE/admin-password and also get /hub/admin.
hub:   admin API token (0600): $HUB_STATE/admin-token; e.g. the namespace map:
hub:   curl -H "Authorization: token \$(cat $HUB_STATE/admin-token)" $URL/services/faas/api/namespaces
hub:   stop: bash scripts/hub.sh --stop; more in docs/hub.md
EOF
}

stop() {
    local pid
    if ! pid="$(hub_pid)"; then
        say "JupyterHub: not running"
        return
    fi
    say "JupyterHub: stopping (pid $pid)"
    kill -TERM "$pid"
    for _ in $(seq 1 60); do
        kill -0 "$pid" 2>/dev/null || return 0
        sleep 0.5
    done
    die "JupyterHub (pid $pid) did not stop within 30 s."
}

case "${1:-}" in
"") prepare && start ;;
--prepare) prepare && echo "$FAAS_HUB_IMAGE" ;;
--stop) stop ;;
*) die "unknown option $1 (use --prepare or --stop)" ;;
esac
