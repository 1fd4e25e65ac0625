"""The function loop on the real Docker engine and registries: build, reuse, test, push, errors.

The builder contract shared with ``ProcessBuilder`` (exceptions, bad results, timeouts,
memory, syntax and build errors) runs on both builders in test_loop_process.py; here are
the tests that look inside Docker (images, containers, registries, other platforms).
"""

from __future__ import annotations

import json
import socket
import time
import uuid

import pytest
import requests
from support import unique_requirements

from jupyter_faas import engine
from jupyter_faas.actionclient import ActionClient
from jupyter_faas.builders.docker import DockerBuilder
from jupyter_faas.bundle import Bundle, FunctionMetadata
from jupyter_faas.errors import BaseImageMissing, BuildError, EngineUnavailable, RegistryError
from jupyter_faas.registry import FaaSRegistry

pytestmark = pytest.mark.docker

CODE = """
import os

def main(args):
    print("threshold", args["threshold"])
    return {"n": sum(v > args["threshold"] for v in [1, 2, 3, 4, 5]), "scale": SCALE}
"""


def make_bundle(path, code=CODE, requirements=(), name="peaks", **meta) -> Bundle:
    return Bundle.write(path / name, FunctionMetadata(name=name, **meta), code, list(requirements))


@pytest.fixture
def builder(base_image, registry, test_labels):
    made = DockerBuilder(extra_labels=test_labels)
    made.images.base_image = base_image
    made.registry.url = registry
    yield made
    made.close()


def test_rebuild_with_same_inputs_reuses_the_image(builder, tmp_path):
    bundle = make_bundle(tmp_path, CODE.replace("SCALE", "1"), unique_requirements())
    events = []
    first = builder.build(bundle, events.append)
    second = builder.build(bundle, events.append)
    assert not first.reused and second.reused
    assert first.image_id == second.image_id and first.key == second.key
    assert any("Step" in e["message"] for e in events), "build output is streamed"
    assert events[-1]["message"].startswith("Reusing")


def test_code_only_edit_reuses_image_and_warm_container(builder, tmp_path, docker_client):
    requirements = unique_requirements()
    bundle = make_bundle(tmp_path, "SCALE = 1\n" + CODE, requirements)
    image = builder.build(bundle)
    first = builder.test(bundle, image, {"threshold": 2})
    assert first.status == "success", first
    assert first.result == {"n": 3, "scale": 1}
    assert "threshold 2" in first.logs
    assert first.peak_memory_bytes and first.peak_memory_bytes > 1_000_000

    # Dependency images only: other images may come and go on a shared engine meanwhile.
    deps = {"label": "org.jupyter-faas.role=deps"}
    images_before = {i.id for i in docker_client.images.list(filters=deps)}
    edited = make_bundle(tmp_path, "SCALE = 7\n" + CODE, requirements)
    again = builder.build(edited)
    second = builder.test(edited, again, {"threshold": 4})
    assert again.reused and again.image_id == image.image_id
    assert second.container_reused
    assert second.result == {"n": 1, "scale": 7}
    assert {i.id for i in docker_client.images.list(filters=deps)} == images_before


def test_timeout_kills_the_container(builder, tmp_path, docker_client, test_labels):
    code = "import time\n\ndef main(args):\n    time.sleep(30)\n    return {}\n"
    bundle = make_bundle(tmp_path, code, unique_requirements(), timeout_s=1)
    image = builder.build(bundle)
    labels = [f"{k}={v}" for k, v in test_labels.items()] + ["org.jupyter-faas.function=peaks"]

    def ours() -> set[str]:
        """This run's test containers of a "peaks" function of this image (other tests' live
        kernels may keep a warm one of another image)."""
        found = docker_client.containers.list(all=True, filters={"label": labels})
        return {c.id for c in found if c.attrs["Image"] == image.image_id}

    run = builder.test(bundle, image, {})
    assert run.status == "timeout"
    assert "timeout of 1 s" in run.result["error"]
    assert not ours(), "the timed-out test container is still there"


def test_site_ca_bundle_makes_pip_work(builder, tmp_path):
    """Without the site's CA bundle pip cannot reach the index through the proxy; with it, it can."""
    requirements = unique_requirements("six==1.16.0")
    bundle = make_bundle(
        tmp_path, "import six\n\ndef main(args):\n    return {'v': six.__version__}\n", requirements
    )
    ca_bundle = builder.site.ca_bundle
    assert ca_bundle, "the machine's CA bundle is found from the environment"
    builder.site.ca_bundle = ""
    with pytest.raises(BuildError) as failure:
        builder.build(bundle)
    assert "ca_bundle" in str(failure.value)
    builder.site.ca_bundle = ca_bundle
    image = builder.build(bundle)
    run = builder.test(bundle, image, {})
    assert run.result == {"v": "1.16.0"}


