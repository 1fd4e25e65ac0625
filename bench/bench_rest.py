"""Benchmark: the invoke path as a client sees it at the REST API, driven by ``wrk``.

Starts ``python -m jupyter_faas.server`` (the real DockerInvoker with its hardening: confined
containers on an ICC-off network, the egress firewall when run as root) on 127.0.0.1, creates
a trivial Python action, warms it, and measures, each next to a baseline of the same run:

(a) sequential overhead: N blocking ``result=true`` REST calls from one lean kept-alive
    client against N direct ``/run`` calls to the same warm container (found by its labels;
    its secret read from the engine), interleaved in blocks; p50 and p99 of each side and
    their difference. Before each REST block one untimed call takes up the log lines the
    direct block left in the server's log buffer of that container;
(b) throughput: ``wrk -t2 -cC -d…`` (a C load generator: the client costs little) with a Lua
    script for C in 1, 8, 64 against the REST API and against ``/run`` of a warm container
    of the same image confined the same way (the bench's own, so that its runtime's log
    markers never reach the server's log buffers), requests/s, latency, non-2xx and socket
    errors, ratio;
(c) non-blocking invocations: ``wrk`` sends ``blocking=false`` invokes; afterwards the
    activation records of that action are counted (every accepted one must be recorded)
    and the database must hold no pending row;
(d) memory: the server's peak RSS (``VmHWM``) after ``wrk -c64`` for ``--rss-seconds``;
(e) what ``/metrics`` costs: REST throughput at 8 connections with and without a scraper
    reading ``/metrics`` every second.

Every loop is bounded in count and time. Every container carries role ``bench`` or ``server``
and a per-run label and is removed at the end; the server's data directory is temporary.

Usage: ``.venv/bin/python bench/bench_rest.py [--server-code DIR] [--label NAME]
[--seq 300] [--seconds 10] [--conns 1,8,64] [--rss-seconds 60] [--json FILE]``
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import re
import resource
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import requests

from jupyter_faas import engine
from jupyter_faas.runtime import protocol
from jupyter_faas.server.pool.containers import ACTION_LABEL

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_server import (  # noqa: E402 - the sibling bench, importable once bench/ is on the path
    RUN_LABEL,
    TRIVIAL,
    LeanConnection,
    ServerProcess,
    baseline_containers,
    post_head,
    run_body,
)

ROOT = Path(__file__).resolve().parent.parent
#: Hard caps, whatever the command line says.
MAX_SEQ, MAX_SECONDS, MAX_CONNS, MAX_DRAIN_S = 5000, 120, 256, 300
BLOCK = 50
#: Untimed wrk run before each timed one at a new connection count (its cold starts).
WARM_S = 3
WARM_ROUNDS = 10
ACTION = "rest-trivial"
NB_ACTION = "rest-nonblocking"

LUA = """
wrk.method = "POST"
wrk.body = %(body)s
wrk.headers["Content-Type"] = "application/json"
%(headers)s
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("RESULT requests=%%d duration_us=%%d status=%%d connect=%%d read=%%d "
    .. "write=%%d timeout=%%d p50_us=%%d p99_us=%%d\\n", summary.requests, summary.duration,
    e.status, e.connect, e.read, e.write, e.timeout, latency:percentile(50),
    latency:percentile(99)))
