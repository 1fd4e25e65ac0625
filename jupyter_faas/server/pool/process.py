"""``ProcessInvoker``: runs activations in runtime processes, for a machine without a container engine.

It plays the same part as :class:`~.docker.DockerInvoker` (protocols.md B.1-B.4)
with a process in place of a container: our runtime (``runtime.py``) started
from a virtualenv made by :class:`~jupyter_faas.environments.FaaSEnvironments`,
listening on 127.0.0.1. Python code actions run in the runtime environment (no
extra packages); a ``blackbox`` action runs in the dependency environment whose
24-hex-character tag its image name carries (``jupyter-faas/deps:<tag>``), as
jupyter-faas builds and deploys them in container-less mode. No other image
can run here: there is no engine to run it.

A process keeps nothing apart but its address space: it runs as the server's
user, sees its files and network. So the server serves one namespace only
(``isolates_namespaces`` is False). Limits are still enforced: time (the
process is killed), memory (its watchdog kills it, and an answer whose
reported peak exceeds the limit counts as exhausted memory), log size, and a
memory budget over all processes.

Lifecycle of a process slot: cold start → ``busy`` (one activation) → ``idle``
(warm, reusable by the same ``action_key``) → ``busy`` … → killed (idle too
long, evicted, recycled after ``max_activations_per_process``, or failed).
There are no prewarm processes: a process starts in well under a second.
"""

from __future__ import annotations

import asyncio
import os
import re
from dataclasses import dataclass
from pathlib import Path

from traitlets import Instance, TraitError, Unicode, default, validate

from ...actionclient import ContainerGone
from ...environments import FaaSEnvironments, RuntimeProcess, is_memory_error
from ...runtime import protocol
from ...site import FaaSSite
from ..entities import now_ms
from .executor import BlockingCalls
from .outcomes import died, failed_outcome, init_failed, internal, run_result
from .slots import (
    FINAL_LOGS_WAIT_S,
    JobRejected,
    NoCapacity,
    Slot,
    SlotPool,
    SlotSpec,
    activations_limit,
)
from .types import DEVELOPER_ERROR, ActivationJob, RunOutcome

#: How long to wait for a process that stopped answering to exit (so its watchdog's
#: verdict on memory is in), in seconds.
EXIT_SETTLE_S = 2.0
#: Threads for process starts and kills; they take up to a second each.
SLOW_THREADS = 4
#: Threads for quick look-ups (finding an environment on disk).
QUICK_THREADS = 1
#: A dependency environment's tag: the first 24 hex characters of its key.
ENV_TAG_RE = re.compile(r"^[0-9a-f]{24}$")


class StartFailed(Exception):
    """A runtime process did not start; ``str()`` is the message, ``developer`` whose fault."""

    def __init__(self, message: str, developer: bool):
        super().__init__(message)
        self.developer = developer


def environment_tag(image: str) -> str | None:
    """The environment tag an image name carries, or None when it names no environment.

    jupyter-faas names a dependency image ``<repository>:<tag>``, the tag being the
    first 24 hex characters of the dependency key; the repository is
    ``jupyter-faas/deps`` locally and ``<registry>/<path>/deps`` once pushed. The
    repository is not checked (it is configurable, c.FaaSImages.repository): the tag
    alone names the environment. A digest reference (``name@sha256:…``) names none.

    Examples:
        ``127.0.0.1:5000/team/deps:0123456789abcdef01234567`` → ``0123456789abcdef01234567``;
        ``127.0.0.1:5000/deps`` (the colon is the registry port's) → None.
    """
    if "@" in image:
        return None
    last = image.strip().rsplit("/", 1)[-1]
    repository, sep, tag = last.rpartition(":")
    if not sep or not repository:
        return None
    return tag if ENV_TAG_RE.match(tag) else None


@dataclass
class _Spec(SlotSpec):
    env_path: Path
    runtime: bool


