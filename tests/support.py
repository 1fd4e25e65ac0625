"""Helpers shared by test modules: free ports, and real servers run as subprocesses.

Imported as ``support`` (pytest puts tests/ on sys.path for tests/conftest.py).
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import docker.errors
import nbformat
import pytest
import requests

from jupyter_faas import engine
from jupyter_faas.demo import output_text
from jupyter_faas.image import tar_context

#: Seconds a server may take to answer after its start (the first start builds the runtime image).
START_TIMEOUT = 120
#: Label each function server started here puts on its containers, besides the run's labels.
SERVER_LABEL = "org.jupyter-faas.test-server"
#: Debian's Chromium, which the browser tests drive (tests/browser, tests/hub).
CHROMIUM = "/usr/bin/chromium"
#: What it needs to run headless as root on these machines.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def loopback() -> requests.Session:
    """A session that never sends loopback traffic through a proxy from the environment."""
    session = requests.Session()
    session.trust_env = False
    return session


def tail(path: Path, lines: int = 80) -> str:
    if not path.exists():
        return f"({path} does not exist)"
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def wait_until_answers(
    proc: subprocess.Popen, url: str, log_path: Path, what: str, timeout: float = START_TIMEOUT
) -> None:
    """Poll ``url`` until it answers 200; fail with the log when the process dies or times out."""
    session = loopback()
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            pytest.fail(f"{what} exited with {proc.returncode}:\n{tail(log_path)}", pytrace=False)
        try:
            if session.get(url, timeout=2).status_code == 200:
                return
        except requests.ConnectionError:
            pass
        if time.monotonic() > deadline:
            pytest.fail(
                f"{what} did not answer {url} within {timeout:g} s:\n{tail(log_path)}",
                pytrace=False,
            )
        time.sleep(0.1)


def stop(proc: subprocess.Popen, grace: float = 20) -> None:
    """SIGTERM, then SIGKILL after ``grace`` seconds."""
    proc.terminate()
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)


@contextmanager
def labelled_image(
    client, tag: str, files: dict[str, bytes], labels: dict[str, str]
) -> Iterator[str]:
    """Build a labelled image from in-memory ``files`` (a Dockerfile among them); remove it after."""
    client.images.build(
        fileobj=tar_context(files), custom_context=True, tag=tag, labels=labels, rm=True
    )
    try:
        yield tag
    finally:
        try:
            client.images.remove(tag, force=True)
        except docker.errors.NotFound:
            pass


@dataclass
class NotebookRun:
    """An executed notebook whose cells are tagged, and the folder its kernel ran in."""

    nb: nbformat.NotebookNode
    workdir: Path | None = None

    def cell(self, tag: str) -> nbformat.NotebookNode:
        return next(c for c in self.nb.cells if c.metadata.get("tags") == [tag])

    def outputs(self, tag: str) -> list:
        return self.cell(tag).outputs

    def text(self, tag: str) -> str:
        """All text of a cell's outputs: streams, text/plain of results and displays, errors."""
        return output_text(self.outputs(tag))

    def result(self, tag: str) -> str:
        found = [o for o in self.outputs(tag) if o.output_type == "execute_result"]
        assert found, f"cell {tag!r} has no result; its output:\n{self.text(tag)}"
        return found[0].data["text/plain"]


@dataclass(frozen=True)
class FunctionServer:
    """A running ``python -m jupyter_faas.server``: its URL, guest key and log file."""

    url: str
    key: str
    log_path: Path

    @property
    def auth(self) -> str:
        return self.key

    def log_tail(self, lines: int = 60) -> str:
        return tail(self.log_path, lines)

    def kernel_env(self, env: dict, config_dir: Path, registry: str, base_image: str) -> dict:
        """``env`` for a kernel whose magics use this server, the test registry and base image,
        and the Jupyter config in ``config_dir``."""
        return {
            **env,
            "JUPYTER_CONFIG_DIR": str(config_dir),
            "FAAS_REGISTRY": registry,
            "FAAS_BASE_IMAGE": base_image,
            "__OW_API_HOST": self.url,
            "__OW_API_KEY": self.key,
        }


@contextmanager
def running_function_server(
    folder: Path,
    labels: dict[str, str],
    *options: str,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
) -> Iterator[FunctionServer]:
    """The real function server on a free port with its data in ``folder``.

    Its action containers carry ``labels`` plus a label of this server's own, which also
    limits its start-up cleanup to them; they are removed when it stops. ``options`` are
    more ``--Class.trait=value`` settings; ``env`` replaces the environment it inherits.
    """
    own = {SERVER_LABEL: uuid.uuid4().hex}
    extra = {k: v for k, v in labels.items() if k != engine.ROLE_LABEL} | own
    config = folder / "server_config.py"
    config.write_text(f"c.DockerInvoker.extra_labels = {extra!r}\n")
    port = free_port()
    log_path = folder / "server.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "jupyter_faas.server",
                f"--FunctionServer.port={port}",
                f"--FunctionServer.data_dir={folder}",
                f"--FunctionServer.config_file={config}",
                *options,
            ],
            cwd=cwd,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_answers(proc, f"{url}/api/v1", log_path, "The function server")
        yield FunctionServer(url, (folder / "auth.guest").read_text().strip(), log_path)
    finally:
        stop(proc)
        engine.remove_labelled(engine.docker_client(), **own)


def unique_requirements(*pins: str) -> list[str]:
    """Requirements whose dependency key is new in this run (pip ignores the comment)."""
    return [f"# test {uuid.uuid4().hex}", *pins]


def activation_job(
    code: str | None,
    *,
    name="hello",
    version="0.0.1",
    params=None,
    kind="python:3.11",
    namespace="guest",
    **limits,
):
    """An ActivationJob for ``/guest/<name>`` with OpenWhisk's default limits, invoked by
    ``namespace`` (another one than guest calls it as a shared action)."""
    from jupyter_faas.server.pool import ActivationJob

    exec_ = {"kind": kind, "binary": False}
    if code is not None:
        exec_["code"] = code
    if "image" in limits:
        exec_["image"] = limits.pop("image")
    return ActivationJob(
        activation_id=uuid.uuid4().hex,
        namespace=namespace,
        action_name=f"/guest/{name}",
        action_version=version,
        exec=exec_,
        params=params if params is not None else {"x": 1},
        init_env={"__OW_NAMESPACE": namespace, "__OW_ACTION_NAME": f"/guest/{name}"},
        limits={"timeout": 20000, "memory": 256, "logs": 10, "concurrency": 1, **limits},
        deadline_ms=int(time.time() * 1000) + 20000,
        api_key=None,
        action_key=f"guest/{name}@{version}" + (f"@{namespace}" if namespace != "guest" else ""),
    )
