"""Two users on a real hub: the whole loop from their own containers, and what keeps them apart.

Each user's JupyterLab runs in a DockerSpawner container with no Docker engine; the
kernels build, test and push through the faas service and deploy into the user's own
namespace. The tests run in order: the loop first, then what it left is checked for
isolation, then the service is killed (the hub restarts it).
"""

from __future__ import annotations

import base64
import io
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
import zipfile
from pathlib import Path

import pytest
import requests
from hubtools import Kernel, run_ok
from support import loopback

# The first test also waits for scripts/hub.sh --prepare (a fresh machine builds the wheel
# and the single-user image) and for two spawns on 2 cores.
pytestmark = [pytest.mark.docker, pytest.mark.timeout(2400)]

USERS = ("alice", "bob")


@pytest.fixture(scope="module")
def people(hub):
    """aliceRUN and bobRUN: hub users with tokens, their servers started at once, kernels."""
    rid = uuid.uuid4().hex[:6]
    names = {short: f"{short}{rid}" for short in USERS}  # no escaping in names
    for name in names.values():
        hub.add_user(name)
    for name in names.values():
        hub.start_server(name)
    found = {}
    for short, name in names.items():
        hub.wait_ready(name)
        token = hub.user_token(name)
        found[short] = {"name": name, "token": token, "kernel": Kernel(hub, name, token)}
    yield found
    for person in found.values():
        person["kernel"].close()


def namespace_of(hub, person) -> dict:
    resp = hub.service("GET", "api/namespace", person["token"])
    assert resp.status_code == 200, resp.text
    return resp.json()


def function_server(hub, api_key: str, path: str) -> requests.Response:
    user, _, key = api_key.partition(":")
    return loopback().get(f"{hub.server_url}/api/v1/{path}", auth=(user, key), timeout=30)


@pytest.mark.parametrize("short", USERS)
def test_the_loop_runs_in_each_users_container(hub, people, short):
    kernel = people[short]["kernel"]
    function = f"twice-{short[0]}"
    run_ok(kernel, '%load_ext jupyter_faas\n%config FaaSMagics.progress_style = "text"')
    run_ok(kernel, "def double(x):\n    return 2 * x")
    text = run_ok(
        kernel,
        f"%%faas {function} --test '{{\"x\": 21}}'\ndef main(args):\n"
        '    return {"y": double(args["x"])}',
    )
    # Progress streamed back from the service, then the verdict of the container test.
    assert "dependency image" in text and "Running the function in its container" in text, text
    assert "equal" in text and "42" in text, text
    text = run_ok(kernel, f"%faas deploy {function}")
    assert f"Deployed {function}" in text, text
    assert run_ok(kernel, f"%faas invoke {function} '{{\"x\": 5}}'").count("'y': 10") >= 1
    deployed = json.loads(
        run_ok(kernel, f"print(open('functions/{function}/deployed.json').read())")
    )
    mine = namespace_of(hub, people[short])
    assert deployed["namespace"] == mine["namespace"] == people[short]["name"]
    # Pushed by the service under the namespace's own registry path.
    assert deployed["image"].startswith(f"127.0.0.1:5000/{mine['registry']}/deps:"), deployed
    assert mine["registry"].startswith(hub.registry_prefix + "/")


def test_a_code_only_edit_asks_the_service_for_no_build(hub, people):
    """The kernel remembers the service's build of a requirements text: an edit goes straight
    to its container test; an image the service lost meanwhile is built again, not an error."""
    kernel = people[USERS[0]]["kernel"]
    cell = '%%faas memo --test \'{"x": 1}\'\ndef main(args):\n    return {"y": args["x"] + N}'
    first = run_ok(kernel, cell.replace("N", "1"))
    assert "equal" in first, first  # built or looked up by the service, or remembered
    edit = run_ok(kernel, cell.replace("N", "2"))
    assert "(built for this kernel)" in edit and "equal" in edit and "3" in edit, edit
    # The service loses the image (here: the kernel's memory of it names a key it never
    # built): the test is refused with "no dependency image", so the kernel builds again.
    run_ok(
        kernel,
        "import dataclasses\n"
        "from jupyter_faas.fanout import current_workspace\n"
        "memo = current_workspace().builder._built\n"
        "assert memo, 'nothing remembered'\n"
        "for text, built in memo.items():\n"
        "    memo[text] = dataclasses.replace(built, key='0' * 64)",
    )
    again = run_ok(kernel, cell.replace("N", "3"))
    assert "success" in again and '{"y": 4}' in again, again
    assert "(built for this kernel)" in run_ok(kernel, cell.replace("N", "4"))


