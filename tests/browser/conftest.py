"""Fixtures for the browser tests: a real function server, a real JupyterLab, and Chromium.

These tests run in a pytest process of their own (scripts/test.sh): Playwright's sync API
and pytest-jupyter's event loop (tests/extension) cannot share one process.

JupyterLab runs as a subprocess with the extension installed from the built package
(``pip install -e .`` ships it into the venv's share/jupyter/labextensions), a known token,
a temporary root folder, config and settings folders. Its config points the extension at
the function server below, the test base image, the local registry and this run's Docker
labels. On a failed test the tails of both servers' logs are printed and a screenshot of
the page is kept next to them.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from support import (
    CHROMIUM,
    CHROMIUM_ARGS,
    FunctionServer,
    free_port,
    running_function_server,
    stop,
    tail,
    wait_until_answers,
)


@pytest.fixture(scope="session")
def function_server(tmp_path_factory, test_labels, base_image) -> Iterator[FunctionServer]:
    """The real function server on a free port with a temporary data folder.

    Its action containers carry ``test_labels`` (which also scope its start-up cleanup to
    this run's containers); no prewarm containers, which these tests do not use. (A
    container started while a page loads adds a network interface, and Chromium then fails
    that page's requests with ERR_NETWORK_CHANGED: containers start only when a test asks.)
    """
    data = tmp_path_factory.mktemp("function-server")
    with running_function_server(
        data,
        test_labels,
        "--DockerInvoker.prewarm_count=0",
        "--DockerInvoker.prewarm_images=False",
        "--FunctionServer.shutdown_grace_s=1.0",
    ) as server:
        yield server


@dataclass(frozen=True)
class JupyterLab:
    """A running JupyterLab: where it listens, its token, root folder and log."""

    url: str
    token: str
    root: Path
    log_path: Path


def _write_jupyter_config(folder: Path, server: FunctionServer, test_labels, base_image, registry):
    """Config files in a fresh JUPYTER_CONFIG_DIR: the extension on, pointed at test services."""
    (folder / "jupyter_server_config.json").write_text(
        json.dumps({"ServerApp": {"jpserver_extensions": {"jupyter_faas": True}}})
    )
    # One file for the server extension and the notebook's kernel (both read it).
    settings = {
        "OpenWhiskClient": {"api_host": server.url, "auth": server.auth},
        "DockerBuilder": {"extra_labels": dict(test_labels)},
        "FaaSImages": {"base_image": base_image},
        "FaaSRegistry": {"url": registry},
    }
    (folder / "jupyter_faas_config.json").write_text(json.dumps(settings, indent=2))


def _write_lab_settings(folder: Path) -> None:
    """Hide the "get notified about Jupyter news" toast, which covers the page's corner."""
    path = folder / "@jupyterlab" / "apputils-extension" / "notification.jupyterlab-settings"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"fetchNews": "false", "checkForUpdates": False}))


@contextmanager
def running_jupyterlab(home: Path, server: FunctionServer, test_labels, base_image, registry):
    """JupyterLab in a subprocess on a free port, with a known token and a root in ``home``."""
    root = home / "root"
    config_dir = home / "config"
    settings_dir = home / "settings"
    for folder in (root, config_dir):
        folder.mkdir()
    _write_jupyter_config(config_dir, server, test_labels, base_image, registry)
    _write_lab_settings(settings_dir)
    token = secrets.token_hex(16)
    port = free_port()
    env = {
        **os.environ,
        "JUPYTER_CONFIG_DIR": str(config_dir),
        "JUPYTER_DATA_DIR": str(home / "data"),
        "JUPYTER_RUNTIME_DIR": str(home / "runtime"),
        "JUPYTERLAB_SETTINGS_DIR": str(settings_dir),
        "JUPYTERLAB_WORKSPACES_DIR": str(home / "workspaces"),
        "IPYTHONDIR": str(home / "ipython"),
    }
    # The client's other sources of a key must not override the config file's.
    for name in ("__OW_API_HOST", "__OW_API_KEY"):
        env.pop(name, None)
    log_path = home / "jupyterlab.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "jupyterlab",
                "--no-browser",
                # CI machines run as root; the browser is on this machine only.
                "--allow-root",
                # No PyPI queries from the extension manager panel.
                "--LabApp.extension_manager=readonly",
                "--ServerApp.ip=127.0.0.1",
                f"--ServerApp.port={port}",
                "--ServerApp.port_retries=0",
                f"--IdentityProvider.token={token}",
                f"--ServerApp.root_dir={root}",
            ],
            env=env,
            cwd=root,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_answers(proc, f"{url}/api/status?token={token}", log_path, "JupyterLab")
        yield JupyterLab(url, token, root, log_path)
    finally:
        stop(proc)


@pytest.fixture(scope="session")
def jupyterlab(
    tmp_path_factory, function_server, test_labels, base_image, registry
) -> Iterator[JupyterLab]:
    """JupyterLab with the extension, pointed at the test function server and registry."""
    home = tmp_path_factory.mktemp("jupyterlab")
    with running_jupyterlab(home, function_server, test_labels, base_image, registry) as lab:
        yield lab


@pytest.fixture
def jupyterlab_without_registry(
    tmp_path_factory, function_server, test_labels, base_image
) -> Iterator[JupyterLab]:
    """JupyterLab whose registry is a free port nothing listens on: every push fails."""
    home = tmp_path_factory.mktemp("jupyterlab-no-registry")
    nowhere = f"127.0.0.1:{free_port()}"
    with running_jupyterlab(home, function_server, test_labels, base_image, nowhere) as lab:
        yield lab


@pytest.fixture(scope="session")
def browser(tmp_path_factory):
    """Debian's Chromium driven by Playwright (no `playwright install`: nothing to download)."""
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        pytest.fail(
            f"{CHROMIUM} is missing: run scripts/setup.sh (apt-get install chromium).",
            pytrace=False,
        )
    profile = tmp_path_factory.mktemp("chromium-profile")
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(profile),
            executable_path=CHROMIUM,
            headless=True,
            args=CHROMIUM_ARGS,
            viewport={"width": 1440, "height": 900},
        )
        context.set_default_timeout(30_000)
        try:
            yield context
        finally:
            context.close()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    """Keep each phase's report on the item, so fixtures can tell a failed test."""
    report = yield
    setattr(item, f"report_{report.when}", report)
    return report


@pytest.fixture
def page(request, browser, jupyterlab, function_server, tmp_path):
    """A fresh tab; on failure, a screenshot and both servers' log tails in the report.

    A test on another JupyterLab (``jupyterlab_without_registry``) gets that one's log.
    """
    tab = browser.new_page()
    yield tab
    failed = getattr(request.node, "report_call", None)
    if failed is not None and failed.failed:
        shot = tmp_path / "failure.png"
        try:
            tab.screenshot(path=str(shot))
            print(f"screenshot of the page at the failure: {shot}")
        except Exception as err:  # the page may have crashed; the logs still matter
            print(f"(no screenshot: {err})")
        lab = request.node.funcargs.get("jupyterlab_without_registry") or jupyterlab
        print(f"--- JupyterLab log ({lab.log_path}) ---\n{tail(lab.log_path)}")
        print(
            f"--- function server log ({function_server.log_path}) ---\n"
            f"{tail(function_server.log_path)}"
        )
    tab.close()
