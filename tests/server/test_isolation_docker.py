"""Isolation of action containers on the real Docker engine (issue 9).

Every action and every neighbour is assumed hostile: the checks run from inside real
containers. An action runs unprivileged (not root, no capabilities, no new privileges,
read-only root filesystem, a bounded /tmp, a pids and a CPU limit, bounded logs); warm
containers of a shared action are never shared between invoking namespaces; and a server
removes at start only the crash orphans it owns, never another server's containers.
Everything created carries this run's label, so the session teardown removes exactly it.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import re
import socket
import subprocess
import time

import pytest
from conftest import Client
from support import activation_job
from traitlets import TraitError, Unicode
from traitlets.config import Configurable

from jupyter_faas import engine
from jupyter_faas.errors import ConfigError
from jupyter_faas.server import namespace_main
from jupyter_faas.server.pool import firewall
from jupyter_faas.server.pool.containers import ACTION_LABEL, OWNER_LABEL
from jupyter_faas.server.pool.docker import OWNER_FILE, DockerInvoker

RUN_LABEL = "org.jupyter-faas.run"
A = "/api/v1/namespaces/_"

#: Reports what an action may do from inside its container.
PROBE = r'''
import errno
import os


def attempt(path):
    try:
        with open(path, "w") as f:
            f.write("x")
    except OSError as err:
        return errno.errorcode[err.errno]
    os.remove(path)
    return "written"


def fill(path, mb):
    """MB written to ``path`` before the first error, and that error."""
    chunk, written, error = b"\0" * (1 << 20), 0, None
    try:
        with open(path, "wb") as f:
            for _ in range(mb):
                f.write(chunk)
                f.flush()
                written += 1
    except OSError as err:
        error = errno.errorcode[err.errno]
    if os.path.exists(path):
        os.remove(path)
    return written, error


def main(args):
    status = dict(
        line.split(":", 1) for line in open("/proc/self/status").read().splitlines() if ":" in line
    )
    return {
        "uid": os.getuid(),
        "gid": os.getgid(),
        "root": attempt("/probe"),
        "faas": attempt("/faas/probe"),
        "small": fill("/tmp/small", 4),
        "big": fill("/tmp/big", 64),
        "cap_eff": status["CapEff"].strip(),
        "no_new_privs": status["NoNewPrivs"].strip(),
        "code_dir": os.path.exists("/tmp/faas-action"),
    }
'''

#: A bounded fork bomb: fork until refused (or ``tries``), children hold their pid briefly.
FORK_BOMB = """
import os
import time


def main(args):
    children, refused = [], None
    deadline = time.monotonic() + 20
    for _ in range(args["tries"]):
        if time.monotonic() > deadline:
            break
        try:
            pid = os.fork()
        except OSError as err:
            refused = err.strerror
            break
        if pid == 0:
            time.sleep(2)
            os._exit(0)
        children.append(pid)
    for pid in children:
        os.waitpid(pid, 0)
    return {"forked": len(children), "refused": refused}
"""

#: Module-level state that a second caller must never see.
STATEFUL = """
SEEN = []


def main(args):
    before = list(SEEN)
    SEEN.append(args["caller"])
    return {"seen": before}
