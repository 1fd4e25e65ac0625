"""Shared fixtures: the real Docker engine, registries and base image, and per-run cleanup.

Everything a test creates in Docker carries ``test_labels`` (our label, role ``test`` and
a label unique to this pytest run); at the end of the session exactly those objects are
removed. When a test marked ``docker`` fails, its report gets ``docker ps -a`` and the
last log lines of this run's containers. ``bash scripts/setup.sh`` starts everything the
``docker`` tests need.
"""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import bcrypt
import docker.errors
import pytest
import requests
from support import free_port, running_function_server

from jupyter_faas import engine
from jupyter_faas.errors import EngineUnavailable

ROOT = Path(__file__).resolve().parent.parent

RUN_LABEL = "org.jupyter-faas.run"
BASE_IMAGE = "jupyter-faas-base:bookworm"
REGISTRY = "127.0.0.1:5000"
#: Log lines per container shown under a failed ``docker`` test.
LOG_LINES = 50

_run_label_key = pytest.StashKey[str]()


def pytest_configure(config: pytest.Config) -> None:
    # Made here rather than in a fixture so the failure hook can find this run's containers.
    config.stash[_run_label_key] = f"{time.strftime('%Y%m%d%H%M%S')}-{uuid.uuid4().hex[:8]}"
    # Deploy histories of this run (kernels and servers inherit it), never the user's own.
    if "FAAS_HISTORY_DIR" not in os.environ:
        os.environ["FAAS_HISTORY_DIR"] = tempfile.mkdtemp(prefix="faas-history-")


def _loopback() -> requests.Session:
    """A session that never sends loopback traffic through a proxy from the environment."""
    session = requests.Session()
    session.trust_env = False
    return session


@pytest.fixture(scope="session")
def docker_client():
    """The docker-py client for the local engine; fails (never skips) when it is down."""
    try:
        return engine.docker_client()
    except EngineUnavailable as err:
        problem = str(err)
    # Outside the except block, so the report shows the advice without the chained traceback.
    pytest.fail(problem, pytrace=False)


@pytest.fixture(autouse=True)
def _docker_marker_needs_engine(request: pytest.FixtureRequest) -> None:
    """Tests marked ``docker`` fail with EngineUnavailable's advice instead of erroring oddly."""
    if request.node.get_closest_marker("docker") is not None:
        request.getfixturevalue("docker_client")


@pytest.fixture(scope="session")
def run_label(pytestconfig: pytest.Config):
    """A string unique to this pytest run; Docker objects labelled with it are removed at the end."""
    label = pytestconfig.stash[_run_label_key]
    yield label
    try:
        client = engine.docker_client()
    except EngineUnavailable:
        # Without an engine nothing was created in it, so there is nothing to remove.
        return
    engine.remove_labelled(client, **{RUN_LABEL: label})


@pytest.fixture(scope="session")
def test_labels(run_label: str) -> dict[str, str]:
    """Labels for every container, image, network and volume a test creates."""
    return engine.labels("test", **{RUN_LABEL: run_label})


@pytest.fixture(scope="session")
def base_image(docker_client) -> str:
    """The offline-built Debian base image (python3 3.11, venv, pip, CA certificates)."""
    if not engine.has_image(docker_client, BASE_IMAGE):
        pytest.fail(
            f"The base image {BASE_IMAGE} is not on the Docker engine. Make it with "
            "`bash scripts/setup.sh` (or, as root, `.venv/bin/python -m jupyter_faas.baseimage`).",
            pytrace=False,
        )
    return BASE_IMAGE


@pytest.fixture(scope="session")
def registry() -> str:
    """The address of the local, open registry that scripts/setup.sh starts."""
    try:
        _loopback().get(f"http://{REGISTRY}/v2/", timeout=5).raise_for_status()
        return REGISTRY
    except requests.RequestException as err:
        problem = f"No registry answers on http://{REGISTRY}/v2/ ({err}); run scripts/setup.sh."
    pytest.fail(problem, pytrace=False)


@dataclass(frozen=True)
class AuthRegistry:
    """A running registry that demands a user name and password."""

    address: str
    username: str
    password: str

    @property
    def url(self) -> str:
        return f"http://{self.address}"


