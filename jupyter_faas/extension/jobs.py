"""Background jobs of the server extension: build, test, push and deploy with live progress.

A job runs one blocking ``FaaSWorkspace`` call in a thread pool. The call's
progress callback runs in that thread; it hands each event to the event loop
(``loop.call_soon_threadsafe``), so a job's state is only ever changed on the
loop and long-polling requests can simply await the next change.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from ..builders import Progress
from ..errors import FaaSError

#: What a job can do to a bundle.
ACTIONS = ("build", "test", "push", "deploy")

#: The body of every unexpected failure: its text goes to the log, never to the client.
INTERNAL_ERROR = FaaSError("Internal error; see the Jupyter server log.").to_json()

#: What a job runs: a blocking function of the progress callback, returning the JSON result.
Work = Callable[[Progress], dict]


#: What an event says of its step: it runs, it is over, it failed, it was not needed.
STEP_STATUSES = ("running", "done", "failed", "skipped")


def _event(raw: dict) -> dict:
    """A progress event reduced to the fields the API promises."""
    progress = raw.get("progress")
    progress = float(progress) if isinstance(progress, (int, float)) else None
    status = raw.get("status")
    if status not in STEP_STATUSES:
        status = "done" if progress == 1.0 else "running"
    return {
        "step": str(raw.get("step") or ""),
        "message": str(raw.get("message") or ""),
        "progress": progress,
        "status": status,
    }


class Job:
    """One action on one bundle: its progress events so far and, once over, its outcome.

    Every method runs on the event loop thread.
    """

    def __init__(self, action: str, bundle: str, user: str | None = None):
        self.id = uuid.uuid4().hex
        self.action = action
        self.bundle = bundle
        #: The hub user the job acts as (None outside JupyterHub); only they may read it.
        self.user = user
        self.status = "running"
        self.events: list[dict] = []
        self.result: dict | None = None
        self.error: dict | None = None
        self.finished_at: float | None = None
        self._changed = asyncio.Event()

    def _notify(self) -> None:
        # Each change wakes the current waiters and starts a fresh event for the next ones.
        self._changed.set()
        self._changed = asyncio.Event()

    def add_event(self, raw: dict) -> None:
        self.events.append(_event(raw))
        self._notify()

    def finish(self, result: dict | None = None, error: dict | None = None) -> None:
        if error is not None:
            # The step that was running ends as failed (a failed push never stays "running").
            step = self.events[-1]["step"] if self.events else self.action
            message = str(error.get("error") or "").split("\n", 1)[0]
            self.events.append(
                {"step": step, "message": message, "progress": None, "status": "failed"}
            )
        self.status = "failed" if error is not None else "done"
        self.result, self.error = result, error
        self.finished_at = time.monotonic()
        self._notify()

    async def wait(self, after: int, timeout: float) -> None:
        """Return when there are events at index >= ``after``, the job is over, or ``timeout`` s pass."""
        if self.status != "running" or len(self.events) > after:
            return
        changed = self._changed
        try:
            await asyncio.wait_for(changed.wait(), timeout)
        except asyncio.TimeoutError:
            return

    def to_json(self, after: int = 0) -> dict:
        return {
            "id": self.id,
            "action": self.action,
            "bundle": self.bundle,
            "status": self.status,
            "events": self.events[after:],
            "next": len(self.events),
            "result": self.result,
            "error": self.error,
        }


class JobRegistry:
    """Runs jobs on a bounded thread pool and keeps them for a while after they end.

    Args:
        max_workers: Jobs running at once; later ones wait in the pool's queue.
        retention_s: Seconds a finished job stays readable.
        log: Where failures are logged (with their detail, which clients never see).
    """

    def __init__(self, max_workers: int, retention_s: float, log: logging.Logger):
        self._pool = ThreadPoolExecutor(max_workers, thread_name_prefix="faas-job")
        self._retention_s = retention_s
        self._jobs: dict[str, Job] = {}
        self._tasks: set[asyncio.Task] = set()
        self.log = log

    def start(self, action: str, bundle: str, work: Work, user: str | None = None) -> Job:
        """Start ``work`` in the pool as a new job acting as ``user`` (call on the event loop)."""
        self.prune()
        loop = asyncio.get_running_loop()
        job = Job(action, bundle, user)

        def progress(event: dict) -> None:
            if not loop.is_closed():  # the server is gone: nobody is left to tell
                loop.call_soon_threadsafe(job.add_event, event)

        task = loop.create_task(self._run(job, work, progress))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        self._jobs[job.id] = job
        return job

    async def _run(self, job: Job, work: Work, progress: Progress) -> None:
        loop = asyncio.get_running_loop()
        try:
            result = await loop.run_in_executor(self._pool, work, progress)
        except FaaSError as err:
            self.log.warning("Job %s (%s %s) failed: %s", job.id, job.action, job.bundle, err)
            if err.detail:
                self.log.debug("Job %s detail:\n%s", job.id, err.detail)
            job.finish(error=err.to_json())
        except Exception:
            self.log.exception("Job %s (%s %s) failed unexpectedly", job.id, job.action, job.bundle)
            job.finish(error=dict(INTERNAL_ERROR))
        else:
            job.finish(result=result)

    def get(self, job_id: str) -> Job | None:
        self.prune()
        return self._jobs.get(job_id)

    def prune(self) -> None:
        """Forget jobs that finished more than ``retention_s`` ago."""
        cutoff = time.monotonic() - self._retention_s
        for job_id, job in list(self._jobs.items()):
            if job.finished_at is not None and job.finished_at < cutoff:
                del self._jobs[job_id]

    def close(self) -> None:
        """Drop queued jobs and stop taking new ones; running Docker calls finish on their own."""
        self._pool.shutdown(wait=False, cancel_futures=True)
