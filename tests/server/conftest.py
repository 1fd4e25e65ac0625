"""Fixtures for the function server's REST tests: a real server on a free port.

The server runs in-process on its own event loop thread (or, for crash tests,
as a ``python -m jupyter_faas.server`` subprocess) with a temporary data
directory and the FakeInvoker, and is driven over 127.0.0.1 with requests.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import requests
from fake_invoker import FakeInvoker
from traitlets.config import Config

from jupyter_faas.server.app import FunctionServer

HERE = Path(__file__).parent
ROOT = HERE.parent.parent
START_TIMEOUT = 20


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
    """``python -m jupyter_faas.server`` with the FakeInvoker, for crash tests."""

    def __init__(self, data_dir: Path, port: int):
        self.data_dir = data_dir
        self.port = port
        self.proc: subprocess.Popen | None = None

    def start(self) -> ServerProcess:
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE), str(ROOT)])}
        self.log = open(self.data_dir.parent / "server.log", "ab")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "jupyter_faas.server",
                f"--data-dir={self.data_dir}",
                f"--port={self.port}",
                "--FunctionServer.invoker_class=fake_invoker.FakeInvoker",
            ],
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + START_TIMEOUT
        session = requests.Session()
        session.trust_env = False
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, (self.data_dir.parent / "server.log").read_text()
            try:
                if session.get(f"http://127.0.0.1:{self.port}/api/v1", timeout=1).ok:
                    return self
            except requests.ConnectionError:
                time.sleep(0.1)
        raise AssertionError("the server subprocess did not start")

    def client(self) -> Client:
        key = (self.data_dir / "auth.guest").read_text().strip()
        return Client(f"http://127.0.0.1:{self.port}", key)

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


__all__ = ["Client", "FakeInvoker", "ServerProcess", "ServerThread"]
