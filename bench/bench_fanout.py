"""Benchmark: a crystallography run fanned out on the function server against the same chunks in
process, on the same number of cores (issue 11's speed target: ≥ 0.95×).

Starts ``python -m jupyter_faas.server`` (Docker, or container-less with ``--process``) on a free
port with the run's folder mounted at its own path, deploys ``process_chunk`` as a function (the
``xtal`` package travels in its bundle, numpy/scipy/h5py pinned at this interpreter's versions),
simulates a run and measures frames per second of:

- the fan-out with ``--concurrency`` activations in flight, first with cold containers (as the
  notebook's first fan-out) and then again, warm;
- the same chunks through the same function in this process, on 1 and on ``--concurrency``
  forked processes.

The rounds alternate (in process, fan-out) so the machine's load hits both; the load average
is printed before, during (sampled after every run) and after. For the fan-out, the polls per
chunk it took to fetch the records (non-blocking invocations) and how long after a chunk's end
its record was seen (the lane time the polling cost) are printed too. Where the time goes: for every run, the CPU seconds of the function
processes (container-less, the server's runtime processes; in process, the forked workers;
containers are not the server's children, so a Docker run shows none), of the server process and
of this client, and the share of the cores' time the run left unused. Every
container the server makes carries role ``bench`` and is removed when it stops; the dependency
image is built unlabelled, like a user's, and reused by later runs.

Usage: ``.venv/bin/python bench/bench_fanout.py [--frames 120] [--chunk 10] [--concurrency 2]
[--rounds 3] [--process]``
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import psutil
import requests
from traitlets.config import Config

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "examples" / "crystallography"))

from xtal import process_chunk, simulate_run  # noqa: E402
from xtal.pipeline import chunks  # noqa: E402

from jupyter_faas import engine  # noqa: E402
from jupyter_faas.bundle import Bundle, FunctionMetadata  # noqa: E402
from jupyter_faas.fanout import fan_out, run_in_process  # noqa: E402
from jupyter_faas.pinning import pinned_requirements  # noqa: E402
from jupyter_faas.workspace import FaaSWorkspace  # noqa: E402

CODE = """\
from xtal import process_chunk


def main(args):
    return process_chunk(
        args["run_file"], args["geom_file"], args["cell_file"], args["start"], args["stop"],
        args.get("min_peaks", 15), args.get("stream_file"),
    )
"""


def chunk_main(args: dict) -> dict:
    """The function's code, called here."""
    return process_chunk(
        args["run_file"],
        args["geom_file"],
        args["cell_file"],
        args["start"],
        args["stop"],
        args.get("min_peaks", 15),
        args.get("stream_file"),
    )