def test_engine_unreachable(tmp_path):
    builder = DockerBuilder(docker_url="unix:///nonexistent/docker.sock")
    with pytest.raises(EngineUnavailable) as failure:
        builder.build(make_bundle(tmp_path))
    assert "not reachable" in str(failure.value) and "dockerd" in str(failure.value)


def test_base_image_missing_names_the_command(builder, tmp_path):
    builder.images.base_image = f"jupyter-faas-base:missing-{uuid.uuid4().hex[:6]}"
    with pytest.raises(BaseImageMissing) as failure:
        builder.build(make_bundle(tmp_path))
    assert "jupyter faas base build" in str(failure.value)


def test_push_to_local_registry(builder, tmp_path, registry):
    bundle = make_bundle(tmp_path, CODE, unique_requirements())
    events = []
    pushed = builder.push(builder.build(bundle), events.append)
    assert pushed.ref.startswith(f"{registry}/jupyter-faas/deps:")
    assert pushed.digest.startswith("sha256:")
    repository, tag = pushed.ref.split("/", 1)[1].rsplit(":", 1)
    session = requests.Session()
    session.trust_env = False
    tags = session.get(f"http://{registry}/v2/{repository}/tags/list", timeout=5).json()["tags"]
    assert tag in tags
    assert any(e["step"] == "push" and e["progress"] == 1.0 for e in events)
    # Plain-text progress: a line per layer state change, not one per byte count.
    lines = [e["message"] for e in events if e["step"] == "push" and e["message"]]
    assert len(lines) == len(set(lines)), lines
    layers = {line.split()[0] for line in lines if len(line.split()) == 2}
    assert layers and len(lines) <= 4 * len(layers) + 6, lines


def test_registry_unreachable(builder, tmp_path):
    builder.registry.url = "127.0.0.1:9"
    with pytest.raises(RegistryError) as failure:
        builder.push(builder.build(make_bundle(tmp_path, CODE, unique_requirements())))
    assert "not reachable" in str(failure.value)


def test_registry_credentials(builder, tmp_path, auth_registry):
    image = builder.build(make_bundle(tmp_path, CODE, unique_requirements()))
    builder.registry = FaaSRegistry(url=auth_registry.address)
    with pytest.raises(RegistryError, match="requires a login"):
        builder.push(image)
    builder.registry.username = auth_registry.username
    builder.registry.password = "wrong-" + auth_registry.password
    with pytest.raises(RegistryError, match="refused the credentials"):
        builder.push(image)
    builder.registry.password = auth_registry.password
    pushed = builder.push(image)
    assert pushed.ref.startswith(auth_registry.address) and pushed.digest.startswith("sha256:")


@pytest.mark.parametrize("platform", ["openfaas", "knative"])
def test_built_image_runs_unmodified_on_openfaas_and_knative(
    builder, tmp_path, docker_client, test_labels, platform
):
    """OpenFaaS and Knative call no /init: the code comes with the deployment (env), JSON in/out on POST /."""
    bundle = make_bundle(tmp_path, "SCALE = 2\n" + CODE, unique_requirements())
    image = builder.build(bundle)
    port = 8080 if platform == "openfaas" else 9000
    env = {"__OW_ACTION_CODE": bundle.code}
    if platform == "knative":
        env.update(PORT=str(port), K_SERVICE="peaks")
    container = docker_client.containers.run(
        image.ref, detach=True, environment=env, labels=test_labels
    )
    try:
        address = engine.container_address(container)
        ActionClient(address, port).wait_ready(30)
        session = requests.Session()
        session.trust_env = False
        if platform == "openfaas":
            assert session.get(f"http://{address}:{port}/_/health", timeout=5).status_code == 200
            assert container.exec_run("cat /tmp/.lock").exit_code == 0
        resp = session.post(f"http://{address}:{port}/", json={"threshold": 3}, timeout=10)
        assert resp.status_code == 200 and resp.json() == {"n": 2, "scale": 2}
    finally:
        engine.remove_container(container)