"""


# ---- fixtures ---------------------------------------------------------------------------


@pytest.fixture
def make_invoker(loop, runtime_image, run_label):
    """Start DockerInvokers labelled with this run (no prewarm unless asked); stop them after."""
    started = []

    def make(**traits) -> DockerInvoker:
        invoker = DockerInvoker(
            **{
                "python_image": runtime_image,
                "prewarm_count": 0,
                "extra_labels": {RUN_LABEL: run_label},
                **traits,
            }
        )
        loop.run_until_complete(invoker.start())
        started.append(invoker)
        return invoker

    yield make
    for invoker in started:
        loop.run_until_complete(invoker.stop())


def run(loop, invoker, code, **settings):
    outcome = loop.run_until_complete(invoker.run(activation_job(code, **settings)))
    assert outcome.status_code == 0, outcome.result
    return outcome.result


def ids_of(client, **labels) -> set[str]:
    filters = [engine.LABEL] + [f"{k}={v}" for k, v in labels.items()]
    return {c.id for c in client.containers.list(all=True, sparse=True, filters={"label": filters})}


class _Server(Configurable):
    data_dir = Unicode()


# ---- settings (no Docker) ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("traits", "words"),
    [
        ({"user": "root;rm"}, "not a Docker user"),
        ({"pids_limit": 5}, "at least 16"),
        ({"pids_limit": -1}, "at least 16"),
        ({"cpus": -1.0}, "at least 0.01"),
        ({"tmp_size_mb": -1}, "negative size"),
        ({"log_max_mb": -5}, "negative size"),
        ({"log_max_files": 0}, "at least 1 file"),
        ({"cap_drop": ["ALL", "net raw"]}, "not a capability name"),
        ({"security_opt": [" "]}, "empty option"),
        ({"owner": "a/b"}, "not a valid owner id"),
    ],
)
def test_bad_hardening_settings_are_refused(traits, words):
    with pytest.raises(TraitError, match=re.escape(words)):
        DockerInvoker(**traits)


def test_read_only_root_needs_a_tmpfs():
    with pytest.raises(TraitError, match="no writable /tmp"):
        DockerInvoker(tmp_size_mb=0).hardening()
    options = DockerInvoker(tmp_size_mb=0, read_only_root=False).hardening().run_options()
    assert "tmpfs" not in options and options["read_only"] is False


def test_default_hardening_options():
    options = DockerInvoker().hardening().run_options()
    assert options["user"] == "65534:65534" and options["read_only"] is True
    assert options["cap_drop"] == ["ALL"] and options["security_opt"] == ["no-new-privileges"]
    assert options["tmpfs"] == {"/tmp": "rw,exec,nosuid,nodev,size=64m,mode=1777"}
    assert options["pids_limit"] == 256 and options["nano_cpus"] == 1_000_000_000
    assert options["log_config"]["Config"] == {"max-size": "10m", "max-file": "3"}
    off = DockerInvoker(user="", pids_limit=0, cpus=0, log_max_mb=0, cap_drop=[])
    options = off.hardening().run_options()
    assert not {"user", "pids_limit", "nano_cpus", "log_config"} & set(options)


def test_owner_is_kept_in_the_data_directory(tmp_path):
    first = DockerInvoker(parent=_Server(data_dir=str(tmp_path / "one"))).owner
    again = DockerInvoker(parent=_Server(data_dir=str(tmp_path / "one"))).owner
    other = DockerInvoker(parent=_Server(data_dir=str(tmp_path / "two"))).owner
    assert first == again != other
    assert (tmp_path / "one" / OWNER_FILE).read_text().strip() == first
    assert DockerInvoker().owner != DockerInvoker().owner  # no data dir: owns only its own
    (tmp_path / "one" / OWNER_FILE).write_text("not an id!\n")
    with pytest.raises(TraitError, match="Delete the file"):
        _ = DockerInvoker(parent=_Server(data_dir=str(tmp_path / "one"))).owner


# ---- finding 3: confinement, seen from inside --------------------------------------------


@pytest.mark.docker
def test_action_runs_unprivileged_on_a_read_only_root(loop, make_invoker, docker_client):
    invoker = make_invoker(tmp_size_mb=16)
    probe = run(loop, invoker, PROBE, name="probe")
    assert probe["uid"] == 65534 and probe["gid"] == 65534
    assert probe["root"] in ("EROFS", "EACCES") and probe["faas"] in ("EROFS", "EACCES")
    assert probe["small"] == [4, None], "/tmp is writable"
    written, error = probe["big"]
    assert error == "ENOSPC" and 8 <= written <= 16, probe["big"]
    assert int(probe["cap_eff"], 16) == 0 and probe["no_new_privs"] == "1"
    assert probe["code_dir"], "the runtime keeps the action code under /tmp"
    (slot,) = invoker._slots.values()
    host = docker_client.api.inspect_container(slot.id)["HostConfig"]
    assert host["ReadonlyRootfs"] and host["CapDrop"] == ["ALL"]
    assert host["SecurityOpt"] == ["no-new-privileges"]
    assert host["PidsLimit"] == 256 and host["NanoCpus"] == 1_000_000_000
    assert host["LogConfig"] == {
        "Type": "json-file",
        "Config": {"max-size": "10m", "max-file": "3"},
    }
    assert host["Memory"] == 256 * 1024 * 1024 == host["MemorySwap"]


@pytest.mark.docker
def test_fork_bomb_hits_the_pids_limit_and_the_server_goes_on(loop, make_invoker):
    invoker = make_invoker(pids_limit=32)
    bomb = run(loop, invoker, FORK_BOMB, name="bomb", params={"tries": 500})
    assert bomb["refused"] and bomb["forked"] < 32, bomb
    # The same container forks again once its children are gone; other actions run.
    again = run(loop, invoker, FORK_BOMB, name="bomb", params={"tries": 500})
    assert again["refused"] and again["forked"] >= bomb["forked"] - 2, again
    assert run(loop, invoker, PROBE, name="after")["uid"] == 65534


@pytest.mark.docker
def test_prewarm_and_native_containers_are_confined(loop, make_invoker, runtime_image):
    invoker = make_invoker(prewarm_count=1)
    deadline = time.monotonic() + 30
    while not any(s.state == "prewarm" for s in invoker._slots.values()):
        assert time.monotonic() < deadline, "no prewarm container"
        loop.run_until_complete(asyncio.sleep(0.1))
    assert run(loop, invoker, PROBE, name="warm")["cap_eff"].strip("0") == ""
    script = '#!/bin/sh\necho "{\\"uid\\": $(id -u), \\"pwd\\": \\"$(pwd)\\"}"\n'
    native = run(loop, invoker, script, name="native", kind="blackbox", image=runtime_image)
    assert native == {"uid": 65534, "pwd": "/tmp/faas-action"}


# ---- finding 13: two servers on one engine ------------------------------------------------


@pytest.mark.docker
def test_servers_remove_only_their_own_orphans(loop, make_invoker, docker_client, run_label):
    first_owner, second_owner = f"first-{run_label}", f"second-{run_label}"
    first = make_invoker(owner=first_owner, prewarm_count=1)
    run(loop, first, PROBE, name="first")
    deadline = time.monotonic() + 30
    while len(ids_of(docker_client, **{OWNER_LABEL: first_owner})) < 2:
        assert time.monotonic() < deadline, "the first server's containers did not start"
        loop.run_until_complete(asyncio.sleep(0.1))
    firsts = ids_of(docker_client, **{OWNER_LABEL: first_owner})

    second = make_invoker(owner=second_owner)
    assert firsts <= ids_of(docker_client, **{OWNER_LABEL: first_owner}), (
        "starting another server removed the first one's containers"
    )
    run(loop, second, PROBE, name="second")
    seconds = ids_of(docker_client, **{OWNER_LABEL: second_owner})
    assert len(seconds) == 1

    # The first server "restarts" (same owner) while its old containers are still there.
    make_invoker(owner=first_owner)
    assert not firsts & ids_of(docker_client, **{OWNER_LABEL: first_owner}), (
        "the restarted server left its orphans"
    )
    assert ids_of(docker_client, **{OWNER_LABEL: second_owner}) == seconds


# ---- finding 4: warm containers are per invoking namespace -------------------------------


@pytest.fixture(scope="module")
def server(start_real_server):
    """A real server without prewarm: each container then carries its action key as a label."""
    return start_real_server("--DockerInvoker.prewarm_count=0")


@pytest.mark.docker
def test_shared_action_keeps_module_state_per_caller(server, docker_client):
    guest = server.client()
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert namespace_main(["create", "alice", "--data-dir", str(server.data_dir)]) == 0
    alice = Client(server.base, out.getvalue().strip())
    assert guest.put(f"{A}/packages/common", json={"publish": True}).status_code == 200
    body = {"exec": {"kind": "python:3.11", "code": STATEFUL}}
    assert guest.put(f"{A}/actions/common/counter", json=body).status_code == 200

    def call(client: Client, caller: str) -> list:
        r = client.post(
            "/api/v1/namespaces/guest/actions/common/counter",
            params={"blocking": "true", "result": "true"},
            json={"caller": caller},
            timeout=120,
        )
        assert r.status_code == 200, r.text
        return r.json()["seen"]

    assert call(guest, "guest") == []
    assert call(guest, "guest") == ["guest"], "one caller reuses its warm container"
    assert call(alice, "alice") == [], "alice saw the state guest left in a warm container"
    assert call(alice, "alice") == ["alice"]
    assert call(guest, "guest") == ["guest", "guest"]

    def keys(version: str) -> set[str]:
        prefix = f"guest/common/counter@{version}@"
        # Sparse (labels from the listing itself): a full listing inspects each container and
        # fails on one removed meanwhile, which is what this test waits for.
        found = docker_client.containers.list(
            all=True, sparse=True, filters={"label": [ACTION_LABEL]}
        )
        labels = [c.attrs.get("Labels") or {} for c in found]
        return {key for key in (lab[ACTION_LABEL] for lab in labels) if key.startswith(prefix)}

    def gone(version: str) -> bool:
        deadline = time.monotonic() + 15
        while keys(version):
            if time.monotonic() > deadline:
                return False
            time.sleep(0.2)
        return True

    assert keys("0.0.1") == {"guest/common/counter@0.0.1@guest", "guest/common/counter@0.0.1@alice"}
    # An update, then a delete, removes the idle containers of every caller.
    r = guest.put(f"{A}/actions/common/counter?overwrite=true", json=body)
    assert r.status_code == 200 and r.json()["version"] == "0.0.2", r.text
    assert gone("0.0.1"), "the replaced version's containers of some caller are still there"
    assert call(alice, "alice") == []
    assert keys("0.0.2") == {"guest/common/counter@0.0.2@alice"}
    assert guest.delete(f"{A}/actions/common/counter").status_code == 200
    assert gone("0.0.2"), "the deleted action's containers of another caller are still there"


# ---- finding 1: neighbours cannot reach one another ----------------------------------------

#: Tries to open a TCP connection to a neighbour container's runtime port.
KNOCK = """
import socket