class ProcessSlot(Slot):
    """A runtime process serving one action (busy at first; never a prewarm one).

    Its :meth:`~.slots.Slot.exchange` needs no wait for the port (``RuntimeProcess.start``
    returns once the process listens), and always waits for the sentinels: our runtime
    prints them in every environment.
    """

    #: Always our runtime, which says when it listens.
    announces_start = True

    def __init__(self, process: RuntimeProcess, name: str, action_key: str):
        super().__init__(name, name, process.memory_mb, action_key, "busy")
        self.process = process
        self.action = process.action
        self.logs = process.logs

    def died_of_oom(self) -> bool:
        """Whether the memory watchdog killed the process (waits briefly for it to exit)."""
        self.process.wait(EXIT_SETTLE_S)
        return bool(self.process.oom_killed)

    def final_logs(self, wait_s: float, log_limit_bytes: int) -> list[str]:
        """The logs of an activation cut short, taken before the process is killed.

        Killing it closes its pipes, and what was not read by then would be lost.
        A process that exited is read to the end of its output (bounded by
        ``wait_s``: a child may hold the pipes); a live one, up to now.
        """
        if not self.process.alive():
            self.process.logs.wait_ended(wait_s)
        return self.process.logs.take(0, log_limit_bytes)

    def remove(self) -> None:
        """Kill the process and stop following its output; idempotent."""
        self.state = "removed"
        self.process.action.close()
        self.process.kill()
        self.process.logs.close()