class CpuMeter:
    """CPU seconds of this process, its reaped children, and a server with its process tree."""

    def __init__(self, server_pid: int):
        self.server = psutil.Process(server_pid)

    def sample(self) -> dict[str, float]:
        own = os.times()
        tree = {}
        for proc in [self.server, *self.server.children(recursive=True)]:
            try:
                times = proc.cpu_times()
            except psutil.NoSuchProcess:
                continue
            tree[proc.pid] = times.user + times.system
        return {
            "client": own.user + own.system,
            "workers": own.children_user + own.children_system,  # reaped forked workers
            "server": tree.pop(self.server.pid, 0.0),
            "functions": tree,
        }

    @staticmethod
    def spent(before: dict, after: dict, wall: float) -> dict[str, float]:
        """CPU seconds per part between two samples, and the idle share of the cores' time."""
        functions = sum(
            t - before["functions"].get(pid, 0.0) for pid, t in after["functions"].items()
        )
        spent = {
            "functions": functions + after["workers"] - before["workers"],
            "server": after["server"] - before["server"],
            "client": after["client"] - before["client"],
        }
        spent["idle"] = 1 - sum(spent.values()) / (wall * os.cpu_count())
        return spent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(folder: Path, mount: Path, env: dict, owner: str) -> tuple[subprocess.Popen, str]:
    port = free_port()
    (folder / "config.py").write_text(
        f"c.DockerInvoker.extra_labels = {{'org.jupyter-faas.bench': {owner!r}}}\n"
    )
    log = open(folder / "server.log", "wb")  # noqa: SIM115 (the server's lifetime)
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "jupyter_faas.server",
            f"--FunctionServer.port={port}",
            f"--FunctionServer.data_dir={folder}",
            f"--FunctionServer.config_file={folder / 'config.py'}",
            f"--FaaSSite.data_mounts={mount}={mount}:rw",
            "--DockerInvoker.prewarm_count=0",
        ],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    session = requests.Session()
    session.trust_env = False
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            sys.exit(f"the server exited:\n{(folder / 'server.log').read_text()[-3000:]}")
        try:
            if session.get(f"{url}/api/v1", timeout=2).status_code == 200:
                return proc, url
        except requests.ConnectionError:
            pass
        time.sleep(0.2)
    proc.kill()
    sys.exit("the server did not answer within 120 s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=120)
    parser.add_argument("--chunk", type=int, default=10)
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3, help="warm fan-outs and in-process runs")
    parser.add_argument("--process", action="store_true", help="container-less server and builder")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="faas-bench-fanout-", dir="/var/tmp"))
    work.chmod(0o755)
    data, server_dir = work / "data", work / "server"
    for folder in (data, data / "out", server_dir):
        folder.mkdir()
    data.chmod(0o777)
    (data / "out").chmod(0o777)
    os.environ.setdefault("FAAS_ENV_DIR", str(work / "envs"))
    env = {**os.environ, **({"FAAS_BACKEND": "process"} if args.process else {})}
    owner = f"fanout-{os.getpid()}"
    proc, url = start_server(server_dir, work, env, owner)
    try:
        config = Config()
        config.FaaSWorkspace.bundle_dir = str(work / "functions")
        config.FaaSWorkspace.builder_class = "process" if args.process else "docker"
        config.OpenWhiskClient.api_host = url
        config.OpenWhiskClient.auth = (server_dir / "auth.guest").read_text().strip()
        config.FaaSSite.data_mounts = {str(work): f"{work}:rw"}
        workspace = FaaSWorkspace(config=config)
        meta = FunctionMetadata(name="xtal-chunk", handler="main", memory_mb=512, timeout_s=300)
        bundle = Bundle.write(
            workspace.bundle_path("xtal-chunk"),
            meta,
            CODE,
            pinned_requirements({"numpy", "scipy", "h5py"}),
            {"xtal": str(REPO / "examples" / "crystallography" / "xtal")},
        )
        workspace.deploy(bundle)
        run = {
            "run_file": str(data / "run.h5"),
            "geom_file": str(data / "run.geom"),
            "cell_file": str(data / "run.cell"),
        }
        simulate_run(run["run_file"], run["geom_file"], run["cell_file"], args.frames, seed=11)
        params = [
            {**run, "start": a, "stop": b, "stream_file": str(data / "out" / f"c{i:04d}.stream")}
            for i, (a, b) in enumerate(chunks(args.frames, args.chunk))
        ]
        rates: dict[str, list[float]] = {}
        profile: dict[str, list[dict]] = {}
        polls: dict[str, list[tuple[float, float]]] = {}
        loads: list[float] = []
        meter = CpuMeter(proc.pid)

        def note(label: str, run: Callable[[], float]) -> None:
            before = meter.sample()
            seconds = run()
            profile.setdefault(label, []).append(meter.spent(before, meter.sample(), seconds))
            rates.setdefault(label, []).append(args.frames / seconds)
            loads.append(os.getloadavg()[0])
            print(f"{label}: {args.frames / seconds:.2f} frames/s", flush=True)

        def fanned(label: str) -> Callable[[], float]:
            def run() -> float:
                result = fan_out(
                    workspace, "xtal-chunk", params, concurrency=args.concurrency, progress="none"
                )
                late = sum(result.late_ms) / len(result.late_ms)
                polls.setdefault(label, []).append((result.polls_per_chunk, late))
                return result.seconds

            return run

        def local(processes: int) -> Callable[[], float]:
            return lambda: (
                run_in_process(chunk_main, params, processes=processes, progress="none").seconds
            )

        load_before = os.getloadavg()
        note("fan-out, cold", fanned("fan-out, cold"))
        for _ in range(args.rounds):
            note("in process, 1 process", local(1))
            note(f"in process, {args.concurrency} processes", local(args.concurrency))
            note("fan-out, warm", fanned("fan-out, warm"))
        load_after = os.getloadavg()
        workspace.close()
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
        if not args.process:
            engine.remove_labelled(engine.docker_client(), **{"org.jupyter-faas.bench": owner})
        shutil.rmtree(work, ignore_errors=True)

    mode = "container-less (process)" if args.process else "Docker"
    same = rates[f"in process, {args.concurrency} processes"]
    print(
        f"\nMeasured by `bench/bench_fanout.py` on {time.strftime('%Y-%m-%d')} ({os.cpu_count()} "
        f"cores, {platform.machine()}, Python {platform.python_version()}); {mode} server, "
        f"{args.frames} frames of 512 × 512 in chunks of {args.chunk}, {args.concurrency} at a "
        f"time; median of {args.rounds} interleaved rounds; load average "
        f"{load_before[0]:.1f} before, {statistics.mean(loads):.1f} during (mean of one "
        f"sample after each run, highest {max(loads):.1f}), {load_after[0]:.1f} after.\n"
    )
    print(
        "| | frames/s | × in process, same cores | polls per chunk | record seen after the "
        "end, ms per chunk |\n|---|---|---|---|---|"
    )
    for label, values in rates.items():
        value = statistics.median(values)
        polled = late = ""
        if label in polls:
            polled = f"{statistics.median(p for p, _ in polls[label]):.1f}"
            late = f"{statistics.median(t for _, t in polls[label]):.0f}"
        print(
            f"| {label} | {value:.2f} | {value / statistics.median(same):.2f} | {polled} | {late} |"
        )
    print(
        "\nWhere the time goes (CPU seconds per run, median; idle: share of the cores' time "
        "no part of the run used):\n"
    )
    print("| | function processes | server | client | idle |\n|---|---|---|---|---|")
    for label, runs in profile.items():
        cells = [
            statistics.median(r[part] for r in runs) for part in ("functions", "server", "client")
        ]
        idle = statistics.median(r["idle"] for r in runs)
        print(f"| {label} | " + " | ".join(f"{c:.2f}" for c in cells) + f" | {idle:.0%} |")


if __name__ == "__main__":
    main()