def main(args):
    try:
        socket.create_connection((args["ip"], args.get("port", 8080)), timeout=3).close()
    except OSError as err:
        return {"reached": False, "why": type(err).__name__}
    return {"reached": True}
"""


def knock(loop, invoker) -> dict:
    """Start a neighbour container, then knock on its port 8080 from another action."""
    run(loop, invoker, PROBE, name="neighbour")
    (neighbour,) = invoker._slots.values()
    return run(loop, invoker, KNOCK, name="knocker", params={"ip": neighbour.address})


def host_address() -> str:
    """This host's address on its way out (no packet is sent)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.connect(("192.0.2.123", 9))
        return probe.getsockname()[0]


def chains_of(network) -> dict[str, bool]:
    """Whether each of the network's firewall chains exists."""
    short = network.id[:12]
    return {
        chain: subprocess.run(["iptables", "-w", "10", "-S", chain], capture_output=True).returncode
        == 0
        for chain in (f"FAAS-I-{short}", f"FAAS-F-{short}")
    }


@pytest.fixture
def listeners():
    """Two TCP services on every address of this host (as Jupyter, a registry or the
    Docker API on TCP may listen); their ports."""
    with socket.create_server(("0.0.0.0", 0)) as one, socket.create_server(("0.0.0.0", 0)) as two:
        yield one.getsockname()[1], two.getsockname()[1]


