"""Fixtures for the function server's REST tests: a real server on a free port.

The server runs in-process on its own event loop thread (or, for crash tests,
as a ``python -m jupyter_faas.server`` subprocess) with a temporary data
directory and the FakeInvoker, and is driven over 127.0.0.1 with requests.
End-to-end tests start the subprocess with the real DockerInvoker on Docker
(``real_server_args``), on images built and pushed with DockerBuilder
(``server_images``).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import docker.errors
import pytest
import requests
from fake_invoker import FakeInvoker
from support import free_port, labelled_image
from traitlets.config import Config

from jupyter_faas import runtime
from jupyter_faas.server.app import FunctionServer

HERE = Path(__file__).parent
ROOT = HERE.parent.parent
START_TIMEOUT = 20
RUN_LABEL = "org.jupyter-faas.run"
FAKE_INVOKER_ARG = "--FunctionServer.invoker_class=fake_invoker.FakeInvoker"
#: The real server needs longer: it cleans up containers and starts a prewarm container.
REAL_START_TIMEOUT = 60


class Client:
    """A requests session bound to one server and one key (``uuid:key``)."""

    def __init__(self, base: str, api_key: str | None):
        self.base = base
        self.api_key = api_key
        self.session = requests.Session()
        self.session.trust_env = False
        if api_key:
            self.session.auth = tuple(api_key.split(":", 1))

    def request(self, method: str, path: str, **kwargs) -> requests.Response:
        kwargs.setdefault("timeout", 30)
        return self.session.request(method, self.base + path, **kwargs)

    def get(self, path: str, **kw):
        return self.request("GET", path, **kw)

    def put(self, path: str, **kw):
        return self.request("PUT", path, **kw)

    def post(self, path: str, **kw):
        return self.request("POST", path, **kw)

    def delete(self, path: str, **kw):
        return self.request("DELETE", path, **kw)

    def wait_activation(self, activation_id: str, ns: str = "_", timeout: float = 10) -> dict:
        """Poll until the activation record exists (bounded)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            r = self.get(f"/api/v1/namespaces/{ns}/activations/{activation_id}")
            if r.status_code == 200:
                return r.json()
            time.sleep(0.05)
        raise AssertionError(f"activation {activation_id} not stored within {timeout}s")


class ServerThread:
    """A FunctionServer with the FakeInvoker on a background event-loop thread."""

    def __init__(self, data_dir: Path, **settings):
        config = Config()
        config.FunctionServer.update(
            {
                "data_dir": str(data_dir),
                "port": 0,
                "invoker_class": FakeInvoker,
                "shutdown_grace_s": 0.2,
                "alarm_allow_seconds": True,
                **settings,
            }
        )
        self.server = FunctionServer(config=config)
        self.thread = threading.Thread(target=self.server.start, daemon=True)
        self.data_dir = Path(data_dir)

    def start(self) -> ServerThread:
        self.thread.start()
        deadline = time.monotonic() + START_TIMEOUT
        while self.server.bound_port is None:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise AssertionError("the function server did not start")
            time.sleep(0.02)
        return self

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.server.bound_port}"

    def guest_key(self) -> str:
        return (self.data_dir / "auth.guest").read_text().strip()

    def client(self, api_key: str | None = "guest") -> Client:
        if api_key == "guest":
            api_key = self.guest_key()
        return Client(self.base, api_key)

    def run(self, coro):
        """Run a coroutine on the server's loop (e.g. to inspect its state)."""
        return asyncio.run_coroutine_threadsafe(coro, self.server._loop).result(10)

    def stop(self) -> None:
        if self.thread.is_alive():
            self.server.stop()
            self.thread.join(15)
            assert not self.thread.is_alive(), "the function server did not stop"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """One server shared by a module's tests."""
    srv = ServerThread(tmp_path_factory.mktemp("faas-server")).start()
    yield srv
    srv.stop()


@pytest.fixture
def fresh_server(tmp_path):
    """A server of its own, for tests that restart it; yields a factory on one data_dir."""
    servers: list[ServerThread] = []

    def make(**settings) -> ServerThread:
        srv = ServerThread(tmp_path / "data", **settings).start()
        servers.append(srv)
        return srv

    yield make
    for srv in servers:
        srv.stop()


@pytest.fixture
def guest(server) -> Client:
    return server.client()


