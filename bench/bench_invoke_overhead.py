"""Benchmark: what the invokers add on top of the sandbox itself.

Measures, in one run, against the real Docker engine and the container-less runtime:

* warm invoke overhead: ``DockerInvoker.run`` (and ``ProcessInvoker.run``) p50/p99 minus a
  direct ``ActionClient`` ``/run`` to the same warm container (process), the floor, both
  over the same number of calls;
* cold start: ``DockerInvoker.run`` of a new action (image local, no prewarm) versus a bare
  ``docker run`` of the same image to the first ``/run`` answer; ``ProcessInvoker.run`` of a
  new action versus a bare runtime process started, initialised and run;
* a code-only Python action served by a prewarmed runtime container.

Prints a markdown table and writes it to docs/bench-invoker.md. Every container and image it
makes carries role ``bench`` plus a per-run label and is removed at the end.

Usage: ``.venv/bin/python bench/bench_invoke_overhead.py [--warm N] [--cold N]``
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
import uuid
from pathlib import Path

from jupyter_faas import engine, runtime
from jupyter_faas.actionclient import ActionClient
from jupyter_faas.environments import FaaSEnvironments, RuntimeProcess
from jupyter_faas.image import tar_context
from jupyter_faas.server.pool import ActivationJob
from jupyter_faas.server.pool.docker import DockerInvoker
from jupyter_faas.server.pool.process import ProcessInvoker
from jupyter_faas.server.pool.slots import SlotPool
from jupyter_faas.site import FaaSSite

ROOT = Path(__file__).resolve().parent.parent
RUN_LABEL = "org.jupyter-faas.run"
BASE_IMAGE = "jupyter-faas-base:bookworm"
CODE = "def main(args):\n    return {'echo': args}\n"


def build_runtime_image(client, tag: str, labels: dict) -> None:
    """Our runtime on the offline base image (as the server's python_image would be)."""
    files = {
        "Dockerfile": (
            f"FROM {BASE_IMAGE}\nCOPY runtime.py faas_protocol.py /faas/\nENV PYTHONUNBUFFERED=1\n"
            'CMD ["python3", "/faas/runtime.py"]\n'
        ).encode(),
        **runtime.runtime_file_bytes(),
    }
    client.images.build(
        fileobj=tar_context(files), custom_context=True, tag=tag, labels=labels, rm=True
    )


def make_job(name: str) -> ActivationJob:
    return ActivationJob(
        activation_id=uuid.uuid4().hex,
        namespace="guest",
        action_name=f"/guest/{name}",
        action_version="0.0.1",
        exec={"kind": "python:3.11", "code": CODE, "binary": False},
        params={"n": 1},
        init_env={},
        limits={"timeout": 60000, "memory": 256, "logs": 10, "concurrency": 1},
        deadline_ms=int(time.time() * 1000) + 60000,
        api_key=None,
        action_key=f"guest/{name}@0.0.1",
    )


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


async def timed(coro) -> tuple[float, object]:
    start = time.perf_counter()
    result = await coro
    return (time.perf_counter() - start) * 1000, result


async def warm_overhead(invoker: SlotPool, calls: int, block: int = 50) -> dict:
    """Alternate blocks of invoker.run and direct /run calls, so machine noise hits both."""
    first = await invoker.run(make_job("warm"))
    assert first.status_code == 0, first.result
    (slot,) = [s for s in invoker._slots.values() if s.action_key == "guest/warm@0.0.1"]
    direct_client = ActionClient(slot.action.host, slot.action.port)
    body = SlotPool._run_body(make_job("warm"))
    via_invoker, direct = [], []
    try:
        for round_no in range(max(1, calls // block) + 1):
            invoker_block, direct_block = [], []
            for _ in range(block):
                ms, outcome = await timed(invoker.run(make_job("warm")))
                assert outcome.status_code == 0, outcome.result
                invoker_block.append(ms)
            for _ in range(block):
                start = time.perf_counter()
                resp = direct_client.run(body, 10)
                assert resp.status == 200, resp.text
                direct_block.append((time.perf_counter() - start) * 1000)
            # The direct calls' log lines and sentinels must not reach the next invoker.run.
            for _ in range(block):
                slot.logs.take(1.0, 1 << 20)
            if round_no:  # the first round only warms up both paths
                via_invoker += invoker_block
                direct += direct_block
    finally:
        direct_client.close()
    return {"invoker": via_invoker, "direct": direct}


async def cold_starts(invoker: SlotPool, count: int) -> list[float]:
    times = []
    for i in range(count):
        ms, outcome = await timed(invoker.run(make_job(f"cold{i}")))
        assert outcome.status_code == 0 and outcome.init_time_ms is not None, outcome
        times.append(ms)
    return times


def bare_docker_runs(client, image: str, labels: dict, count: int) -> list[float]:
    times = []
    body = {"value": {"n": 1}, "activation_id": uuid.uuid4().hex}
    init = {"name": "bare", "main": "main", "binary": False, "code": CODE, "env": {}}
    for _ in range(count):
        start = time.perf_counter()
        container = client.containers.run(
            image, detach=True, labels=labels, mem_limit="256m", memswap_limit="256m"
        )
        try:
            action = ActionClient(engine.container_address(container))
            action.wait_ready(30)
            assert action.init(init, 30).status == 200
            assert action.run(body, 30).status == 200
            times.append((time.perf_counter() - start) * 1000)
            action.close()
        finally:
            engine.remove_container(container)
    return times


def bare_processes(environments: FaaSEnvironments, count: int) -> list[float]:
    """A runtime process of the runtime environment started, initialised and run, then killed."""
    _, path, _ = environments.ensure("", FaaSSite())
    body = {"value": {"n": 1}, "activation_id": uuid.uuid4().hex}
    init = {"name": "bare", "main": "main", "binary": False, "code": CODE, "env": {}}
    times = []
    for i in range(count):
        start = time.perf_counter()
        process = RuntimeProcess.start(
            path, memory_mb=256, env={}, allow_reinit=False, name=f"bare-{i}"
        )
        try:
            assert process.action.init(init, 30).status == 200
            assert process.action.run(body, 30).status == 200
            times.append((time.perf_counter() - start) * 1000)
        finally:
            process.kill()
    return times


async def prewarmed_starts(invoker: DockerInvoker, count: int) -> list[float]:
    times = []
    for i in range(count):
        deadline = time.monotonic() + 60
        while not any(s.state == "prewarm" for s in invoker._slots.values()):
            assert time.monotonic() < deadline, "no prewarm container came up"
            await asyncio.sleep(0.05)
        ms, outcome = await timed(invoker.run(make_job(f"pre{i}")))
        assert outcome.status_code == 0 and outcome.init_time_ms is not None, outcome
        times.append(ms)
    return times


async def measure(
    image: str, extra: dict, environments: FaaSEnvironments, warm_calls: int, cold_count: int
) -> dict:
    settings = {"python_image": image, "extra_labels": extra, "memory_budget_mb": 8192}
    invoker = DockerInvoker(prewarm_count=0, **settings)
    await invoker.start()
    try:
        warm = await warm_overhead(invoker, warm_calls)
        cold = await cold_starts(invoker, cold_count)
    finally:
        await invoker.stop()
    invoker = DockerInvoker(prewarm_count=1, **settings)
    await invoker.start()
    try:
        prewarmed = await prewarmed_starts(invoker, cold_count)
    finally:
        await invoker.stop()
    invoker = ProcessInvoker(environments=environments, memory_budget_mb=8192)
    await invoker.start()
    try:
        process_warm = await warm_overhead(invoker, warm_calls)
        process_cold = await cold_starts(invoker, cold_count)
    finally:
        await invoker.stop()
    return {
        "warm": warm,
        "cold": cold,
        "prewarmed": prewarmed,
        "process_warm": process_warm,
        "process_cold": process_cold,
    }


def table(results: dict, bare: list[float], bare_process: list[float]) -> str:
    lines = [
        "| measurement | n | p50 ms | p99 ms |",
        "|---|---:|---:|---:|",
    ]
    for key, who, sandbox in (
        ("warm", "DockerInvoker", "container"),
        ("process_warm", "ProcessInvoker", "runtime process"),
    ):
        inv, direct = results[key]["invoker"], results[key]["direct"]
        for label, values in (
            (f"`{who}.run`, warm", inv),
            (f"direct `ActionClient` /run, same {sandbox}", direct),
        ):
            lines.append(
                f"| {label} | {len(values)} | {pct(values, 0.5):.2f} | {pct(values, 0.99):.2f} |"
            )
        lines.append(
            f"| **{who} warm invoke overhead** (difference) | | "
            f"**{pct(inv, 0.5) - pct(direct, 0.5):.2f}** | "
            f"**{pct(inv, 0.99) - pct(direct, 0.99):.2f}** |"
        )
    lines += [
        "",
        "| start path (first answer of a new action) | n | min ms | median ms | max ms |",
        "|---|---:|---:|---:|---:|",
    ]
    for label, values in (
        ("bare `docker run` → ready → /init → /run", bare),
        ("`DockerInvoker.run`, cold start (image local)", results["cold"]),
        ("`DockerInvoker.run`, code-only Python on a prewarmed container", results["prewarmed"]),
        ("bare runtime process → /init → /run (container-less)", bare_process),
        ("`ProcessInvoker.run`, cold start (environment ready)", results["process_cold"]),
    ):
        lines.append(
            f"| {label} | {len(values)} | {min(values):.0f} | {statistics.median(values):.0f} "
            f"| {max(values):.0f} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--warm", type=int, default=500, help="warm calls per path (max 5000)")
    parser.add_argument("--cold", type=int, default=8, help="cold starts per path (max 30)")
    args = parser.parse_args()
    warm_calls, cold_count = min(args.warm, 5000), min(args.cold, 30)
    client = engine.docker_client()
    run = uuid.uuid4().hex[:12]
    labels = engine.labels("bench", **{RUN_LABEL: run})
    image = f"jupyter-faas-runtime:bench-{run}"
    build_runtime_image(client, image, labels)
    with tempfile.TemporaryDirectory(prefix="faas-bench-envs-") as envs:
        environments = FaaSEnvironments(root=envs)
        try:
            bare = bare_docker_runs(client, image, labels, cold_count)
            bare_process = bare_processes(environments, cold_count)
            results = asyncio.run(
                measure(image, {RUN_LABEL: run}, environments, warm_calls, cold_count)
            )
        finally:
            engine.remove_labelled(client, **{RUN_LABEL: run})
    text = (
        "# Invoker overhead benchmark (DockerInvoker and ProcessInvoker)\n\n"
        f"Measured {time.strftime('%Y-%m-%d %H:%M')} by `bench/bench_invoke_overhead.py` on the "
        "development machine (2 cores, Docker 20.10, runc, cgroup v1), runtime image = "
        f"{BASE_IMAGE} + proxy.py.\n\n"
        f"{table(results, bare, bare_process)}\n\n"
        "The warm overhead covers the thread hand-off, the activation bookkeeping and waiting "
        "for both log sentinels (logs come from a per-container attach stream, no Docker API "
        "call per activation). Cold starts include `docker run`, the readiness probe, /init "
        "and /run; the prewarmed path is /init + /run on a running runtime container. The "
        "container-less rows run the same code in runtime processes of a virtualenv "
        "(`ProcessInvoker`), same run, same machine.\n"
    )
    print(text)
    out = ROOT / "docs" / "bench-invoker.md"
    out.write_text(text)
    print(f"written to {out}")


if __name__ == "__main__":
    main()
