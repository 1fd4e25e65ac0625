"""The hub's parts that need no hub: the wire format's refusals, namespace names, the
kernel's message when no service answers."""

from __future__ import annotations

import base64
import http.client
import io
import os
import subprocess
import sys
import zipfile
from pathlib import Path
from urllib.parse import urlparse

import pytest
from support import free_port, loopback, stop, wait_until_answers
from traitlets.config.loader import PyFileConfigLoader

from jupyter_faas.builders import BuiltImage
from jupyter_faas.builders.hub import HubBuilder, HubServiceUnavailable
from jupyter_faas.bundle import Bundle, FunctionMetadata
from jupyter_faas.errors import BadRequest, ConfigError
from jupyter_faas.hub import protocol
from jupyter_faas.hub.namespaces import NamespaceMap
from jupyter_faas.workspace import FaaSWorkspace


@pytest.fixture
def bundle(tmp_path):
    return Bundle.write(
        tmp_path / "src" / "hello",
        FunctionMetadata(name="hello"),
        "def main(args):\n    return {'hi': 1}\n",
        ["requests==2.31.0"],
    )


def test_a_bundle_travels_whole(bundle, tmp_path):
    back = protocol.unpack_bundle(protocol.pack_bundle(bundle), tmp_path / "dst", 1 << 20)
    assert back.name == "hello" and back.code == bundle.code
    assert back.requirements == "requests==2.31.0\n"


def _zip(files: dict[str, str]) -> str:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, text in files.items():
            zf.writestr(name, text)
    return base64.b64encode(buf.getvalue()).decode()


@pytest.mark.parametrize(
    ("data", "words"),
    [
        ("not base64!", "not a base64 zip"),
        (base64.b64encode(b"plain bytes").decode(), "not a base64 zip"),
        (_zip({"../../etc/evil.py": "x"}), "leaves its folder"),
        (_zip({"handler.py": "x" * 2048}), "over the service's limit of 1024"),
    ],
)
def test_bad_bundles_are_refused_before_anything_is_written(tmp_path, data, words):
    with pytest.raises(BadRequest, match=words):
        protocol.unpack_bundle(data, tmp_path / "dst", 1024)
    assert not (tmp_path / "etc").exists() and not (tmp_path / "dst").exists()


def test_namespace_names_escape_what_the_server_cannot_hold():
    names = NamespaceMap()
    assert names.namespace_of("alice") == "alice"
    assert names.namespace_of("a+b/c") == "a-2bb-2fc"
    assert NamespaceMap(namespace_template="hub-{username}").namespace_of("bob") == "hub-bob"
    assert names.registry_path_of("alice") == "jupyter-faas/users/alice"
    # A name that had to change gets a hash, so two users never share a path.
    assert names.registry_path_of("Alice") != names.registry_path_of("alice")
    with pytest.raises(ConfigError, match="does not contain"):
        NamespaceMap(namespace_template="everyone")


def test_the_kernel_says_what_to_do_when_no_service_answers(bundle):
    builder = HubBuilder(service_url="", api_token="t")
    with pytest.raises(HubServiceUnavailable, match="No faas service is configured"):
        builder.build(bundle)
    dead = HubBuilder(service_url=f"http://127.0.0.1:{free_port()}/services/faas/", api_token="t")
    with pytest.raises(HubServiceUnavailable, match="not reachable") as err:
        dead.build(bundle)
    assert "operator" in str(err.value) and "bundle is in functions/" in str(err.value)
    # Whether an image is published: "cannot tell" is None, and the push then decides.
    assert dead.published(BuiltImage("jupyter-faas/deps:x", "0" * 64, "sha256:x", True)) is None


def test_the_single_user_images_config_selects_the_hub_builder_by_name():
    folder = Path(__file__).resolve().parents[2] / "hub" / "singleuser"
    config = PyFileConfigLoader("jupyter_faas_config.py", path=str(folder)).load_config()
    workspace = FaaSWorkspace(config=config)
    assert isinstance(workspace.builder, HubBuilder)
    installed = FaaSWorkspace.class_traits()["builder_class"].installed()
    assert installed["hub"] == "jupyter_faas.builders.hub.HubBuilder"


@pytest.fixture
def lone_service(tmp_path):
    """The faas service alone (no hub behind it, no function server in front)."""
    port = free_port()
    env = {
        **os.environ,
        "JUPYTERHUB_SERVICE_URL": f"http://127.0.0.1:{port}",
        "JUPYTERHUB_API_URL": f"http://127.0.0.1:{free_port()}/hub/api",
        "JUPYTERHUB_API_TOKEN": "unused",
        "FAAS_HUB_SERVICE_STATE": str(tmp_path),
    }
    dead_server = f"http://127.0.0.1:{free_port()}"
    log_path = tmp_path / "service.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "jupyter_faas.hub", f"--NamespaceMap.server_url={dead_server}"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}/services/faas"
    try:
        wait_until_answers(proc, f"{base}/api/health", log_path, "The faas service", timeout=60)
        yield base
    finally:
        stop(proc)


def test_the_relay_refuses_dot_segments_and_says_when_the_server_is_down(lone_service):
    resp = loopback().get(f"{lone_service}/api/v1/namespaces", timeout=10)
    assert resp.status_code == 503 and "is not reachable" in resp.json()["error"]
    where = urlparse(lone_service)
    for path in ("/api/v1/../../hub/api", "/api/v1/namespaces/./x"):
        conn = http.client.HTTPConnection(where.hostname, where.port, timeout=10)
        conn.request("GET", where.path + path)  # sent as written: no client normalises it
        assert conn.getresponse().status == 400
        conn.close()
    # Everything but health needs a hub token, checked with the hub.
    resp = loopback().get(f"{lone_service}/api/namespace", timeout=10)
    assert resp.status_code == 403 and "access:services!service=faas" in resp.json()["error"]
