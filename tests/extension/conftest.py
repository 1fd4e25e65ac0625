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

import pytest
from pytest_jupyter.jupyter_server import *  # noqa: F403
from support import free_port, running_function_server
from traitlets.config import Config


@pytest.fixture(scope="session")
def closed_port() -> int:
    """A loopback port nothing listens on (connections are refused at once)."""
    return free_port()


@pytest.fixture(scope="module")
def function_server(tmp_path_factory, test_labels, base_image):
    """The real function server in a subprocess, on a free port, with a temporary data folder.

    Module-scoped, so it and its action containers are gone before other test modules
    count this run's containers. The containers carry this run's label (session cleanup)
    and one of their own, which also limits the server's start-up cleanup to them; the
    server removes them when it stops, and any it leaves are removed here.
    """
    data = tmp_path_factory.mktemp("function-server")
    with running_function_server(data, test_labels, "--DockerInvoker.prewarm_count=0") as server:
        yield server


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
