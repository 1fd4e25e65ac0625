"""A real JupyterHub of this run's own: DockerSpawner containers, the faas service, a function server.

``bash scripts/hub.sh --prepare`` installs JupyterHub, DockerSpawner and the proxy and
builds the single-user image (skipped when done); then this run starts its own function
server and its own hub (free ports, a state folder in tmp, a container, volume and
network prefix of its own, this run's label on every container and network). Teardown
stops the hub, removes this run's containers, volumes, network, firewall chains and
registry images, and nothing else.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests
from hubtools import Kernel, run_ok
from support import free_port, loopback, running_function_server, stop, tail, wait_until_answers
from traitlets.config.loader import PyFileConfigLoader

from jupyter_faas import engine

ROOT = Path(__file__).resolve().parents[2]
RUN_LABEL = "org.jupyter-faas.run"
REGISTRY = "127.0.0.1:5000"
#: Seconds a user's server may take to become ready (two at once on 2 busy cores).
SPAWN_TIMEOUT = 300


@pytest.fixture(scope="session")
def hub_image() -> str:
    """The single-user image, as the project's script builds it (reused when unchanged)."""
    if os.geteuid() != 0:
        pytest.fail("The hub tests need root (the user network's firewall).", pytrace=False)
    result = subprocess.run(
        ["bash", str(ROOT / "scripts" / "hub.sh"), "--prepare"],
        capture_output=True,
        text=True,
        timeout=1800,
        env={k: v for k, v in os.environ.items() if not k.startswith("FAAS_HUB_")},
    )
    if result.returncode != 0:
        pytest.fail(
            f"scripts/hub.sh --prepare failed:\n{result.stderr[-4000:]}{result.stdout[-2000:]}",
            pytrace=False,
        )
    return result.stdout.strip().splitlines()[-1]


@dataclass
class Hub:
    """This run's hub: its URL, admin token, and the names it made."""

    url: str
    admin_token: str
    prefix: str
    image: str
    network: str
    registry_prefix: str
    state: Path
    server_url: str
    server_data: Path
    proc: subprocess.Popen
    users: list[str] = field(default_factory=list)

    def api(self, method: str, path: str, token: str | None = None, **kwargs) -> requests.Response:
        headers = {"Authorization": f"token {token or self.admin_token}"}
        return loopback().request(
            method, f"{self.url}/hub/api/{path}", headers=headers, timeout=60, **kwargs
        )

    def service(self, method: str, route: str, token: str, **kwargs) -> requests.Response:
        headers = {"Authorization": f"token {token}"} if token else {}
        return loopback().request(
            method, f"{self.url}/services/faas/{route}", headers=headers, timeout=600, **kwargs
        )

    def add_user(self, name: str) -> None:
        resp = self.api("POST", "users", json={"usernames": [name]})
        assert resp.status_code == 201, resp.text
        self.users.append(name)

    def user_token(self, name: str) -> str:
        """A token of ``name``'s own: its server, and the faas service."""
        resp = self.api(
            "POST",
            f"users/{name}/tokens",
            json={
                "scopes": [f"access:servers!user={name}", "access:services!service=faas"],
                "expires_in": 7200,
                "note": "hub tests",
            },
        )
        assert resp.status_code == 201, resp.text
        return resp.json()["token"]

    def start_server(self, name: str) -> None:
        resp = self.api("POST", f"users/{name}/server")
        assert resp.status_code in (201, 202), resp.text

    def wait_ready(self, name: str) -> dict:
        deadline = time.monotonic() + SPAWN_TIMEOUT
        while time.monotonic() < deadline:
            server = self.api("GET", f"users/{name}").json()["servers"].get("")
            if server is None:  # a failed spawn leaves no server behind
                pytest.fail(f"{name}'s server did not start:\n{self.log_tail()}", pytrace=False)
            if server.get("ready"):
                return server
            time.sleep(1)
        pytest.fail(
            f"{name}'s server was not ready in {SPAWN_TIMEOUT} s:\n"
            f"{tail(self.state / 'jupyterhub.log')}",
            pytrace=False,
        )

    def container(self, name: str):
        return engine.docker_client().containers.get(f"{self.prefix}-{name}")

    def log_tail(self) -> str:
        return tail(self.state / "jupyterhub.log", 60)


@pytest.fixture(scope="session")
def hub_function_server(tmp_path_factory, test_labels, docker_client, base_image, registry):
    """A function server of this run's own, with the real DockerInvoker and the hub's
    per-namespace limits (hub/faas_server_config.py, passed as options: the test server's
    own config file holds its labels)."""
    folder = tmp_path_factory.mktemp("hub-function-server")
    limits = PyFileConfigLoader("faas_server_config.py", path=str(ROOT / "hub")).load_config()
    with running_function_server(
        folder,
        test_labels,
        "--FunctionServer.invoker_class=docker",
        "--FunctionServer.shutdown_grace_s=1",
        *(f"--FunctionServer.{k}={v}" for k, v in limits.FunctionServer.items()),
    ) as server:
        yield server


@pytest.fixture(scope="session")
def hub(hub_image, hub_function_server, tmp_path_factory, run_label, docker_client):
    """This run's JupyterHub, answering, with the faas service up."""
    state = tmp_path_factory.mktemp("hub-state")
    with running_hub(hub_image, hub_function_server, state, run_label, docker_client) as made:
        yield made


