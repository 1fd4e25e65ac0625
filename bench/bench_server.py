"""Benchmark: the function server end to end, over loopback HTTP, against baselines.

Starts ``python -m jupyter_faas.server`` (the real DockerInvoker, Docker engine and registry) on a
free port and measures, each next to a baseline taken in the same run:

(a) throughput of a trivial Python action: N client threads, each with one kept-alive
    connection, send blocking ``result=true`` invokes until a fixed count is reached (or
    a time limit passes) → invocations/s and errors. Baseline: the same client load sent
    straight to ``/run`` of the same warm action containers (what the containers, Docker's
    log plumbing and the client cost without the server);
(b) a code-only edit in the notebook → deployed and invoked on the server, as the magics
    do it (``FaaSWorkspace.capture_cell`` + ``deploy`` + ``invoke``), over a series of
    edits. Baseline: a bare ``docker run`` of the same image to its first ``/run`` answer;
(c) cold start of a blackbox action whose image is local but new to the server versus
    that bare ``docker run`` and one confined as the server confines its containers
    (interleaved, so noise hits both), and a code-only Python action served by a
    prewarmed runtime container, next to a warm invoke of the same action.

With ``--profile`` the server is sampled with py-spy (``pip install py-spy``) during a
second throughput run and the busiest frames of its event-loop thread are listed.

Writes docs/bench-server.md. Every container it makes carries role ``bench`` or ``server``
plus a per-run label and is removed at the end; the server's data directory is temporary.
The dependency image of the edited function is the same as every code-only function's
(our runtime with no extra packages): it is reused, or built unlabelled like a user's.

Usage: ``.venv/bin/python bench/bench_server.py [--count 5000] [--clients 4,8]
[--rounds 3] [--max-seconds 60] [--edits 20] [--cold 8] [--profile]``
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from pathlib import Path

import docker.errors as docker_errors
import requests
from traitlets.config import Config

from jupyter_faas import engine
from jupyter_faas.actionclient import ActionClient
from jupyter_faas.runtime import protocol
from jupyter_faas.server.pool.containers import ACTION_LABEL, PREWARM_LABEL, Hardening
from jupyter_faas.workspace import FaaSWorkspace

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "docs" / "bench-server.md"
RUN_LABEL = "org.jupyter-faas.run"
TRIVIAL = "def main(args):\n    return {'ok': True}\n"
START_TIMEOUT = 60
#: Untimed pause between edits (the user typing) and after each cold start (background
#: starts of prewarm containers finish before the next timing).
SETTLE_S = 1.0
#: Hard caps, whatever the command line says.
MAX_COUNT, MAX_SECONDS, MAX_EDITS, MAX_COLD, MAX_CLIENTS, MAX_ROUNDS = 20000, 120, 50, 30, 32, 5


# -- a lean HTTP/1.1 client ---------------------------------------------------------------------


class LeanConnection:
    """One kept-alive HTTP/1.1 connection that sends each request in a single write.

    The load generator shares two cores with the server, the containers and dockerd, so
    it must cost little per request: no header objects, no email parser (``http.client``
    costs several times more CPU per call).
    """

    def __init__(self, host: str, port: int, timeout: float = 70.0):
        self.host = host
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buffer = b""

    def request(self, head: bytes, body: bytes) -> tuple[int, bytes]:
        """Send ``head`` (request line and headers, without Content-Length) plus ``body``."""
        self.sock.sendall(b"%sContent-Length: %d\r\n\r\n%s" % (head, len(body), body))
        while b"\r\n\r\n" not in self.buffer:
            self._fill()
        header, _, self.buffer = self.buffer.partition(b"\r\n\r\n")
        lines = header.split(b"\r\n")
        status = int(lines[0].split(b" ", 2)[1])
        length = None
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        if length is None:
            raise RuntimeError(f"response without Content-Length: {header[:200]!r}")
        while len(self.buffer) < length:
            self._fill()
        payload, self.buffer = self.buffer[:length], self.buffer[length:]
        return status, payload

    def _fill(self) -> None:
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ConnectionError("the server closed the connection")
        self.buffer += chunk

    def close(self) -> None:
        self.sock.close()


def post_head(path: str, host: str, auth: str | None = None) -> bytes:
    lines = [f"POST {path} HTTP/1.1", f"Host: {host}", "Content-Type: application/json"]
    if auth:
        lines.append("Authorization: Basic " + base64.b64encode(auth.encode()).decode())
    return ("\r\n".join(lines) + "\r\n").encode()


def hammer(
    targets: list[tuple[str, int]],
    head: bytes,
    body: bytes,
    expect: object,
    clients: int,
    count: int,
    max_seconds: float,
) -> dict:
    """``clients`` threads send ``count`` requests in total (client i to target i mod n)."""
    lock = threading.Lock()
    state = {"sent": 0, "ok": 0, "errors": Counter()}
    deadline = time.monotonic() + max_seconds

    def worker(index: int) -> None:
        host, port = targets[index % len(targets)]
        conn = LeanConnection(host, port)
        try:
            while time.monotonic() < deadline:
                with lock:
                    if state["sent"] >= count:
                        return
                    state["sent"] += 1
                try:
                    status, payload = conn.request(head, body)
                except (OSError, RuntimeError) as err:
                    with lock:
                        state["errors"][type(err).__name__] += 1
                    conn.close()
                    conn = LeanConnection(host, port)
                    continue
                with lock:
                    if status == 200 and _json(payload) == expect:
                        state["ok"] += 1
                    else:
                        state["errors"][f"HTTP {status}: {payload[:80]!r}"] += 1
        finally:
            conn.close()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(clients)]
    cpu = cpu_snapshot()
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    seconds = time.perf_counter() - start
    done = state["ok"] + sum(state["errors"].values())
    return {
        "clients": clients,
        "done": done,
        "ok": state["ok"],
        "errors": dict(state["errors"]),
        "seconds": seconds,
        "rate": done / seconds if seconds else 0.0,
        "cpu": cpu_delta(cpu, done),
    }


def _json(payload: bytes):
    try:
        return json.loads(payload)
    except ValueError:
        return None


# -- CPU accounting ---------------------------------------------------------------------------

_TICK = os.sysconf("SC_CLK_TCK")


def _proc_cpu(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` (0 when it is gone)."""
    return _stat_cpu(Path(f"/proc/{pid}/stat"))