end
"""


def lua_script(folder: Path, name: str, body: bytes, headers: dict) -> Path:
    lines = "\n".join(f"wrk.headers[{json.dumps(k)}] = {json.dumps(v)}" for k, v in headers.items())
    path = folder / f"{name}.lua"
    path.write_text(LUA % {"body": json.dumps(body.decode()), "headers": lines})
    return path


#: Processes of the container engine, by the group a breakdown names them with.
ENGINE_PROCESSES = {"dockerd": "dockerd", "containerd": "containerd"}


def cpu_parts(container_ids: list[str]) -> dict[str, float]:
    """CPU seconds so far of the parts an invocation crosses outside the server: the whole
    machine, the kernel's interrupt work, dockerd, containerd and its shims, the given
    containers (their cgroups, engine driver cgroupfs v1 or systemd/v2) and finished children
    of this process (``wrk``)."""
    tck = os.sysconf("SC_CLK_TCK")
    stat = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    parts = {
        "machine": (sum(stat) - stat[3] - stat[4]) / tck,
        "interrupts": (stat[5] + stat[6]) / tck,
        "dockerd": 0.0,
        "containerd": 0.0,
        "containers": 0.0,
    }
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            comm = (proc / "comm").read_text().strip()
            group = next((g for p, g in ENGINE_PROCESSES.items() if comm.startswith(p)), None)
            if group:
                fields = (proc / "stat").read_text().rsplit(")", 1)[1].split()
                parts[group] += (int(fields[11]) + int(fields[12])) / tck
        except OSError:
            continue  # gone meanwhile
    for cid in container_ids:
        for usage in (
            Path(f"/sys/fs/cgroup/cpuacct/docker/{cid}/cpuacct.usage"),
            Path(f"/sys/fs/cgroup/system.slice/docker-{cid}.scope/cpu.stat"),
        ):
            if usage.exists():
                text = usage.read_text()
                if usage.name == "cpu.stat":
                    parts["containers"] += int(text.split()[1]) / 1e6  # usage_usec
                else:
                    parts["containers"] += int(text) / 1e9
                break
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    parts["wrk"] = children.ru_utime + children.ru_stime
    return parts


def wrk(url: str, script: Path, conns: int, seconds: float, containers: list[str] = ()) -> dict:
    """One ``wrk`` run; its counts, rate and latency percentiles, and the CPU per request of
    the whole machine and of its parts outside the server (``containers``: ids of the
    containers that answer) — what bounds the rate on 2 cores."""
    before = cpu_parts(list(containers))
    threads = min(2, conns)
    cmd = [
        "wrk",
        f"-t{threads}",
        f"-c{conns}",
        f"-d{seconds:g}s",
        "--timeout",
        "30s",
        "-s",
        str(script),
        url,
    ]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60).stdout
    after = cpu_parts(list(containers))
    found = re.search(r"^RESULT (.*)$", out, re.M)
    if not found:
        raise RuntimeError(f"wrk printed no result:\n{out}")
    values = {k: int(v) for k, v in (item.split("=") for item in found.group(1).split())}
    socket_errors = sum(values[k] for k in ("connect", "read", "write", "timeout"))
    per_request = {
        f"{part}_cpu_ms": (after[part] - before[part]) * 1000 / max(values["requests"], 1)
        for part in after
    }
    return {
        "conns": conns,
        "requests": values["requests"],
        "rate": values["requests"] / (values["duration_us"] / 1e6),
        "non2xx": values["status"],
        "socket_errors": socket_errors,
        "p50_ms": values["p50_us"] / 1000,
        "p99_ms": values["p99_us"] / 1000,
        **per_request,
    }


class Server(ServerProcess):
    """bench_server's server process, listening on 127.0.0.1 only and keeping every
    activation record (the non-blocking part counts them), with what this bench reads of it."""

    def __init__(self, run: str, folder: Path, code: Path):
        super().__init__(
            run, folder, code, ("--ip=127.0.0.1", "--FunctionServer.activation_max_count=0")
        )
        self.basic = "Basic " + base64.b64encode(self.key.encode()).decode()

    def put_trivial(self, name: str) -> dict:
        doc = {"exec": {"kind": "python:3.11", "code": TRIVIAL}, "limits": {"memory": 192}}
        return self.put_action(name, doc)

    def count(self, name: str) -> int:
        resp = self.session.get(
            f"{self.url}/api/v1/namespaces/_/activations?name={name}&count=true", timeout=30
        )
        resp.raise_for_status()
        return resp.json()["activations"]

    def pending_rows(self) -> int:
        conn = sqlite3.connect(f"file:{self.data_dir / 'server.sqlite'}?mode=ro", uri=True)
        try:
            return conn.execute("SELECT COUNT(*) FROM pending").fetchone()[0]
        finally:
            conn.close()

    def status(self, field: str) -> int:
        """A ``VmHWM``/``VmRSS`` value of the server process, in kB."""
        text = Path(f"/proc/{self.proc.pid}/status").read_text()
        return int(re.search(rf"^{field}:\s+(\d+) kB", text, re.M).group(1))

    def cpu_s(self) -> float:
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def action_containers(docker, run: str, doc: dict) -> list:
    """The running containers the server holds for the action."""
    key = f"guest/{doc['name']}@{doc['version']}@guest"
    labels = [engine.LABEL, f"{RUN_LABEL}={run}", f"{ACTION_LABEL}={key}"]
    # Sparse: a full listing inspects each container and fails on one removed meanwhile.
    filters = {"label": labels, "status": "running"}
    return docker.containers.list(sparse=True, filters=filters)


def warm(server: Server, docker, run: str, doc: dict, url: str, script: Path, conns: int) -> None:
    """Untimed wrk runs until the server stops starting containers for ``conns`` connections
    (cold starts are not what is measured; under load a start takes seconds here)."""
    count = -1
    for _ in range(WARM_ROUNDS):
        wrk(url, script, conns, WARM_S)
        now = len(action_containers(docker, run, doc))
        if now == count:
            return
        count = now


def server_container(docker, run: str, doc: dict):
    """The (one) warm container the server holds for the action, its address and secret."""
    found = action_containers(docker, run, doc)
    if len(found) != 1:
        raise RuntimeError(f"expected one warm container of {doc['name']}, found {len(found)}")
    container = found[0]
    address = engine.container_address(container)  # reloads its full attributes
    env = dict(item.split("=", 1) for item in container.attrs["Config"]["Env"])
    return address, env[protocol.SECRET_ENV]


def timed(conn: LeanConnection, head: bytes, body: bytes, n: int) -> list[float]:
    out = []
    for _ in range(n):
        start = time.perf_counter()
        status, payload = conn.request(head, body)
        out.append((time.perf_counter() - start) * 1000)
        if status != 200 or json.loads(payload) != {"ok": True}:
            raise RuntimeError(f"HTTP {status}: {payload[:200]!r}")
    return out


def sequential(server: Server, docker, run: str, doc: dict, count: int) -> dict:
    """(a): interleaved blocks of REST and direct calls, one client each, same container."""
    host = f"127.0.0.1:{server.port}"
    path = f"/api/v1/namespaces/_/actions/{doc['name']}?blocking=true&result=true"
    rest_head = post_head(path, host, server.key)
    body = b'{"n":1}'
    rest = LeanConnection("127.0.0.1", server.port)
    timed(rest, rest_head, body, 30)  # warm: one container, its connection, the caches
    address, secret = server_container(docker, run, doc)
    direct = LeanConnection(address, 8080)
    direct_head = post_head("/run", "action") + f"{protocol.SECRET_HEADER}: {secret}\r\n".encode()
    direct_body = run_body(doc)
    timed(direct, direct_head, direct_body, 10)
    via, raw = [], []
    cpu0 = server.cpu_s()
    try:
        while len(via) < count:
            n = min(BLOCK, count - len(via))
            timed(rest, rest_head, body, 1)  # untimed: takes the direct block's log lines
            via += timed(rest, rest_head, body, n)
            raw += timed(direct, direct_head, direct_body, n)
    finally:
        rest.close()
        direct.close()
    cpu = (server.cpu_s() - cpu0) * 1000 / (count + count // BLOCK)
    result = {"n": count, "server_cpu_ms": cpu}
    for q, tag in ((0.5, "p50"), (0.99, "p99")):
        result[f"rest_{tag}"] = quantile(via, q)
        result[f"direct_{tag}"] = quantile(raw, q)
        result[f"overhead_{tag}"] = result[f"rest_{tag}"] - result[f"direct_{tag}"]
    return result


def quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


class Scraper:
    """Reads ``/metrics`` every second on a thread until stopped; counts answers."""

    def __init__(self, server: Server):
        self.server, self.ok, self.failed, self.bytes = server, 0, 0, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        session = requests.Session()
        session.trust_env = False
        session.auth = self.server.session.auth
        while not self._stop.wait(1.0):
            try:
                resp = session.get(f"{self.server.url}/metrics", timeout=10)
                if resp.status_code == 200:
                    self.ok += 1
                    self.bytes = len(resp.content)
                else:
                    self.failed += 1
            except requests.RequestException:
                self.failed += 1

    def __enter__(self) -> Scraper:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(15)


def machine(run: dict) -> str:
    """The machine's CPU per request of a ``wrk`` run, or "–" for runs before it was read."""
    return f"{run['machine_cpu_ms']:.2f}" if "machine_cpu_ms" in run else "–"