class ServerProcess:
    """``python -m jupyter_faas.server`` as a subprocess, for crash and end-to-end tests.

    Args:
        data_dir: The server's data directory; its log goes to ``data_dir.parent/server.log``.
        port: TCP port on 127.0.0.1.
        args: Extra command-line settings. Without ``--FunctionServer.invoker_class`` the
            FakeInvoker is used; see :func:`real_server_args` for the real DockerInvoker.
        start_timeout: Seconds the server may take to answer ``GET /api/v1``.
    """

    def __init__(
        self,
        data_dir: Path,
        port: int,
        args: list[str] | None = None,
        start_timeout: float = START_TIMEOUT,
    ):
        self.data_dir = data_dir
        self.port = port
        self.args = list(args or [])
        self.start_timeout = start_timeout
        self.proc: subprocess.Popen | None = None

    @property
    def log_path(self) -> Path:
        return self.data_dir.parent / "server.log"

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> ServerProcess:
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE), str(ROOT)])}
        self.data_dir.parent.mkdir(parents=True, exist_ok=True)
        self.log = open(self.log_path, "ab")  # noqa: SIM115
        invoker = [] if any("invoker_class" in a for a in self.args) else [FAKE_INVOKER_ARG]
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "jupyter_faas.server",
                f"--data-dir={self.data_dir}",
                f"--port={self.port}",
                *invoker,
                *self.args,
            ],
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + self.start_timeout
        session = requests.Session()
        session.trust_env = False
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.log_path.read_text()
            try:
                if session.get(f"{self.base}/api/v1", timeout=1).ok:
                    return self
            except requests.ConnectionError:
                time.sleep(0.1)
        raise AssertionError(f"the server subprocess did not start:\n{self.log_path.read_text()}")

    def api_key(self) -> str:
        """The guest namespace's ``uuid:key``."""
        return (self.data_dir / "auth.guest").read_text().strip()

    def client(self) -> Client:
        return Client(self.base, self.api_key())

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)
        self.log.close()

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        if not self.log.closed:
            self.log.close()


@dataclass(frozen=True)
class ServerImages:
    """Images for servers with the real DockerInvoker.

    Attributes:
        runtime: Local dependency image with no extra packages (our runtime): the
            server's ``python_image``.
        pushed: The same image pushed to the local registry under a name unique to this
            run and then untagged locally, so the first cold start must pull it.
    """

    runtime: str
    pushed: str


@pytest.fixture(scope="session")
def server_images(docker_client, base_image, registry, test_labels, run_label):
    """Build (or reuse) the runtime image with DockerBuilder and push it to the registry."""
    from jupyter_faas.builders.docker import DockerBuilder
    from jupyter_faas.registry import FaaSRegistry

    target = FaaSRegistry(url=registry, namespace=f"faas-test-{run_label}")
    builder = DockerBuilder(extra_labels=test_labels, registry=target)
    try:
        built = builder.build_requirements("")
        pushed = builder.push(built).ref
    finally:
        builder.close()
    # Untag only our run's name; the layers stay under the runtime tag.
    docker_client.images.remove(pushed)
    yield ServerImages(runtime=built.ref, pushed=pushed)
    try:
        docker_client.images.remove(pushed)
    except docker.errors.ImageNotFound:
        pass


@pytest.fixture(scope="session")
def real_server_args(server_images, run_label) -> list[str]:
    """Command-line settings for a server subprocess with the real DockerInvoker on Docker.

    Its containers carry this run's label, which also limits its start-up cleanup of
    orphaned containers to this run's.
    """
    labels = json.dumps({RUN_LABEL: run_label})
    return [
        "--FunctionServer.invoker_class=docker",
        f"--DockerInvoker.extra_labels={labels}",
        f"--DockerInvoker.python_image={server_images.runtime}",
        "--FunctionServer.shutdown_grace_s=1",
    ]


@pytest.fixture(scope="module")
def start_real_server(tmp_path_factory, real_server_args):
    """Start server subprocesses with the real DockerInvoker (plus ``extra_args``) for a
    module; all are stopped after its last test."""
    started: list[ServerProcess] = []

    def start(*extra_args: str) -> ServerProcess:
        data = tmp_path_factory.mktemp("real-server") / "data"
        args = [*real_server_args, *extra_args]
        started.append(ServerProcess(data, free_port(), args, REAL_START_TIMEOUT).start())
        return started[-1]

    yield start
    for proc in started:
        proc.stop()


__all__ = [
    "Client",
    "FakeInvoker",
    "ServerImages",
    "ServerProcess",
    "ServerThread",
    "free_port",
]


@pytest.fixture(scope="session")
def runtime_image(docker_client, base_image, test_labels, run_label):
    """Our runtime (/faas/runtime.py and faas_protocol.py) on the offline base image, for this run."""
    tag = f"jupyter-faas-runtime:test-{run_label}"
    files = {
        "Dockerfile": (
            f"FROM {base_image}\n"
            "COPY runtime.py faas_protocol.py /faas/\n"
            "ENV PYTHONUNBUFFERED=1\n"
            'CMD ["python3", "/faas/runtime.py"]\n'
        ).encode(),
        **runtime.runtime_file_bytes(),
    }
    with labelled_image(docker_client, tag, files, test_labels) as image:
        yield image


@pytest.fixture(scope="module")
def loop():
    """An event loop of the module's own, for tests that drive an invoker directly."""
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()