def _stat_cpu(path: Path) -> float:
    """User + system CPU seconds from a /proc ``stat`` file (0 when it is gone)."""
    try:
        fields = path.read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _TICK


def _machine_busy() -> float:
    fields = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    return (sum(fields) - fields[3] - fields[4]) / _TICK


def _pids(name: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip() == name:
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


SERVER_PID: list[int] = []


def cpu_snapshot() -> dict:
    return {
        "server": sum(_proc_cpu(pid) for pid in SERVER_PID),
        "dockerd": sum(_proc_cpu(pid) for pid in _pids("dockerd")),
        "client": sum(os.times()[:2]),
        "machine": _machine_busy(),
    }


def cpu_delta(before: dict, calls: int) -> dict:
    after = cpu_snapshot()
    return {k: (after[k] - before[k]) * 1000 / max(calls, 1) for k in before}


# -- the server -------------------------------------------------------------------------------


class ServerProcess:
    """``python -m jupyter_faas.server`` with this run's label, in a temporary directory."""

    def __init__(self, run: str, folder: Path, code: Path = ROOT, extra_args: tuple = ()):
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.data_dir = folder / "data"
        self.log_path = folder / "server.log"
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "jupyter_faas.server",
                f"--FunctionServer.port={self.port}",
                f"--FunctionServer.data_dir={self.data_dir}",
                "--log-level=WARN",
                # Room for every container the runs leave idle (the default 4096 MB would
                # be full of idle ones before (c), and prewarming never evicts idle ones).
                "--DockerInvoker.memory_budget_mb=16384",
                f"--DockerInvoker.extra_labels={json.dumps({RUN_LABEL: run})}",
                *extra_args,
            ],
            cwd=code,
            env={**os.environ, "PYTHONPATH": str(code)},
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        SERVER_PID.append(self.proc.pid)
        session = requests.Session()
        session.trust_env = False
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the server exited:\n{self.log_path.read_text()}")
            try:
                if session.get(f"{self.url}/api/v1", timeout=2).ok:
                    break
            except requests.ConnectionError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"the server did not start within {START_TIMEOUT} s")
            time.sleep(0.1)
        self.key = (self.data_dir / "auth.guest").read_text().strip()
        self.session = session
        self.session.auth = tuple(self.key.split(":", 1))

    def put_action(self, name: str, doc: dict) -> dict:
        resp = self.session.put(
            f"{self.url}/api/v1/namespaces/_/actions/{name}?overwrite=true", json=doc, timeout=30
        )
        resp.raise_for_status()
        return resp.json()

    def invoke(self, name: str, params: dict) -> tuple[float, dict]:
        """Blocking invoke; (milliseconds as the client saw them, activation record)."""
        start = time.perf_counter()
        resp = self.session.post(
            f"{self.url}/api/v1/namespaces/_/actions/{name}?blocking=true",
            json=params,
            timeout=90,
        )
        ms = (time.perf_counter() - start) * 1000
        record = resp.json()
        if resp.status_code != 200:
            raise RuntimeError(f"invoke {name}: HTTP {resp.status_code} {record}")
        return ms, record

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._log.close()