@pytest.fixture(scope="session")
def auth_registry(tmp_path_factory: pytest.TempPathFactory):
    """A second real registry (``docker-registry serve``) with htpasswd auth on a free port.

    Yields:
        AuthRegistry with ``address`` (``127.0.0.1:PORT``), ``username`` and ``password``.
    """
    program = "/usr/bin/docker-registry"
    if not Path(program).exists():
        pytest.fail(
            f"{program} is missing; run scripts/setup.sh (apt-get install docker-registry).",
            pytrace=False,
        )
    folder = tmp_path_factory.mktemp("auth-registry")
    username, password = "faas-test", uuid.uuid4().hex
    htpasswd = folder / "htpasswd"
    hashed = bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=5)).decode()
    htpasswd.write_text(f"{username}:{hashed}\n")
    port = free_port()
    config = folder / "config.yml"
    # The registry reads YAML; this JSON-compatible subset needs no YAML writer.
    config.write_text(
        "version: 0.1\n"
        "log: {level: warn}\n"
        f"storage: {{filesystem: {{rootdirectory: {folder / 'data'}}}, delete: {{enabled: true}}}}\n"
        f"http: {{addr: '127.0.0.1:{port}'}}\n"
        f"auth: {{htpasswd: {{realm: faas-test, path: {htpasswd}}}}}\n"
    )
    log_path = folder / "registry.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [program, "serve", str(config)], stdout=log, stderr=subprocess.STDOUT
        )
    served = AuthRegistry(f"127.0.0.1:{port}", username, password)
    try:
        _wait_for_auth_registry(proc, served, log_path)
        yield served
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _wait_for_auth_registry(proc: subprocess.Popen, served: AuthRegistry, log_path: Path) -> None:
    session = _loopback()
    deadline = time.monotonic() + 30
    while True:
        if proc.poll() is not None:
            pytest.fail(
                f"docker-registry exited with {proc.returncode}:\n{log_path.read_text()}",
                pytrace=False,
            )
        try:
            anonymous = session.get(f"{served.url}/v2/", timeout=2)
            break
        except requests.ConnectionError:
            if time.monotonic() > deadline:
                pytest.fail(
                    f"docker-registry did not answer on {served.address} within 30 s:\n"
                    f"{log_path.read_text()}",
                    pytrace=False,
                )
            time.sleep(0.1)
    signed_in = session.get(f"{served.url}/v2/", auth=(served.username, served.password), timeout=5)
    if (anonymous.status_code, signed_in.status_code) != (401, 200):
        pytest.fail(
            f"The auth registry answered {anonymous.status_code} without and "
            f"{signed_in.status_code} with credentials (want 401 and 200):\n"
            f"{log_path.read_text()}",
            pytrace=False,
        )


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    """Attach this run's containers and their last log lines to a failed ``docker`` test."""
    report = yield
    if report.failed and item.get_closest_marker("docker") is not None:
        report.sections.append(
            ("docker containers of this run", _docker_dump(item.config.stash[_run_label_key]))
        )
    return report


def _docker_dump(run_label: str) -> str:
    """``docker ps -a`` for our run label plus each container's last log lines, as text."""
    try:
        client = engine.docker_client()
        containers = client.containers.list(
            all=True, filters={"label": [engine.LABEL, f"{RUN_LABEL}={run_label}"]}
        )
    except (EngineUnavailable, docker.errors.APIError) as err:
        return f"(cannot list containers: {err})"
    if not containers:
        return f"(no containers labelled {RUN_LABEL}={run_label})"
    lines = [f"{'CONTAINER ID':14} {'IMAGE':40} {'STATUS':12} NAME"]
    logs = []
    for container in containers:
        image = container.attrs.get("Config", {}).get("Image", "?")
        lines.append(
            f"{container.short_id:14} {image[:40]:40} {container.status:12} {container.name}"
        )
        try:
            text = container.logs(tail=LOG_LINES).decode(errors="replace")
        except docker.errors.APIError as err:
            text = f"(no logs: {err.explanation or err})"
        logs.append(f"--- last {LOG_LINES} log lines of {container.name} ---\n{text.rstrip()}")
    return "\n".join(lines + logs)


@pytest.fixture(scope="module")
def people(tmp_path_factory, run_label, base_image, registry, test_labels):
    """Alice (the guest namespace of a real function server of this module: Docker, the real
    registry) and Bob (a namespace made with ``jupyter faas namespace create``), each with
    ``%%faas`` magics and a workspace of their own."""
    from IPython.core.interactiveshell import InteractiveShell
    from traitlets.config import Config

    from jupyter_faas.magics import FaaSMagics
    from jupyter_faas.server.app import namespace_main
    from jupyter_faas.workspace import FaaSWorkspace

    def magics(url: str, key: str, folder: Path) -> FaaSMagics:
        config = Config()
        config.FaaSWorkspace.bundle_dir = str(folder)
        config.FaaSWorkspace.builder_class = "docker"
        config.OpenWhiskClient.api_host = url
        config.OpenWhiskClient.auth = key
        config.OpenWhiskDeployer.history_dir = str(folder / "history")
        config.DockerBuilder.extra_labels = test_labels
        config.FaaSImages.base_image = base_image
        config.FaaSRegistry.url = registry
        config.FaaSMagics.progress_style = "text"
        shell = InteractiveShell.instance()
        return FaaSMagics(shell=shell, config=config, workspace=FaaSWorkspace(config=config))

    data_dir = tmp_path_factory.mktemp("people-server")
    with running_function_server(
        data_dir, {RUN_LABEL: run_label}, "--DockerInvoker.prewarm_count=0", cwd=ROOT
    ) as server:
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            assert namespace_main(["create", "bob", "--data-dir", str(data_dir)]) == 0
        alice = magics(server.url, server.key, tmp_path_factory.mktemp("alice"))
        bob = magics(server.url, out.getvalue().strip(), tmp_path_factory.mktemp("bob"))
        try:
            yield alice, bob
        finally:
            alice.workspace.close()
            bob.workspace.close()