def test_users_see_only_their_own_functions_and_activations(hub, people):
    alice, bob = (namespace_of(hub, people[s]) for s in USERS)
    assert alice["api_key"] != bob["api_key"]
    bob_actions = [
        a["name"] for a in function_server(hub, bob["api_key"], "namespaces/_/actions").json()
    ]
    assert "twice-b" in bob_actions and "twice-a" not in bob_actions
    alice_runs = function_server(hub, alice["api_key"], "namespaces/_/activations").json()
    bob_runs = function_server(hub, bob["api_key"], "namespaces/_/activations").json()
    assert {r["name"] for r in alice_runs} == {"twice-a"}
    assert {r["name"] for r in bob_runs} == {"twice-b"}
    assert not {r["activationId"] for r in alice_runs} & {r["activationId"] for r in bob_runs}
    # Bob's key names Alice's namespace in vain, also through the service's relay.
    for base in (hub.server_url, f"{hub.url}/services/faas"):
        user, _, key = bob["api_key"].partition(":")
        resp = loopback().get(
            f"{base}/api/v1/namespaces/{alice['namespace']}/actions", auth=(user, key), timeout=30
        )
        assert resp.status_code in (401, 403), resp.text
    listing = run_ok(people["bob"]["kernel"], "%faas list")
    assert "twice-b" in listing and "twice-a" not in listing, listing


def test_a_users_token_acts_on_its_own_namespace_only(hub, people):
    alice = people["alice"]
    assert namespace_of(hub, alice)["namespace"] == alice["name"]
    # Operator routes refuse a user's token; no token is refused everywhere.
    assert hub.service("GET", "api/namespaces", alice["token"]).status_code == 403
    resp = hub.service("DELETE", f"api/namespaces/{people['bob']['name']}", alice["token"])
    assert resp.status_code == 403, resp.text
    assert "custom:faas:admin" in resp.json()["error"]
    assert hub.service("GET", "api/namespace", "").status_code == 403
    assert hub.service("GET", "api/namespace", "not-a-token").status_code == 403
    # The kernel's own token ($JUPYTERHUB_API_TOKEN) is the server owner's, and only that.
    text = run_ok(
        alice["kernel"],
        "import os, requests\n"
        "r = requests.get(os.environ['FAAS_HUB_SERVICE_URL'] + 'api/namespace',\n"
        "    headers={'Authorization': 'token ' + os.environ['JUPYTERHUB_API_TOKEN']})\n"
        "print(r.status_code, r.json()['namespace'])",
    )
    assert text.split() == ["200", alice["name"]]
    # The operator token reads the map, without keys.
    listed = hub.service("GET", "api/namespaces", hub.admin_token).json()["namespaces"]
    users = {e["user"]: e for e in listed}
    assert {p["name"] for p in people.values()} <= set(users)
    assert all("api_key" not in e for e in listed)


