"""FakeInvoker: a test double for the API layer's HTTP semantics only.

It returns canned RunOutcomes instead of running containers, so the REST
tests can exercise every status path (success, application, developer and
internal errors, slow runs, arrays, oversized results) in milliseconds. The
real invokers are tested in test_pool.py.

Behaviour is chosen by the job: blackbox image ``fake/inc`` returns
``{"n": n + 1}``; otherwise the ``fake`` parameter selects ``error``,
``developer``, ``raise``, ``array``, ``big`` or ``sleep`` (seconds in
``seconds``); anything else echoes the parameters.
"""

from __future__ import annotations

import asyncio
import time

from jupyter_faas.server.pool.types import ActivationJob, FaaSInvoker, RunOutcome


def _now() -> int:
    return int(time.time() * 1000)


class FakeInvoker(FaaSInvoker):
    """Canned outcomes; remembers every job it was given."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.jobs: list[ActivationJob] = []
        self.warm: set[str] = set()
        self.started = False

    async def start(self) -> None:
        self.started = True

    async def stop(self) -> None:
        self.started = False

    async def run(self, job: ActivationJob) -> RunOutcome:
        self.jobs.append(job)
        start = _now()
        params = job.params if isinstance(job.params, dict) else {}
        mode = params.get("fake")
        cold = job.action_key not in self.warm
        self.warm.add(job.action_key)
        status, result = 0, None
        if job.exec.get("image") == "fake/inc":
            result = {"n": params.get("n", 0) + 1}
        elif mode == "error":
            status, result = 1, {"error": "boom"}
        elif mode == "developer":
            status, result = 2, {"error": "The action did not initialize and exited unexpectedly."}
        elif mode == "raise":
            raise RuntimeError("secret internal detail")
        elif mode == "array":
            result = [1, 2, 3]
        elif mode == "big":
            result = {"big": "x" * (1024 * 1024 + 10)}
        elif mode == "sleep":
            await asyncio.sleep(float(params.get("seconds", 1)))
            result = {"slept": True}
        else:
            result = dict(params)
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S.000000000Z", time.gmtime())
        return RunOutcome(
            status_code=status,
            result=result,
            start_ms=start,
            end_ms=_now(),
            logs=[f"{stamp:<30} stdout: ran {job.action_name}"],
            init_time_ms=3 if cold else None,
            wait_time_ms=1,
            timed_out=False,
            peak_memory_bytes=None,
        )