def action_containers(client, run: str, action_key: str) -> int:
    """How many running containers the server holds for ``action_key``."""
    containers = engine.containers_with_label(client, **{RUN_LABEL: run, ACTION_LABEL: action_key})
    return sum(c.status == "running" for c in containers)


def run_body(doc: dict) -> bytes:
    """The body of a direct ``/run`` of the trivial action ``doc`` (as the invoker sends it)."""
    return json.dumps(
        {
            "value": {"n": 1},
            "namespace": "guest",
            "action_name": f"/guest/{doc['name']}",
            "action_version": doc["version"],
            "activation_id": uuid.uuid4().hex,
            "transaction_id": uuid.uuid4().hex,
            "deadline": str(int(time.time() * 1000) + 3_600_000),
        },
        separators=(",", ":"),
    ).encode()


def baseline_containers(client, run: str, count: int) -> tuple[list, str]:
    """``count`` containers of the runtime image confined as the server confines its own, each
    initialised with the trivial action, and the secret they accept (the server's own
    containers accept only the server's secret, so the direct baseline runs its own)."""
    secret = protocol.new_secret()
    started = []
    for _ in range(count):
        container = client.containers.run(
            protocol.RUNTIME_IMAGE,
            detach=True,
            environment={protocol.SECRET_ENV: secret},
            labels=engine.labels("bench", **{RUN_LABEL: run}),
            mem_limit="192m",
            memswap_limit="192m",
            **Hardening().run_options(),
        )
        started.append(container)
        action = ActionClient(engine.container_address(container), secret=secret)
        action.wait_ready(30)
        value = {"name": "baseline", "main": "main", "binary": False, "code": TRIVIAL}
        assert action.init(value, 30).status == 200
        action.close()
    return started, secret


# -- (a) throughput ---------------------------------------------------------------------------


def throughput(
    server: ServerProcess, docker, run: str, clients: int, count: int, limit: float, rounds: int
) -> list[tuple[dict, dict]]:
    """``rounds`` pairs of (via the server, direct /run) on one action's warm containers."""
    name = f"tp-{clients}"
    # 192 MB: not the prewarm size, so every container of the action is started for it and
    # carries its action label (the direct baseline starts as many of its own).
    doc = server.put_action(
        name, {"exec": {"kind": "python:3.11", "code": TRIVIAL}, "limits": {"memory": 192}}
    )
    host = f"127.0.0.1:{server.port}"
    head = post_head(
        f"/api/v1/namespaces/_/actions/{name}?blocking=true&result=true", host, server.key
    )
    body, expect = b'{"n":1}', {"ok": True}
    targets = [("127.0.0.1", server.port)]
    # Warm-up: every client's container is started (cold starts are not what is measured).
    hammer(targets, head, body, expect, clients, clients * 20, limit)
    containers = action_containers(docker, run, f"guest/{name}@{doc['version']}@guest")
    direct_body = run_body(doc)
    baseline, secret = baseline_containers(docker, run, max(containers, 1))
    direct_targets = [(engine.container_address(c), 8080) for c in baseline]
    direct_head = post_head("/run", "action") + f"{protocol.SECRET_HEADER}: {secret}\r\n".encode()
    # All server rounds first: output of direct /run calls (and its log sentinels) would sit
    # in the server's log buffers of these containers and be taken by its next activations.
    py_spy = find_py_spy()
    names = thread_names(py_spy, server.proc.pid) if py_spy else {}
    via_server = []
    for _ in range(rounds):
        before = thread_cpu(server.proc.pid)
        via_server.append(hammer(targets, head, body, expect, clients, count, limit))
        after = thread_cpu(server.proc.pid)
        via_server[-1]["threads"] = thread_cpu_per_call(
            before, after, names, via_server[-1]["done"]
        )
    direct = []
    try:
        for _ in range(rounds):
            direct.append(
                hammer(direct_targets, direct_head, direct_body, expect, clients, count, limit)
            )
            direct[-1]["containers"] = len(baseline)
    finally:
        for container in baseline:
            engine.remove_container(container)
    return list(zip(via_server, direct, strict=True))