def test_each_server_runs_the_pinned_image_with_its_limits_and_volumes(hub, people):
    for short in USERS:
        name = people[short]["name"]
        container = hub.container(name)
        host = container.attrs["HostConfig"]
        assert container.attrs["Config"]["Image"] == hub.image
        assert host["Memory"] == 2 * 1024**3
        assert host["CpuPeriod"] > 0 and host["CpuQuota"] == host["CpuPeriod"]  # 1 CPU
        assert host["PidsLimit"] == 512 and host["CapDrop"] == ["ALL"]
        mounts = {m["Destination"]: m.get("Name") for m in container.attrs["Mounts"]}
        assert mounts == {
            "/home/jovyan/work": f"{hub.prefix}-home-{name}",
            "/home/jovyan/team": f"{hub.prefix}-team",
        }
    # The team volume is one folder for everyone, each home a folder of one's own.
    note = f"from alice {uuid.uuid4().hex}"
    run_ok(people["alice"]["kernel"], f"open('team/hello.txt', 'w').write({note!r})")
    run_ok(people["alice"]["kernel"], "open('work/mine.txt', 'w').write('alice only')")
    assert run_ok(people["bob"]["kernel"], "print(open('team/hello.txt').read())").strip() == note
    assert run_ok(people["bob"]["kernel"], "import os; print(os.listdir('work'))").strip() == "[]"


@pytest.fixture
def host_listener():
    """A TCP service of this test on all of the host's addresses: only the firewall keeps
    user containers from it."""
    server = socket.create_server(("0.0.0.0", 0))
    server.settimeout(0.5)
    stop = threading.Event()

    def serve():
        while not stop.is_set():
            try:
                conn, _ = server.accept()
                conn.sendall(b"hello\n")
                conn.close()
            except OSError:
                continue

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield server.getsockname()[1]
    stop.set()
    thread.join(5)
    server.close()


PROBE = """
import json, os, socket, urllib.parse, urllib.request
def reach(host, port):
    try:
        socket.create_connection((host, port), timeout=3).close()
        return True
    except OSError:
        return False
gateway = urllib.parse.urlparse(os.environ['FAAS_HUB_SERVICE_URL']).hostname
hub_api = urllib.parse.urlparse(os.environ['JUPYTERHUB_API_URL'])
try:
    urllib.request.urlopen(urllib.request.Request(
        f'http://{{gateway}}:5000/v2/x/blobs/uploads/', method='POST'), timeout=3)
    push = 'answered'
except Exception as err:
    push = type(err).__name__
print(json.dumps({{
    'socket': [p for p in ('/var/run/docker.sock', '/run/docker.sock') if os.path.exists(p)],
    'docker_env': sorted(k for k in os.environ if k.startswith('DOCKER')),
    'hub_api': reach(hub_api.hostname, hub_api.port),
    'listener': reach(gateway, {listener}),
    'engine': reach(gateway, 2375) or reach(gateway, 2376),
    'registry': reach(gateway, 5000) or reach('127.0.0.1', 5000),
    'function_server': reach(gateway, {server_port}),
    'neighbour': reach('{neighbour}', 8888),
    'push': push,
}}))
"""


def test_user_containers_reach_neither_the_engine_nor_the_registry_nor_each_other(
    hub, people, host_listener
):
    for short, other in (("alice", "bob"), ("bob", "alice")):
        container = hub.container(people[short]["name"])
        env = dict(e.split("=", 1) for e in container.attrs["Config"]["Env"])
        assert not {k for k in env if k.startswith("DOCKER")}
        assert not [m for m in container.attrs["Mounts"] if "docker.sock" in m.get("Source", "")]
        neighbour = hub.container(people[other]["name"])
        address = neighbour.attrs["NetworkSettings"]["Networks"][hub.network]["IPAddress"]
        code = PROBE.format(
            listener=host_listener,
            server_port=hub.server_url.rsplit(":", 1)[1],
            neighbour=address,
        )
        found = json.loads(run_ok(people[short]["kernel"], code).strip().splitlines()[-1])
        assert found["hub_api"] is True, found  # the probe can succeed where allowed
        assert found == {
            "socket": [],
            "docker_env": [],
            "hub_api": True,
            "listener": False,
            "engine": False,
            "registry": False,
            "function_server": False,
            "neighbour": False,
            "push": found["push"],
        }, found
        assert found["push"] != "answered"