@pytest.mark.docker
def test_action_reaches_no_neighbour_no_host_service(
    loop, make_invoker, docker_client, run_label, listeners
):
    """Finding 1 and the egress rule: by default an action reaches neither a neighbour nor a
    service of the host, at its own network's gateway, Docker's bridge or the host's address."""
    assert firewall.unavailable() == "", "CI runs the suite as root with iptables"
    owner = f"net-{run_label}"
    invoker = make_invoker(owner=owner)
    assert knock(loop, invoker) == {"reached": False, "why": "TimeoutError"}
    network = docker_client.networks.get(f"faas-net-{owner}")
    assert network.attrs["Options"]["com.docker.network.bridge.enable_icc"] == "false"
    port = listeners[0]
    for ip in (
        engine.gateway_of(network),
        engine.gateway_of(docker_client.networks.get("bridge")),
        host_address(),
    ):
        reached = run(loop, invoker, KNOCK, name="caller", params={"ip": ip, "port": port})
        assert reached == {"reached": False, "why": "TimeoutError"}, ip
    assert network.attrs["Labels"][RUN_LABEL] == run_label
    assert network.attrs["Labels"][OWNER_LABEL] == owner
    assert chains_of(network) == dict.fromkeys(chains_of(network), True)
    loop.run_until_complete(invoker.stop())
    assert not docker_client.networks.list(names=[f"faas-net-{owner}"]), "our network is left"
    assert not any(chains_of(network).values()), "its firewall rules are left"