def test_built_image_runs_as_openwhisk_blackbox(builder, tmp_path, docker_client, test_labels):
    """What an OpenWhisk invoker does: run the image as is, /init with the code, /run."""
    bundle = make_bundle(tmp_path, "SCALE = 3\n" + CODE, unique_requirements())
    image = builder.build(bundle)
    container = docker_client.containers.run(
        image.ref, detach=True, labels=test_labels, mem_limit="256m"
    )
    try:
        action = ActionClient(engine.container_address(container))
        action.wait_ready(30)
        init = action.init(
            {"name": "peaks", "main": "main", "code": bundle.code, "binary": False, "env": {}}, 10
        )
        assert init.status == 200
        assert action.init({"code": bundle.code}, 10).status == 403, (
            "OpenWhisk forbids a second init"
        )
        run = action.run(
            {
                "value": {"threshold": 1},
                "activation_id": "a" * 32,
                "deadline": str(int(time.time() * 1000) + 60000),
            },
            10,
        )
        assert run.status == 200 and run.body == {"n": 4, "scale": 3}
        deadline = time.monotonic() + 5
        while container.logs().decode().count("XXX_THE_END_OF_A_WHISK_ACTIVATION_XXX") < 2:
            assert time.monotonic() < deadline, "both end-of-activation markers are logged"
            time.sleep(0.05)
    finally:
        engine.remove_container(container)


def test_cli_build_test_push(tmp_path, base_image, registry, run_label):
    """`jupyter faas build|test|push PATH` on a bundle folder, outside a notebook."""
    import subprocess
    import sys

    bundle = make_bundle(tmp_path, "SCALE = 5\n" + CODE, unique_requirements())
    options = [
        f"--FaaSImages.base_image={base_image}",
        f"--FaaSRegistry.url={registry}",
        f'--DockerBuilder.extra_labels={{"org.jupyter-faas.run": "{run_label}"}}',
    ]
    cli = [sys.executable, "-m", "jupyter_faas.cli"]
    built = subprocess.run(
        [*cli, "build", str(bundle.path), *options], capture_output=True, text=True, timeout=600
    )
    assert built.returncode == 0, built.stderr
    tested = subprocess.run(
        [*cli, "test", str(bundle.path), '{"threshold": 0}', "--json", *options],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert tested.returncode == 0, tested.stderr
    assert json.loads(tested.stdout.strip().splitlines()[-1])["result"] == {"n": 5, "scale": 5}
    pushed = subprocess.run(
        [*cli, "push", str(bundle.path), *options], capture_output=True, text=True, timeout=600
    )
    assert pushed.returncode == 0, pushed.stderr
    assert pushed.stdout.startswith(f"{registry}/jupyter-faas/deps:")
    progress = [line for line in pushed.stderr.splitlines() if line.startswith("[push]")]
    assert progress and len(progress) == len(set(progress)), pushed.stderr
    bad = subprocess.run(
        [*cli, "test", str(tmp_path / "nope")], capture_output=True, text=True, timeout=60
    )
    assert bad.returncode == 1 and "is not a folder" in bad.stderr


def test_site_settings_reach_test_containers(builder, tmp_path):
    builder.site.https_proxy = "http://127.0.0.1:3128"
    code = "import os\n\ndef main(args):\n    return {k: os.environ.get(k) for k in ('HTTPS_PROXY', 'PIP_CERT')}\n"
    bundle = make_bundle(tmp_path, code, unique_requirements())
    run = builder.test(bundle, builder.build(bundle), {})
    assert run.result == {"HTTPS_PROXY": "http://127.0.0.1:3128", "PIP_CERT": "/faas/site-ca.crt"}


KNOCK = """
import socket


def main(args):
    reached = {}
    for ip in args["ips"]:
        try:
            socket.create_connection((ip, args["port"]), timeout=2).close()
            reached[ip] = True
        except OSError:
            reached[ip] = False
    return reached
"""


def test_test_containers_reach_no_service_of_the_host(builder, tmp_path, docker_client):
    """A hub's build service runs users' code in test containers: confined like actions (this
    suite runs as root, so the firewall applies), on a network without inter-container traffic."""
    from jupyter_faas.builders.docker import TEST_NETWORK
    from jupyter_faas.server.pool import firewall

    assert firewall.unavailable() == "", "CI runs the suite as root with iptables"
    bundle = make_bundle(tmp_path, KNOCK, name="knock")
    image = builder.build(bundle)
    assert builder.test(bundle, image, {"ips": [], "port": 1}).result == {}
    network = docker_client.networks.get(TEST_NETWORK)
    assert network.attrs["Options"]["com.docker.network.bridge.enable_icc"] == "false"
    gateways = [engine.gateway_of(net) for net in (network, docker_client.networks.get("bridge"))]
    with socket.create_server(("0.0.0.0", 0)) as listener:
        port = listener.getsockname()[1]
        run = builder.test(bundle, image, {"ips": gateways, "port": port})
    assert run.status == "success", run
    assert run.result == dict.fromkeys(gateways, False)