def test_a_user_without_a_namespace_gets_one_on_first_call(hub):
    carol = f"carol{uuid.uuid4().hex[:6]}"
    hub.add_user(carol)
    before = hub.service("GET", "api/namespaces", hub.admin_token).json()["namespaces"]
    assert carol not in {e["user"] for e in before}
    resp = hub.service("GET", "api/namespace", hub.user_token(carol))
    assert resp.status_code == 200, resp.text
    made = resp.json()
    assert made["namespace"] == carol and made["user"] == carol
    assert function_server(hub, made["api_key"], "namespaces").json() == [carol]
    after = hub.service("GET", "api/namespaces", hub.admin_token).json()["namespaces"]
    assert carol in {e["user"] for e in after}
    assert os.stat(hub.state / "faas" / "namespaces.json").st_mode & 0o077 == 0
    # A key rotated behind the service's back is replaced at the next lookup.
    rotated = subprocess.run(
        [
            str(Path(sys.executable).parent / "jupyter-faas"),
            "namespace",
            "rotate",
            carol,
            f"--data-dir={hub.server_data}",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert rotated.returncode == 0, rotated.stderr
    assert function_server(hub, made["api_key"], "namespaces").status_code == 401
    again = hub.service("GET", "api/namespace", hub.user_token(carol)).json()
    assert again["api_key"] not in (made["api_key"], rotated.stdout.strip())
    assert function_server(hub, again["api_key"], "namespaces").json() == [carol]


def test_builds_stream_progress_and_bad_requests_are_refused(hub, people):
    token = people["alice"]["token"]
    resp = hub.service(
        "POST", "api/build", token, json={"requirements": f"# hub test {uuid.uuid4().hex}\n"}
    )
    assert resp.status_code == 200 and resp.headers["Content-Type"].startswith(
        "application/x-ndjson"
    )
    lines = [json.loads(line) for line in resp.text.splitlines()]
    assert [line for line in lines[:-1] if "progress" not in line] == []
    assert any("Building dependency image" in line["progress"]["message"] for line in lines[:-1])
    built = lines[-1]["result"]
    assert built["reused"] is False and len(built["key"]) == 64
    resp = hub.service("POST", "api/push", token, json={"key": "../../etc"})
    assert resp.status_code == 400 and "dependency key" in resp.json()["error"]
    resp = hub.service("POST", "api/push", token, json={"key": "0" * 64})
    lines = [json.loads(line) for line in resp.text.splitlines()]
    assert lines[-1]["reason"] == "not-found" and "Build it first" in lines[-1]["hint"]
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("../escape.py", "x = 1\n")
    resp = hub.service(
        "POST",
        "api/test",
        token,
        json={"bundle": base64.b64encode(buf.getvalue()).decode(), "key": built["key"], "args": {}},
    )
    lines = [json.loads(line) for line in resp.text.splitlines()]
    assert lines[-1]["reason"] == "bad-request" and "leaves its folder" in lines[-1]["error"]


def test_the_kernel_says_clearly_when_the_service_is_down(hub, people):
    service = _service_pid(hub.proc.pid)
    os.kill(service, signal.SIGKILL)
    # A container test: the kernel may remember the build, the test needs the service.
    out = people["alice"]["kernel"].run("%faas test twice-a '{\"x\": 2}'")
    # A UsageError: IPython prints the message alone, without a traceback.
    said = out.text + (out.error or "")
    assert "UsageError: The hub's faas service at" in said, said
    assert "not reachable" in said and "operator" in said and "Traceback" not in said, said
    # The hub restarts its managed service; the same build works again.
    deadline = time.monotonic() + 120
    while not _healthy(hub):
        assert time.monotonic() < deadline, hub.log_tail()
        time.sleep(1)
    again = run_ok(people["alice"]["kernel"], "%faas test twice-a '{\"x\": 2}'")
    assert "success" in again and '{"y": 4}' in again, again


def _healthy(hub) -> bool:
    try:
        return hub.service("GET", "api/health", "").status_code == 200
    except requests.ConnectionError:
        return False


def _service_pid(hub_pid: int) -> int:
    """The faas service: the hub's child running ``python -m jupyter_faas.hub``."""
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
        except (OSError, ValueError, IndexError):
            continue
        if ppid == hub_pid and b"jupyter_faas.hub" in argv:
            return int(entry)
    raise AssertionError("the faas service process was not found among the hub's children")