@pytest.fixture(scope="module")
def stuck_hub(hub_image, hub_function_server, tmp_path_factory, run_label, docker_client):
    """A second hub whose users' servers never answer (their command sleeps) and which
    waits 10 s for them (FAAS_HUB_HTTP_TIMEOUT): every spawn times out. A start request
    answers 202 at once (slow_spawn_timeout 0), so the failure is seen where a user sees
    it, in the progress stream, never raced by the request. Its label value is its own,
    so its teardown leaves the main hub's containers alone."""
    state = tmp_path_factory.mktemp("stuck-hub-state")
    site = state / "site_config.py"
    site.write_text(
        'c.DockerSpawner.cmd = ["bash", "-c", "exec sleep infinity"]\n'
        'c.JupyterHub.tornado_settings = {"slow_spawn_timeout": 0}\n'
    )
    with running_hub(
        hub_image,
        hub_function_server,
        state,
        f"{run_label}-stuck",
        docker_client,
        FAAS_HUB_SITE_CONFIG=str(site),
        FAAS_HUB_HTTP_TIMEOUT="10",
    ) as made:
        yield made


@contextmanager
def running_hub(image, function_server, state: Path, run_label, client, **settings):
    """A JupyterHub of hub/jupyterhub_config.py with names and ports of its own, and
    ``settings`` (FAAS_HUB_* variables) on top; removes what it made on exit."""
    rid = uuid.uuid4().hex[:8]
    prefix = f"faas-t{rid}"
    port = free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("FAAS_HUB_")},
        "FAAS_HUB_STATE": str(state),
        "FAAS_HUB_PORT": str(port),
        "FAAS_HUB_API_PORT": str(free_port()),
        "FAAS_HUB_SERVICE_PORT": str(free_port()),
        "FAAS_HUB_PROXY_API_PORT": str(free_port()),
        "FAAS_HUB_PREFIX": prefix,
        "FAAS_HUB_IMAGE": image,
        "FAAS_HUB_LABELS": json.dumps({RUN_LABEL: run_label}),
        "FAAS_HUB_REGISTRY_PREFIX": f"faas-test-{run_label}/users",
        "FAAS_HUB_PROXY_COMMAND": str(
            Path(os.environ.get("FAAS_STATE_DIR") or ROOT / ".state")
            / "hub"
            / "node_modules"
            / ".bin"
            / "configurable-http-proxy"
        ),
        "FAAS_HUB_START_TIMEOUT": str(SPAWN_TIMEOUT),
        "FAAS_SERVER_URL": function_server.url,
        "FAAS_SERVER_DATA": str(function_server.log_path.parent),
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        **settings,
    }
    log_path = state / "jupyterhub.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [
                str(Path(sys.executable).parent / "jupyterhub"),
                "-f",
                str(ROOT / "hub" / "jupyterhub_config.py"),
            ],
            cwd=state,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    made = Hub(
        url,
        "",
        prefix,
        image,
        prefix,
        env["FAAS_HUB_REGISTRY_PREFIX"],
        state,
        function_server.url,
        function_server.log_path.parent,
        proc,
    )
    try:
        wait_until_answers(proc, f"{url}/hub/api", log_path, "JupyterHub", timeout=180)
        wait_until_answers(proc, f"{url}/services/faas/api/health", log_path, "The faas service")
        made.admin_token = (state / "admin-token").read_text().strip()
        yield made
    finally:
        stop(proc, grace=60)
        _remove_run(made, client, run_label)


def _remove_run(hub: Hub, client, run_label: str) -> None:
    """What this run's hub made: containers, volumes, network and firewall, registry images."""
    from jupyter_faas.hub.network import remove_user_network

    for container in engine.containers_with_label(client, **{RUN_LABEL: run_label}):
        if container.name.startswith(hub.prefix) or "org.jupyter-faas.hub-user" in container.labels:
            engine.remove_container(container)
    for volume in client.volumes.list():
        if volume.name.startswith(f"{hub.prefix}-"):
            volume.remove(force=True)
    remove_user_network(hub.network)
    session = loopback()
    catalog = session.get(f"http://{REGISTRY}/v2/_catalog?n=10000", timeout=10).json()
    accept = "application/vnd.docker.distribution.manifest.v2+json"
    for repository in catalog.get("repositories") or []:
        if not repository.startswith(hub.registry_prefix + "/"):
            continue
        tags = session.get(f"http://{REGISTRY}/v2/{repository}/tags/list", timeout=10).json()
        for tag in tags.get("tags") or []:
            head = session.head(
                f"http://{REGISTRY}/v2/{repository}/manifests/{tag}",
                headers={"Accept": accept},
                timeout=10,
            )
            digest = head.headers.get("Docker-Content-Digest")
            if digest:
                session.delete(f"http://{REGISTRY}/v2/{repository}/manifests/{digest}", timeout=10)
            local = f"{REGISTRY}/{repository}:{tag}"
            if engine.has_image(client, local):
                client.images.remove(local)


@pytest.fixture(scope="module")
def pair(hub):
    """Two hub users (alice… and bob…) with servers, tokens and a kernel each."""
    rid = uuid.uuid4().hex[:6]
    names = {short: f"{short}{rid}" for short in ("alice", "bob")}
    for name in names.values():
        hub.add_user(name)
        hub.start_server(name)
    found = {}
    for short, name in names.items():
        hub.wait_ready(name)
        token = hub.user_token(name)
        kernel = Kernel(hub, name, token)
        found[short] = {"name": name, "token": token, "kernel": kernel}
        run_ok(kernel, '%load_ext jupyter_faas\n%config FaaSMagics.progress_style = "text"')
    yield found
    for person in found.values():
        person["kernel"].close()