class ProcessInvoker(SlotPool):
    """Runs :class:`ActivationJob` s in runtime processes and reports :class:`RunOutcome` s."""

    sandbox, sandboxes = "process", "processes"
    limit_trait = "max_activations_per_process"
    positive_seconds = ("start_timeout_s",)

    isolates_namespaces = False

    notice = (
        "ProcessInvoker runs activations as plain processes of this server's user, with no "
        "isolation beyond a process, so this server serves the guest namespace only "
        "(time, memory and log limits are still enforced)."
    )

    environments = Instance(
        FaaSEnvironments,
        help="""Where the runtime and dependency environments live (c.FaaSEnvironments.root).
        Dependency environments are made by kernels building in container-less mode; give
        them and this server the same root so that deployed functions find theirs.""",
    )

    @default("environments")
    def _environments_default(self):
        return FaaSEnvironments(parent=self)

    site = Instance(
        FaaSSite,
        help="""The site settings (CA bundle, proxies; c.FaaSSite) given to every runtime
        process, as to builds and local tests.""",
    )

    @default("site")
    def _site_default(self):
        return FaaSSite(parent=self.parent or self)

    api_host = Unicode(
        help="""Value of the __OW_API_HOST environment variable of every function: the URL
        functions use to call this server back. Processes run on this machine, so a
        loopback URL works, e.g. "http://127.0.0.1:3233". Empty: functions get none.
        Default: $FAAS_API_HOST, else the server's own c.FunctionServer.ip (127.0.0.1 when
        it listens on all addresses) and c.FunctionServer.port, else (port 0)
        "http://127.0.0.1:3233".""",
    ).tag(config=True)

    max_activations_per_process = activations_limit("process")

    @default("api_host")
    def _api_host_default(self):
        if os.environ.get("FAAS_API_HOST"):
            return os.environ["FAAS_API_HOST"]
        # Functions run on this machine: they reach the server where it listens.
        port = getattr(self.parent, "port", 0)
        if not port:
            return "http://127.0.0.1:3233"
        ip = getattr(self.parent, "ip", "")
        host = "127.0.0.1" if ip in ("", "0.0.0.0", "::") else ip
        return f"http://{f'[{host}]' if ':' in host else host}:{port}"

    @validate("api_host")
    def _validate_api_host(self, proposal):
        value = proposal["value"].strip()
        if value and not re.match(r"^https?://[^/\s]+", value):
            raise TraitError(
                f"c.ProcessInvoker.api_host = {value!r} is not an http(s) URL; give the URL "
                'functions call this server back at, e.g. "http://127.0.0.1:3233", or "" for none.'
            )
        return value

    _validate_counts = validate("max_activations_per_process")(SlotPool._check_count)

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self._runtime_env: Path | None = None

    # ---- start / stop -------------------------------------------------------------------

    async def start(self) -> None:
        """Make (or reuse) the runtime environment, then start reaping idle processes."""
        self._capacity = asyncio.Condition()
        self._calls = BlockingCalls(SLOW_THREADS, QUICK_THREADS, self.memory_budget_mb // 128 + 2)
        try:
            _, path, reused = await self._calls.slow(self.environments.ensure, "", self.site)
        except BaseException:
            self._calls.shutdown()
            self._calls = None
            raise
        self._runtime_env = Path(path)
        self._running = True
        self._start_reaper("faas-process-reaper")
        self.log.info(
            "process invoker started: runtime environment %s (%s), budget %d MB, idle timeout %g s",
            self._runtime_env,
            "reused" if reused else "made",
            self.memory_budget_mb,
            self.idle_timeout_s,
        )

    async def stop(self) -> None:
        """Kill every runtime process of this invoker; safe to call twice."""
        if self._calls is None:
            return
        slots = await self._remove_all()
        self._calls.shutdown()
        self._calls = None
        self.log.info("process invoker stopped; killed %d processes", len(slots))

    # ---- run ----------------------------------------------------------------------------

    async def run(self, job: ActivationJob) -> RunOutcome:
        """Run one activation: find or start a process, /init if cold, /run, collect logs.

        Never raises for a failing action or process: every failure becomes a
        RunOutcome with OpenWhisk's status code and message, in a container's words.
        """
        accepted_ms = now_ms()
        if not self._running:
            return failed_outcome(accepted_ms, *internal("The function server is shutting down."))
        try:
            spec = await self._spec(job)
            slot, cold = await self._acquire(job, spec)
        except JobRejected as err:
            return failed_outcome(accepted_ms, DEVELOPER_ERROR, {"error": str(err)})
        except NoCapacity as err:
            return failed_outcome(accepted_ms, *internal(str(err)))
        except StartFailed as err:
            if err.developer:
                return failed_outcome(accepted_ms, DEVELOPER_ERROR, {"error": str(err)})
            return failed_outcome(accepted_ms, *internal(str(err)))
        except Exception:
            self.log.exception(
                "preparing activation %s of %s failed", job.activation_id, job.action_name
            )
            return failed_outcome(
                accepted_ms,
                *internal("The function server failed to start the activation; see its log."),
            )
        return await self._activate_or_fail(
            job, slot, accepted_ms, self._activate(job, spec, slot, cold, accepted_ms)
        )

    async def _activate(
        self, job: ActivationJob, spec: _Spec, slot: ProcessSlot, cold: bool, accepted_ms: int
    ) -> RunOutcome:
        slot.process.set_busy(True)
        ex = await self._exchange(job, spec, slot, cold)
        if not self._running:
            # stop() killed the process under this activation; its pools are gone.
            return failed_outcome(
                accepted_ms, *internal("The function server stopped during the activation.")
            )
        peak = None
        logs = ex.logs
        if ex.run is not None:
            peak = protocol.peak_memory(ex.run.headers)
        answer = ex.run if ex.run is not None else ex.init
        if ex.timed_out_in or ex.gone_in:
            oom = bool(ex.gone_in) and await self._calls.slow(slot.died_of_oom)
            logs = await self._calls.activation(
                slot.final_logs, FINAL_LOGS_WAIT_S, spec.log_limit_bytes
            )
            await self._discard(slot)
            status, result = self._cut_short(ex, spec, oom)
        elif answer.status != 200 and is_memory_error(answer.body):
            # The address-space backstop refused an allocation (MemoryError) before the
            # watchdog saw it: a container would have been killed; so is this process.
            await self._discard(slot)
            status, result = died("init" if ex.run is None else "run", oom=True)
        elif ex.run is None:
            await self._discard(slot)
            status, result = init_failed(ex.init)
        elif peak is not None and peak > spec.memory_mb * 1024 * 1024:
            # The watchdog samples; the runtime's own peak is exact. A container's cgroup
            # would have killed it: so does this, in the same words.
            self.log.debug("%s peaked at %d bytes over %d MB", slot.name, peak, spec.memory_mb)
            await self._discard(slot)
            status, result = died("run", oom=True)
        else:
            status, result = run_result(ex.run)
            # Idle until its next activation: the watchdog then reads it once a second.
            slot.process.set_busy(False)
            await self._release(slot)
        return self._outcome(ex, status, result, logs, peak, accepted_ms)

    async def _spec(self, job: ActivationJob) -> _Spec:
        kind, code = self._check_kind(job)
        image = str(job.exec.get("image") or "")
        runtime = kind.startswith("python:") or image == self.python_image
        if runtime:
            env_path = self._runtime_env
        else:
            env_path = await self._dependency_environment(job.action_name, image)
        return _Spec(env_path=env_path, code=code, **self._limits(job), runtime=runtime)

    async def _dependency_environment(self, action_name: str, image: str) -> Path:
        """The environment a blackbox image names, made by a kernel in container-less mode.

        Raises:
            JobRejected: no image, an image jupyter-faas did not build in container-less
                mode, or one whose environment is not under this server's root.
        """
        root = self.environments.root
        advice = (
            "Build and deploy the function from a kernel whose c.FaaSEnvironments.root is "
            f"this server's ({root}), or serve it with a Docker engine "
            "(c.FunctionServer.invoker_class = 'docker')."
        )
        if not image:
            raise JobRejected(
                f"The blackbox action {action_name} names no image; this container-less "
                f"function server can only run dependency images built by jupyter-faas in "
                f"container-less mode. {advice}"
            )
        tag = environment_tag(image)
        if tag is None:
            raise JobRejected(
                f"This function server runs without a container engine: it can only run "
                f"images built by jupyter-faas in container-less mode (named like "
                f"jupyter-faas/deps:<24 hex characters>), not '{image}'. {advice}"
            )
        path = await self._calls.quick(self.environments.find, tag)
        if path is None:
            raise JobRejected(
                f"The dependency environment {tag} of image '{image}' is not among this "
                f"function server's environments in {root}. {advice}"
            )
        return Path(path)

    # ---- process slots ------------------------------------------------------------------

    async def _new_slot(self, job: ActivationJob, spec: _Spec) -> tuple[ProcessSlot, bool]:
        name = self._name(job.action_name)
        process = await self._start_reserved(
            spec.memory_mb, lambda: self._start_process(name, job, spec)
        )
        return ProcessSlot(process, name, job.action_key), True

    async def _start_process(self, name: str, job: ActivationJob, spec: _Spec) -> RuntimeProcess:
        """Start a runtime process within c.ProcessInvoker.start_timeout_s.

        Raises:
            StartFailed: it exited, could not be run or did not listen in time, or the
                server is stopping.
        """
        try:
            process = await self._calls.slow(
                RuntimeProcess.start,
                spec.env_path,
                memory_mb=spec.memory_mb,
                env=self._env(),
                allow_reinit=False,
                name=name,
                timeout=self.start_timeout_s,
            )
        except (ContainerGone, OSError) as err:
            reason = _first_line(err)
        else:
            if self._running:
                return process
            # stop() ran meanwhile and shut the pools down: kill it on a thread of its own.
            await asyncio.to_thread(process.kill)
            raise StartFailed("The function server is shutting down.", developer=False)
        self.log.warning("starting a process for %s failed: %s", job.action_name, reason)
        if spec.runtime:
            raise StartFailed(
                f"The runtime environment {spec.env_path} could not be started ({reason}). "
                "Check c.FaaSEnvironments.root and c.FaaSEnvironments.python; removing the "
                "environment folder makes the server create it again at its next start.",
                developer=False,
            )
        raise StartFailed(
            f"Failed to start a runtime process from environment {spec.env_path}: {reason}. "
            "Build the function again from a kernel in container-less mode to repair it.",
            developer=True,
        )

    async def _dead_check(self):
        return lambda slot: not slot.process.alive()

    # ---- helpers ------------------------------------------------------------------------

    def _name(self, action_name: str) -> str:
        return "faas-{namespace}-{action}-{n}".format(**self._name_fields(action_name))

    def _env(self) -> dict:
        """A function's environment: the API host and the site's CA and proxy settings."""
        env = self.site.host_env()
        return {"__OW_API_HOST": self.api_host, **env} if self.api_host else env


def _first_line(err: Exception) -> str:
    text = str(err).strip()
    return text.splitlines()[0][:300] if text else type(err).__name__