def find_py_spy() -> str:
    """The py-spy program (PATH, or beside this Python), or "" when it is not installed."""
    found = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    return found if Path(found).exists() else ""


def thread_names(py_spy: str, pid: int) -> dict[int, str]:
    """Native thread id → Python thread name, from ``py-spy dump``."""
    dump = subprocess.run(
        [py_spy, "dump", "--pid", str(pid)], capture_output=True, text=True, timeout=30
    ).stdout
    names = {}
    for line in dump.splitlines():
        found = re.match(r'Thread (0x[0-9A-Fa-f]+|\d+) \(\w+\): "([^"]+)"', line)
        if found:
            tid = found.group(1)
            names[int(tid, 16) if tid.startswith("0x") else int(tid)] = found.group(2)
    return names


def thread_cpu(pid: int) -> dict[int, float]:
    """CPU seconds of each thread of ``pid``."""
    return {
        int(task.name): _stat_cpu(task / "stat") for task in Path(f"/proc/{pid}/task").iterdir()
    }


def thread_cpu_per_call(before: dict, after: dict, names: dict, calls: int) -> list:
    """CPU ms per call by thread role (pool threads and per-container log threads summed)."""
    roles: Counter = Counter()
    for tid, seconds in after.items():
        name = names.get(tid, "other (started after the thread listing)")
        role = re.sub(r"_\d+$", "", re.sub(r"^faas-logs-.*", "faas-logs-<container>", name))
        roles[role] += (seconds - before.get(tid, 0.0)) * 1000 / max(calls, 1)
    return [(role, ms) for role, ms in roles.most_common() if ms >= 0.005]