def report(path: Path) -> str:
    """Markdown tables of the runs appended to ``path`` (``--json``), one row per run, and the
    median of each label's runs against its goal."""
    runs = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    out = [
        "| run | load (1 min) | overhead p50 / p99 ms | REST p50 / p99 ms | direct p50 / p99 ms "
        "| server CPU ms/call, sequential |",
        "|---|---|---|---|---|---:|",
    ]
    for r in runs:
        s = r["sequential"]
        out.append(
            f"| {r['label']} | {r['load_start']:.1f}–{r['load_end']:.1f} "
            f"| {s['overhead_p50']:.2f} / {s['overhead_p99']:.2f} "
            f"| {s['rest_p50']:.2f} / {s['rest_p99']:.2f} "
            f"| {s['direct_p50']:.2f} / {s['direct_p99']:.2f} | {s['server_cpu_ms']:.2f} |"
        )
    out += [
        "",
        "| run | connections | REST /s | errors (non-2xx + socket) | REST p50 / p99 ms "
        "| server CPU ms/call | machine CPU ms/call, REST / direct | containers "
        "| direct /run /s | ratio |",
        "|---|---:|---:|---:|---|---:|---|---:|---:|---:|",
    ]
    for r in runs:
        for t in r["throughput"]:
            v, d = t["rest"], t["direct"]
            out.append(
                f"| {r['label']} | {v['conns']} | {v['rate']:.0f} "
                f"| {v['non2xx'] + v['socket_errors']} | {v['p50_ms']:.1f} / {v['p99_ms']:.1f} "
                f"| {v['server_cpu_ms']:.2f} | {machine(v)} / {machine(d)} "
                f"| {v['containers']} | {d['rate']:.0f} "
                f"| {v['rate'] / d['rate']:.2f} |"
            )
    parts = ("server", "containers", "dockerd", "containerd", "wrk", "interrupts")
    out += [
        "",
        "| run | connections | path | machine CPU ms/call | "
        + " | ".join(parts)
        + " | the rest (kernel, other processes) |",
        "|---|---:|---|---:|" + "---:|" * (len(parts) + 1),
    ]
    for r in runs:
        for t in r["throughput"]:
            for path, v in (("REST", t["rest"]), ("direct /run", t["direct"])):
                if "dockerd_cpu_ms" not in v:
                    continue  # a run from before the breakdown
                cells = [v.get(f"{part}_cpu_ms", 0.0) for part in parts]
                rest = v["machine_cpu_ms"] - sum(cells)
                out.append(
                    f"| {r['label']} | {v['conns']} | {path} | {v['machine_cpu_ms']:.2f} | "
                    + " | ".join(f"{c:.2f}" for c in cells)
                    + f" | {rest:.2f} |"
                )
    out += [
        "",
        "| run | non-blocking accepted/s | accepted | recorded | pending after | "
        "c8 /s without a scraper | with one reading /metrics every s |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in runs:
        nb, m = r.get("nonblocking"), r.get("metrics")
        cells = (
            [f"{nb['rate']:.0f}", nb["accepted"], nb["recorded"], nb["pending"]] if nb else [""] * 4
        )
        cells += (
            [f"{m['without']['rate']:.0f}", f"{m['with']['rate']:.0f} ({m['scrapes']} scrapes)"]
            if m
            else ["", ""]
        )
        out.append(f"| {r['label']} | " + " | ".join(str(c) for c in cells) + " |")
    mem = [r for r in runs if r.get("memory")]
    if mem:
        out += [
            "",
            "| run | c64 seconds | REST /s | errors | RSS before MB | peak RSS (VmHWM) MB |",
            "|---|---:|---:|---:|---:|---:|",
        ]
        for r in mem:
            m = r["memory"]
            out.append(
                f"| {r['label']} | {r['argv'].split('--rss-seconds ')[1].split()[0]} "
                f"| {m['rate']:.0f} | {m['non2xx'] + m['socket_errors']} "
                f"| {m['rss_before_kb'] / 1024:.0f} | {m['hwm_kb'] / 1024:.0f} |"
            )
    return "\n".join(out) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--server-code", type=Path, default=ROOT, help="checkout whose server runs")
    parser.add_argument("--label", default="", help="name of this run's rows, e.g. before")
    parser.add_argument("--seq", type=int, default=300, help="sequential calls per side (a)")
    parser.add_argument("--seconds", type=float, default=10, help="duration of each wrk run")
    parser.add_argument("--conns", default="1,8,64", help="wrk connection counts (b)")
    parser.add_argument("--rss-seconds", type=float, default=0, help="the -c64 run of (d); 0: none")
    parser.add_argument("--skip", default="", help="parts to skip, e.g. c,e")
    parser.add_argument("--json", type=Path, help="append this run's results to this file")
    parser.add_argument("--report", type=Path, help="print the tables of a --json file and exit")
    args = parser.parse_args()
    if args.report:
        print(report(args.report))
        return
    args.seq = max(BLOCK, min(args.seq, MAX_SEQ))
    args.seconds = min(args.seconds, MAX_SECONDS)
    args.rss_seconds = min(args.rss_seconds, MAX_SECONDS)
    conns = [max(1, min(int(c), MAX_CONNS)) for c in args.conns.split(",")]
    skip = set(args.skip.split(","))
    if not shutil.which("wrk"):
        sys.exit("wrk is missing: apt-get install -y wrk")

    docker = engine.docker_client()
    run = f"bench-{uuid.uuid4().hex[:12]}"
    folder = Path(tempfile.mkdtemp(prefix="bench-rest-"))
    code = args.server_code.resolve()
    commit = subprocess.run(
        ["git", "-C", str(code), "log", "-1", "--format=%h"], capture_output=True, text=True
    ).stdout.strip()
    results: dict = {
        "label": args.label or commit,
        "commit": commit,
        "load_start": os.getloadavg()[0],
        "argv": " ".join(sys.argv[1:]),
    }
    server = Server(run, folder, code)
    try:
        doc = server.put_trivial(ACTION)
        results["sequential"] = sequential(server, docker, run, doc, args.seq)
        s = results["sequential"]
        print(
            f"(a) overhead p50 {s['overhead_p50']:.2f} ms p99 {s['overhead_p99']:.2f} ms "
            f"(REST {s['rest_p50']:.2f}/{s['rest_p99']:.2f}, direct "
            f"{s['direct_p50']:.2f}/{s['direct_p99']:.2f})",
            flush=True,
        )
        auth = {"Authorization": server.basic}
        rest_url = f"{server.url}/api/v1/namespaces/_/actions/{ACTION}?blocking=true&result=true"
        rest_lua = lua_script(folder, "rest", b'{"n":1}', auth)
        baseline, secret = baseline_containers(docker, run, 1)
        direct_url = f"http://{engine.container_address(baseline[0])}:8080/run"
        direct_lua = lua_script(folder, "direct", run_body(doc), {protocol.SECRET_HEADER: secret})
        results["throughput"] = []
        for c in conns:
            warm(server, docker, run, doc, rest_url, rest_lua, c)
            answering = [c.id for c in action_containers(docker, run, doc)]
            cpu0 = server.cpu_s()
            via = wrk(rest_url, rest_lua, c, args.seconds, answering)
            via["server_cpu_ms"] = (server.cpu_s() - cpu0) * 1000 / max(via["requests"], 1)
            via["containers"] = len(action_containers(docker, run, doc))
            raw = wrk(direct_url, direct_lua, c, args.seconds, [b.id for b in baseline])
            results["throughput"].append({"rest": via, "direct": raw})
            print(
                f"(b) c{c}: REST {via['rate']:.0f}/s ({via['non2xx']} non-2xx, "
                f"{via['socket_errors']} socket errors, p50 {via['p50_ms']:.1f} ms, p99 "
                f"{via['p99_ms']:.1f} ms, {via['containers']} containers, server CPU "
                f"{via['server_cpu_ms']:.2f} ms/call, machine CPU {via['machine_cpu_ms']:.2f} "
                f"ms/call), direct {raw['rate']:.0f}/s (machine CPU "
                f"{raw['machine_cpu_ms']:.2f} ms/call)",
                flush=True,
            )
        for container in baseline:
            engine.remove_container(container)
        if "c" not in skip:
            server.put_trivial(NB_ACTION)
            nb_url = f"{server.url}/api/v1/namespaces/_/actions/{NB_ACTION}"
            cpu0 = server.cpu_s()
            nb = wrk(nb_url, rest_lua, 8, args.seconds)
            nb["server_cpu_ms"] = (server.cpu_s() - cpu0) * 1000 / max(nb["requests"], 1)
            accepted = nb["requests"] - nb["non2xx"]
            deadline, last, last_change = time.monotonic() + MAX_DRAIN_S, -1, time.monotonic()
            while time.monotonic() < deadline:
                recorded = server.count(NB_ACTION)
                if recorded >= accepted and server.pending_rows() == 0:
                    break
                if recorded != last:
                    last, last_change = recorded, time.monotonic()
                elif time.monotonic() - last_change > 30:
                    break
                time.sleep(1)
            nb.update(
                accepted=accepted,
                recorded=server.count(NB_ACTION),
                pending=server.pending_rows(),
                drain_s=time.monotonic() - (deadline - MAX_DRAIN_S),
            )
            results["nonblocking"] = nb
            print(
                f"(c) non-blocking: {nb['rate']:.0f} accepted/s, {accepted} accepted, "
                f"{nb['recorded']} recorded, {nb['pending']} pending",
                flush=True,
            )
        if "e" not in skip:
            plain = wrk(rest_url, rest_lua, 8, args.seconds)
            with Scraper(server) as scraper:
                scraped = wrk(rest_url, rest_lua, 8, args.seconds)
            results["metrics"] = {
                "without": plain,
                "with": scraped,
                "scrapes": scraper.ok,
                "scrape_failures": scraper.failed,
                "bytes": scraper.bytes,
            }
            print(
                f"(e) c8 without a scraper {plain['rate']:.0f}/s, with one "
                f"{scraped['rate']:.0f}/s ({scraper.ok} scrapes, {scraper.failed} failed, "
                f"{scraper.bytes} bytes)",
                flush=True,
            )
        if args.rss_seconds:
            before = server.status("VmRSS")
            long = wrk(rest_url, rest_lua, 64, args.rss_seconds)
            long.update(rss_before_kb=before, hwm_kb=server.status("VmHWM"))
            long["rss_after_kb"] = server.status("VmRSS")
            results["memory"] = long
            print(
                f"(d) c64 {args.rss_seconds:g} s: {long['rate']:.0f}/s, RSS {before // 1024} MB "
                f"before, peak {long['hwm_kb'] // 1024} MB",
                flush=True,
            )
    finally:
        server.stop()
        engine.remove_labelled(docker, **{RUN_LABEL: run})
        shutil.rmtree(folder, ignore_errors=True)
    results["load_end"] = os.getloadavg()[0]
    results["uptime"] = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    print(json.dumps(results))
    if args.json:
        with args.json.open("a") as f:
            f.write(json.dumps(results) + "\n")


if __name__ == "__main__":
    main()