@pytest.mark.docker
def test_allowed_destinations_site_wide_and_per_namespace(
    loop, make_invoker, docker_client, run_label, listeners
):
    """What the site allows is reachable, nothing else; a namespace with destinations of its
    own gets a network of its own, and its neighbours do not get its destinations."""
    allowed, other = listeners
    owner = f"egress-{run_label}"
    invoker = make_invoker(
        owner=owner,
        allowed_egress=[f"host:{allowed}"],
        allowed_egress_by_namespace={"beamline": [f"host:{other}"]},
    )
    network = docker_client.networks.get(f"faas-net-{owner}")
    here = engine.gateway_of(network)

    def reach(namespace, port):
        job = activation_job(
            KNOCK, name="caller", params={"ip": here, "port": port}, namespace=namespace
        )
        outcome = loop.run_until_complete(invoker.run(job))
        assert outcome.status_code == 0, outcome.result
        return outcome.result["reached"]

    assert reach("guest", allowed) is True
    assert reach("guest", other) is False
    assert reach("beamline", allowed) is True, "the site-wide destinations still apply"
    assert reach("beamline", other) is True
    nets = {
        slot.action_key: next(iter(slot.container.attrs["NetworkSettings"]["Networks"]))
        for slot in invoker._slots.values()
    }
    assert nets["guest/caller@0.0.1"] == network.name
    own = nets["guest/caller@0.0.1@beamline"]
    assert own.startswith(f"faas-net-{owner}-") and own != network.name
    beamline = docker_client.networks.get(own)
    loop.run_until_complete(invoker.stop())
    assert not docker_client.networks.list(names=[own])
    assert not any(chains_of(beamline).values())


@pytest.mark.parametrize(
    ("traits", "words"),
    [
        ({"allowed_egress": ["pypi.example.org:99999"]}, "c.DockerInvoker.allowed_egress"),
        (
            {"allowed_egress_by_namespace": {"beamline": ["not a host"]}},
            "c.DockerInvoker.allowed_egress_by_namespace['beamline']",
        ),
        ({"allowed_egress": ["no-such-host.invalid"]}, "does not resolve"),
    ],
)
def test_bad_destinations_are_refused_at_start(traits, words):
    with pytest.raises(ConfigError) as err:
        DockerInvoker(**traits)._check_egress()
    assert words in str(err.value)


@pytest.mark.docker
def test_a_named_network_is_used_as_it_is(loop, make_invoker, docker_client):
    """The control: on Docker's default bridge neighbours reach one another (not removed)."""
    invoker = make_invoker(network="bridge")
    assert knock(loop, invoker) == {"reached": True}
    loop.run_until_complete(invoker.stop())
    assert docker_client.networks.get("bridge")