def profile_throughput(server: ServerProcess, name: str, clients: int):
    """A throughput run while py-spy samples the server; returns a summary, or why not.

    py-spy runs with --nonblocking (it never pauses the server), but it still takes CPU
    from the same two cores, so the load is lower while it samples.
    """
    py_spy = find_py_spy()
    if not py_spy:
        return None, "py-spy is not installed (`.venv/bin/pip install py-spy`)"
    raw = Path(tempfile.mkdtemp(prefix="bench-spy-")) / "profile.txt"
    seconds = 8
    spy = subprocess.Popen(
        [
            py_spy,
            "record",
            "--pid",
            str(server.proc.pid),
            "--duration",
            str(seconds),
            "--rate",
            "100",
            "--format",
            "raw",
            "--threads",
            "--nonblocking",
            "--output",
            str(raw),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    host = f"127.0.0.1:{server.port}"
    head = post_head(
        f"/api/v1/namespaces/_/actions/{name}?blocking=true&result=true", host, server.key
    )
    load = hammer(
        [("127.0.0.1", server.port)], head, b'{"n":1}', {"ok": True}, clients, MAX_COUNT, seconds
    )
    _, err = spy.communicate(timeout=seconds + 30)
    if not raw.exists():
        return None, f"py-spy failed: {err.decode(errors='replace').strip()[:300]}"
    summary = summarise_profile(raw.read_text(), seconds * 100)
    summary["rate"] = load["rate"]
    shutil.rmtree(raw.parent, ignore_errors=True)
    return summary, ""


def summarise_profile(text: str, possible: int) -> dict:
    """Samples per thread and the event loop's busiest frames (own and inclusive)."""
    threads: Counter = Counter()
    own: Counter = Counter()
    inclusive: Counter = Counter()
    main_total = idle = 0
    for line in text.splitlines():
        stack, _, number = line.rpartition(" ")
        if not stack or not number.isdigit():
            continue
        frames = stack.split(";")
        thread = frames[0].split(": ", 1)[-1].rstrip(")'\"").split("_")[0].split("-")[0]
        count = int(number)
        threads[thread] += count
        if "MainThread" not in frames[0]:
            continue
        main_total += count
        if frames[-1].startswith("EpollSelector.select"):
            idle += count
            continue
        own[frames[-1]] += count
        for frame in set(frames[1:]):
            if "jupyter_faas/" in frame or "tornado/" in frame:
                inclusive[frame] += count
    return {
        "possible": possible,
        "main_total": main_total,
        "main_idle": idle,
        "threads": threads.most_common(8),
        "own": own.most_common(12),
        "inclusive": inclusive.most_common(14),
    }


# -- (b) notebook edit → deployed → invoked ------------------------------------------------------


def edit_loop(server: ServerProcess, folder: Path, edits: int) -> dict:
    config = Config()
    config.FaaSWorkspace.bundle_dir = str(folder / "functions")
    config.OpenWhiskClient.api_host = server.url
    config.OpenWhiskClient.auth = server.key
    workspace = FaaSWorkspace(config=config)
    namespace: dict = {}
    phases: dict[str, list[float]] = {"capture": [], "deploy": [], "invoke": [], "total": []}
    ref = ""
    try:
        for i in range(edits + 1):
            time.sleep(SETTLE_S if i else 0)  # the user edits the cell (not timed)
            cell = (
                f"SCALE = {i}\n\ndef main(args):\n    return {{'scale': SCALE, 'x': args['x']}}\n"
            )
            t0 = time.perf_counter()
            bundle = workspace.capture_cell("edited", cell, namespace, [])
            t1 = time.perf_counter()
            record = workspace.deploy(bundle)
            t2 = time.perf_counter()
            activation = workspace.invoke("edited", {"x": i})
            t3 = time.perf_counter()
            if activation.result != {"scale": i, "x": i}:
                raise RuntimeError(f"edit {i} answered {activation.result}")
            if i == 0:  # the first deploy may push the image: not an edit
                ref = record.image
                continue
            for key, value in zip(phases, (t1 - t0, t2 - t1, t3 - t2, t3 - t0), strict=True):
                phases[key].append(value * 1000)
    finally:
        workspace.close()
    return {"phases": phases, "image": ref}


# -- (c) cold starts ------------------------------------------------------------------------------


def bare_docker_run(docker, image: str, labels: dict, network: str | None = None) -> float:
    """``docker run`` → listening → /init → /run, in ms (what a cold start must do at least).

    With ``network`` the container is confined as the server confines its own (hardening
    options, that network without inter-container traffic): what Docker costs for the
    confinement, apart from the server.
    """
    init = {"name": "bare", "main": "main", "binary": False, "code": TRIVIAL, "env": {}}
    confined = {"network": network, **Hardening().run_options()} if network else {}
    start = time.perf_counter()
    container = docker.containers.run(
        image, detach=True, labels=labels, mem_limit="256m", memswap_limit="256m", **confined
    )
    try:
        action = ActionClient(engine.container_address(container, network))
        action.wait_ready(30)
        if action.init(init, 30).status != 200:
            raise RuntimeError("the bare container refused /init")
        if action.run({"value": {}, "activation_id": uuid.uuid4().hex}, 30).status != 200:
            raise RuntimeError("the bare container refused /run")
        ms = (time.perf_counter() - start) * 1000
        action.close()
    finally:
        engine.remove_container(container)
    return ms


def cold_starts(server: ServerProcess, docker, image: str, labels: dict, count: int) -> dict:
    """Cold starts of a function image the server has not run before (a fresh name of the
    edited function's image each time, so no container prewarmed for it can serve)."""
    bare, confined, cold = [], [], []
    network = docker.networks.create(
        f"bench-{uuid.uuid4().hex[:12]}",
        driver="bridge",
        options={"com.docker.network.bridge.enable_icc": "false"},
        labels=labels,
    )
    try:
        for i in range(count):
            bare.append(bare_docker_run(docker, image, labels))
            confined.append(bare_docker_run(docker, image, labels, network.name))
            cold.append(server_cold_start(server, docker, image, i))
    finally:
        network.remove()
    return {"bare": bare, "confined": confined, "cold": cold}


def server_cold_start(server: ServerProcess, docker, image: str, i: int) -> float:
    """A blackbox action on a fresh name of ``image``: the server's first start of it."""
    name = f"cold-{i}"
    fresh = f"{image.rsplit(':', 1)[0]}:bench-cold-{uuid.uuid4().hex[:12]}"
    docker.images.get(image).tag(fresh)
    try:
        server.put_action(name, {"exec": {"kind": "blackbox", "image": fresh, "code": TRIVIAL}})
        ms, record = server.invoke(name, {})
    finally:
        server.session.delete(f"{server.url}/api/v1/namespaces/_/actions/{name}", timeout=30)
        docker.images.remove(fresh)
    time.sleep(SETTLE_S)  # the container prewarmed for the image starts meanwhile
    if not any(a["key"] == "initTime" for a in record["annotations"]):
        raise RuntimeError(f"{name} was not a cold start: {record['annotations']}")
    return ms


def prewarmed_starts(server: ServerProcess, docker, run: str, count: int) -> dict:
    used: set[str] = set()
    prewarmed, warm = [], []
    for i in range(count):
        deadline = time.monotonic() + 60
        while True:
            try:
                fresh = [
                    c
                    for c in engine.containers_with_label(
                        docker, **{RUN_LABEL: run, PREWARM_LABEL: "1"}
                    )
                    if c.id not in used and c.status == "running" and "-prewarm-python-" in c.name
                ]
                if fresh and _listening(engine.container_address(fresh[0])):
                    break
            except docker_errors.NotFound:
                pass  # removed while listed (e.g. a failed start): look again
            if time.monotonic() > deadline:
                raise RuntimeError("no prewarm container came up within 60 s")
            time.sleep(0.05)
        time.sleep(0.3)  # the server registers it once its own readiness probe returns
        used.update(c.id for c in fresh)
        name = f"pw-{i}"
        server.put_action(
            name,
            {"exec": {"kind": "python:3.11", "code": TRIVIAL}, "limits": {"memory": 256}},
        )
        ms, record = server.invoke(name, {})
        if not any(a["key"] == "initTime" for a in record["annotations"]):
            raise RuntimeError(f"{name} was not a cold start: {record['annotations']}")
        prewarmed.append(ms)
        warm.append(server.invoke(name, {})[0])
    return {"prewarmed": prewarmed, "warm": warm}


def _listening(address: str) -> bool:
    try:
        with socket.create_connection((address, 8080), timeout=0.2):
            return True
    except OSError:
        return False


# -- report -----------------------------------------------------------------------------------


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def verdict(ok: bool) -> str:
    return "met" if ok else "**missed**"


def server_code(args) -> str:
    """Where the server's code came from, when not this checkout."""
    code = args.server_code.resolve()
    if code == ROOT:
        return ""
    commit = subprocess.run(
        ["git", "-C", str(code), "log", "-1", "--format=%h %s"], capture_output=True, text=True
    ).stdout.strip()
    return f" from {code} (commit {commit or 'unknown'})"


def report(results: dict, args) -> str:
    lines = [
        "# Function server benchmark",
        "",
        f"Measured {time.strftime('%Y-%m-%d %H:%M')} by `bench/bench_server.py` "
        f"({' '.join(sys.argv[1:]) or 'defaults'}) on the development machine "
        f"({os.cpu_count()} cores, Docker 20.10, runc, cgroup v1). The server is "
        f"`python -m jupyter_faas.server`{server_code(args)} with the real DockerInvoker; "
        "clients talk to it over "
        "127.0.0.1. Other work on the machine shares the two cores, so absolute numbers "
        "are noisy; each ratio compares against a baseline taken in the same run. "
        f"Load average (1 min) at the start: {results['load'][0]:.1f}, at the end: "
        f"{os.getloadavg()[0]:.1f}.",
        "",
        "## (a) Throughput of a trivial Python action",
        "",
        f"Blocking invokes with `result=true`, {args.count} per row ({args.rounds} rounds per "
        f"client count; max {args.max_seconds:g} s each), "
        "each client one kept-alive connection; the baseline sends the same load straight to "
        "`/run` of the same warm containers. Goal: ≥ 500 invocations/s, 0 errors.",
        "",
        "| clients | path | invocations | errors | seconds | invocations/s | ratio to direct "
        "| CPU ms/call: server | dockerd | client | machine (all processes) |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    best = 0.0
    for server, direct in results["throughput"]:
        best = max(best, server["rate"] if not server["errors"] else 0.0)
        for label, data in (
            ("server", server),
            (f"direct /run ({direct['containers']} containers)", direct),
        ):
            cpu = data["cpu"]
            ratio = data["rate"] / direct["rate"] if direct["rate"] else 0.0
            lines.append(
                f"| {data['clients']} | {label} | {data['done']} | {sum(data['errors'].values())} "
                f"| {data['seconds']:.2f} | {data['rate']:.0f} | {ratio:.2f} | "
                f"{cpu['server']:.2f} | {cpu['dockerd']:.2f} | {cpu['client']:.2f} | "
                f"{cpu['machine']:.2f} |"
            )
        if server["errors"] or direct["errors"]:
            lines.append(f"| | errors | {server['errors']} / {direct['errors']} | | | | | | | | |")
    lines += [
        "",
        f"Best error-free server rate: **{best:.0f}/s** — goal {verdict(best >= 500)}.",
        "",
    ]
    top = max((server for server, _ in results["throughput"]), key=lambda r: r["rate"])
    if top.get("threads"):
        total_cpu = max(sum(ms for _, ms in top["threads"]), 0.001)
        lines += [
            f"CPU of the server's threads (read from /proc) in the fastest round "
            f"({top['clients']} clients, {top['rate']:.0f}/s):",
            "",
            "| server thread (role) | CPU ms per invocation |",
            "|---|---:|",
            *[f"| {role} | {ms:.3f} |" for role, ms in top["threads"]],
            f"| **all threads** | **{total_cpu:.3f}** |",
            "",
            "These threads all run Python under one GIL, so the server's CPU per invocation "
            f"bounds its throughput at roughly 1000 / {total_cpu:.2f} ≈ **{1000 / total_cpu:.0f} "
            "invocations/s** however many cores there are (somewhat more, as part of it is "
            "spent in system calls without the GIL).",
            "",
        ]
    spy = results.get("profile")
    if spy:
        summary = spy["summary"]
        busy = summary["main_total"] - summary["main_idle"]
        lines += [
            "### Where the server's time goes (py-spy, 100 Hz, during a throughput run)",
            "",
            f"Event-loop thread: {summary['main_total']} of {summary['possible']} possible samples "
            f"taken, {busy} busy ({100 * busy / max(summary['possible'], 1):.0f} % of the run), "
            f"{summary['main_idle']} waiting in `select`. Load during sampling: "
            f"{summary['rate']:.0f} invocations/s.",
            "",
            "| samples | busiest frames of the event loop (own time) |",
            "|---:|---|",
            *[f"| {n} | `{frame}` |" for frame, n in summary["own"]],
            "",
            "| samples | project and tornado frames on the event loop (inclusive) |",
            "|---:|---|",
            *[f"| {n} | `{frame}` |" for frame, n in summary["inclusive"]],
            "",
        ]
    elif results.get("profile_note"):
        lines += [f"Profile: {results['profile_note']}.", ""]
    edit = results["edit"]["phases"]
    cold = results["cold"]
    bare_p50 = statistics.median(cold["bare"])
    lines += [
        "## (b) Code-only edit in the notebook → deployed and invoked",
        "",
        f"{len(edit['total'])} edits of one function (`FaaSWorkspace.capture_cell` + `deploy` + "
        "blocking `invoke`, as `%%faas` / `%faas deploy` / `%faas invoke` do), "
        f"{SETTLE_S:g} s apart (the user editing; not timed). Each edit is a new action version, "
        "so the invoke is a cold start: /init of the new code in a container of the function's "
        f"image ({results['edit']['image']}, never pushed again) that the server started without "
        "code after the previous cold start (`c.DockerInvoker.prewarm_images`). Goal: p50 ≤ 500 ms.",
        "",
        "| phase | p50 ms | p90 ms | max ms |",
        "|---|---:|---:|---:|",
    ]
    for phase, values in edit.items():
        name = "**edit → result (total)**" if phase == "total" else phase
        lines.append(
            f"| {name} | {pct(values, 0.5):.0f} | {pct(values, 0.9):.0f} | {max(values):.0f} |"
        )
    total_p50 = pct(edit["total"], 0.5)
    lines += [
        f"| baseline: bare `docker run` → /init → /run of the same image (from (c)) "
        f"| {bare_p50:.0f} | | |",
        "",
        f"Ratio edit p50 / bare docker run p50: {total_p50 / bare_p50:.2f}. "
        f"Goal {verdict(total_p50 <= 500)}.",
        "",
        "## (c) Cold starts",
        "",
        "| start path (client-side, first answer of a new action) | n | min ms | p50 ms | max ms |",
        "|---|---:|---:|---:|---:|",
    ]
    pre = results["prewarm"]
    for label, values in (
        ("bare `docker run` → listening → /init → /run (baseline)", cold["bare"]),
        (
            "the same, confined as the server confines (hardening, an ICC-off network)",
            cold["confined"],
        ),
        ("server: blackbox action, image local but new to the server, cold start", cold["cold"]),
        ("server: code-only Python action on a prewarmed runtime", pre["prewarmed"]),
        ("server: the same action's next (warm) invoke", pre["warm"]),
    ):
        lines.append(
            f"| {label} | {len(values)} | {min(values):.0f} | {statistics.median(values):.0f} "
            f"| {max(values):.0f} |"
        )
    cold_ratio = statistics.median(cold["cold"]) / bare_p50
    confined_ratio = statistics.median(cold["cold"]) / statistics.median(cold["confined"])
    pre_p50 = statistics.median(pre["prewarmed"])
    lines += [
        "",
        f"Cold start / bare docker run (p50): **{cold_ratio:.2f}×** — goal ≤ 1.2×, "
        f"{verdict(cold_ratio <= 1.2)}; against a `docker run` confined the same way: "
        f"**{confined_ratio:.2f}×** (the rest is what Docker takes for the confinement). "
        f"Prewarmed code-only start p50: **{pre_p50:.0f} ms** — "
        f"goal ≤ 50 ms, {verdict(pre_p50 <= 50)}.",
        "",
        "All server timings are what an HTTP client sees (requests, about 1 ms of its own per "
        "call), so they include the REST layer, the database writes and the log collection "
        "on top of `bench/bench_invoke_overhead.py`'s in-process DockerInvoker numbers.",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=5000, help="invocations per throughput row")
    parser.add_argument("--clients", default="4,8", help="client counts, e.g. 2,4,8")
    parser.add_argument("--rounds", type=int, default=3, help="throughput rounds per count")
    parser.add_argument("--max-seconds", type=float, default=60, help="cap per throughput row")
    parser.add_argument("--edits", type=int, default=20, help="code-only edits to time")
    parser.add_argument("--cold", type=int, default=8, help="cold starts per path")
    parser.add_argument("--profile", action="store_true", help="sample the server with py-spy")
    parser.add_argument(
        "--server-code",
        type=Path,
        default=ROOT,
        help="checkout whose server to run (e.g. a worktree of an earlier commit, for "
        "before/after rows); clients, baselines and the report stay this checkout's",
    )
    parser.add_argument("--out", type=Path, default=OUT, help="where to write the report")
    args = parser.parse_args()
    args.count = min(args.count, MAX_COUNT)
    args.max_seconds = min(args.max_seconds, MAX_SECONDS)
    args.edits, args.cold = min(args.edits, MAX_EDITS), min(args.cold, MAX_COLD)
    args.rounds = max(1, min(args.rounds, MAX_ROUNDS))
    client_counts = [min(int(n), MAX_CLIENTS) for n in args.clients.split(",")]

    docker = engine.docker_client()
    run = f"bench-{uuid.uuid4().hex[:12]}"
    labels = engine.labels("bench", **{RUN_LABEL: run})
    folder = Path(tempfile.mkdtemp(prefix="bench-server-"))
    server = ServerProcess(run, folder, args.server_code.resolve())
    results: dict = {"throughput": [], "load": os.getloadavg()}
    try:
        for clients in client_counts:
            rounds = throughput(
                server, docker, run, clients, args.count, args.max_seconds, args.rounds
            )
            results["throughput"] += rounds
            for via_server, direct in rounds:
                print(
                    f"(a) {clients} clients: {via_server['rate']:.0f}/s via the server "
                    f"({via_server['errors'] or 'no errors'}), {direct['rate']:.0f}/s direct"
                )
        if args.profile:
            summary, note = profile_throughput(server, f"tp-{client_counts[-1]}", client_counts[-1])
            results["profile"] = {"summary": summary} if summary else None
            results["profile_note"] = note
        results["edit"] = edit_loop(server, folder, args.edits)
        print(f"(b) edit → result p50 {pct(results['edit']['phases']['total'], 0.5):.0f} ms")
        results["cold"] = cold_starts(server, docker, results["edit"]["image"], labels, args.cold)
        results["prewarm"] = prewarmed_starts(server, docker, run, args.cold)
        print(
            f"(c) cold p50 {statistics.median(results['cold']['cold']):.0f} ms, bare "
            f"{statistics.median(results['cold']['bare']):.0f} ms, prewarmed "
            f"{statistics.median(results['prewarm']['prewarmed']):.0f} ms"
        )
    finally:
        server.stop()
        engine.remove_labelled(docker, **{RUN_LABEL: run})
        shutil.rmtree(folder, ignore_errors=True)
    text = report(results, args)
    args.out.write_text(text)
    print(text)
    print(f"written to {args.out}")


if __name__ == "__main__":
    main()
