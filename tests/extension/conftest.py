"""Fixtures for the server extension: a real Jupyter server (pytest-jupyter) and function server.

pytest-jupyter's fixtures and hooks are imported here rather than loaded as a plugin,
so they apply to this folder only: its event loop handling must not meet Playwright's
sync API (tests/browser), which runs in its own pytest process.

Every test gets a Jupyter server on a free port with the extension enabled and a
temporary root folder. Unless a test is marked ``docker``, the builder points at a closed
port, so no test touches Docker by accident; unless it uses ``function_server``, the
function server client does too.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
from pytest_jupyter.jupyter_server import *  # noqa: F403
from traitlets.config import Config

from jupyter_faas import engine

START_TIMEOUT = 30
#: Label on the action containers of the function server these tests start.
SERVER_LABEL = "org.jupyter-faas.test-server"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def closed_port() -> int:
    """A loopback port nothing listens on (connections are refused at once)."""
    return _free_port()


@dataclass(frozen=True)
class FunctionServer:
    """A ``python -m jupyter_faas.server`` process and the guest key it wrote."""

    url: str
    auth: str
    log_path: Path


@pytest.fixture(scope="module")
def function_server(tmp_path_factory, test_labels, base_image):
    """The real function server in a subprocess, on a free port, with a temporary data folder.

    Module-scoped, so it and its action containers are gone before other test modules
    count this run's containers. The containers carry this run's label (session cleanup)
    and one of their own, which also limits the server's start-up cleanup to them; the
    server removes them when it stops, and any it leaves are removed here.
    """
    data = tmp_path_factory.mktemp("function-server")
    own = {SERVER_LABEL: uuid.uuid4().hex}
    labels = {k: v for k, v in test_labels.items() if k != engine.ROLE_LABEL} | own
    config = data / "server_config.py"
    config.write_text(f"c.Invoker.extra_labels = {labels!r}\nc.Invoker.prewarm_count = 0\n")
    port = _free_port()
    log_path = data / "server.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "jupyter_faas.server",
                f"--FunctionServer.port={port}",
                f"--FunctionServer.data_dir={data}",
                f"--FunctionServer.config_file={config}",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_for_server(proc, url, log_path)
        yield FunctionServer(url, (data / "auth.guest").read_text().strip(), log_path)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        engine.remove_labelled(engine.docker_client(), **own)


def _wait_for_server(proc: subprocess.Popen, url: str, log_path: Path) -> None:
    session = requests.Session()
    session.trust_env = False
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        if proc.poll() is not None:
            pytest.fail(
                f"The function server exited with {proc.returncode}:\n{log_path.read_text()}",
                pytrace=False,
            )
        try:
            if session.get(f"{url}/api/v1", timeout=2).status_code == 200:
                return
        except requests.ConnectionError:
            pass
        if time.monotonic() > deadline:
            pytest.fail(
                f"The function server did not answer within {START_TIMEOUT} s:\n"
                f"{log_path.read_text()}",
                pytrace=False,
            )
        time.sleep(0.1)


@pytest.fixture
def jp_server_config(request, closed_port):
    """The Jupyter server's config: the extension on, Docker and the function server as above."""
    config = {
        "ServerApp": {"jpserver_extensions": {"jupyter_faas": True}},
        "FaaSExtension": {"poll_wait_s": 2.0},
        "OpenWhiskClient": {
            "api_host": f"http://127.0.0.1:{closed_port}",
            "auth": "test-user:test-key",
        },
    }
    if request.node.get_closest_marker("docker") is not None:
        config["DockerBuilder"] = {"extra_labels": dict(request.getfixturevalue("test_labels"))}
        config["FaaSImages"] = {"base_image": request.getfixturevalue("base_image")}
        config["FaaSRegistry"] = {"url": request.getfixturevalue("registry")}
    else:
        config["DockerBuilder"] = {"docker_url": f"tcp://127.0.0.1:{closed_port}"}
    if "function_server" in request.fixturenames:
        server = request.getfixturevalue("function_server")
        config["OpenWhiskClient"] = {"api_host": server.url, "auth": server.auth}
    return Config(config)


@pytest.fixture
def faas_app(jp_serverapp):
    """The running ``FaaSExtension`` instance."""
    return next(iter(jp_serverapp.extension_manager.extension_apps["jupyter_faas"]))
