"""``DockerInvoker``: runs activations in a pool of warm action containers on the Docker engine.

It plays the part of OpenWhisk's invoker and container pool on one machine
(protocols.md B.1-B.4): a container per action version, reused while warm,
one activation at a time; prewarmed runtime containers for Python code;
idle containers reaped, a memory budget enforced by evicting idle ones.

Lifecycle of a container slot: ``prewarm`` (runtime started without code) or
a cold start → ``busy`` (one activation) → ``idle`` (warm, reusable by the
same ``action_key``) → ``busy`` … → removed (idle too long, evicted, recycled
after ``max_activations_per_container``, or failed). Any failure of a
container (timeout, death, init refused) removes it.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import re
import time
import uuid
from dataclasses import dataclass

import docker
import docker.errors
import requests.exceptions
from traitlets import Dict, Float, Instance, Integer, TraitError, Unicode, default, validate

from ... import engine
from ...runtime import protocol
from ...site import FaaSSite
from .containers import (
    ACTION_LABEL,
    INSTANCE_LABEL,
    PREWARM_LABEL,
    ActionContainer,
    Exchange,
    PullFailed,
    ensure_image,
    escape_name,
    wants_refresh,
)
from .executor import BlockingCalls
from .outcomes import (
    died,
    failed_outcome,
    init_failed,
    internal,
    run_result,
    timeout_message,
)
from .types import DEVELOPER_ERROR, ActivationJob, FaaSInvoker, RunOutcome

#: Memory of prewarm containers; only actions with this memory limit use them (as OpenWhisk).
PREWARM_MEMORY_MB = 256
#: How long to wait for the output of a removed container to end.
FINAL_LOGS_WAIT_S = 1.0
_NAME_RE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]*$")
_NAME_FIELDS = {"namespace": "guest", "action": "pkg-hello", "n": 1, "instance": "0a1b2c3d"}


class JobRejected(Exception):
    """The job cannot run here at all (unsupported kind, missing image); a developer error."""


class NoCapacity(Exception):
    """No container slot could be found within the capacity wait; a whisk internal error."""


@dataclass
class _Spec:
    """What a job needs from the pool, derived once from its exec and limits."""

    image: str
    code: str | None
    memory_mb: int
    timeout_ms: int
    log_limit_bytes: int
    sentinelled: bool
    refresh: bool
    prewarmable: bool


class DockerInvoker(FaaSInvoker):
    """Runs :class:`ActivationJob` s in Docker containers and reports :class:`RunOutcome` s."""

    python_image = Unicode(
        protocol.RUNTIME_IMAGE,
        help="""Our runtime image: it runs the default Python kind (python:3.x, code sent
        through /init) and native actions. Prewarm containers are started from it. It is
        never refreshed from a registry; it is pulled only when absent and its name has a
        registry host (or c.DockerInvoker.registry is set). Example: "jupyter-faas-runtime:latest".""",
    ).tag(config=True)

    registry = Unicode(
        help="""Registry host[:port] to pull images from when they are not on the Docker
        engine and their name has no registry host, e.g. "127.0.0.1:5000". Images whose
        name has a host (127.0.0.1:5000/fn:1) are pulled from that host when absent, and
        before every cold start when tagged latest or untagged (a failed refresh falls
        back to the local copy). Empty: plain names must be on the engine.
        Default: $FAAS_REGISTRY or empty.""",
    ).tag(config=True)

    network = Unicode(
        "bridge",
        help="""Docker network the action containers join. The server reaches each
        container at its IP on this network, port 8080 (no ports are published), so the
        server must be able to route to it: "bridge" works for a server on the Docker
        host. Example: "faas-net".""",
    ).tag(config=True)

    api_host = Unicode(
        help="""Value of the __OW_API_HOST environment variable in every action container:
        the URL actions use to call this server back, as reachable from inside a
        container, e.g. "http://172.17.0.1:3233". Default: $FAAS_API_HOST or empty.""",
    ).tag(config=True)

    idle_timeout_s = Float(
        600.0,
        help="""Seconds a warm container may stay idle before it is removed. 0 keeps idle
        containers until evicted by the memory budget or the server stops. Example: 600.""",
    ).tag(config=True)

    prewarm_count = Integer(
        1,
        help=f"""Number of runtime containers kept started without code, with
        {PREWARM_MEMORY_MB} MB of memory, so that a Python action with that memory limit
        skips the container start (its /init is its only cold-start cost). 0 disables
        prewarming. Example: 2.""",
    ).tag(config=True)

    memory_budget_mb = Integer(
        4096,
        help="""Total memory in MB of all action containers (busy, warm, prewarm). A new
        container that would exceed it first evicts idle containers, least recently used
        first; if busy containers hold the whole budget, the activation waits up to
        c.DockerInvoker.capacity_wait_s for one to be released, then fails with a whisk
        internal error "No capacity". Example: 8192.""",
    ).tag(config=True)

    capacity_wait_s = Float(
        10.0,
        help="""Seconds an activation waits for memory to become free when the memory budget
        is held by busy containers. 0 fails at once. Example: 10.""",
    ).tag(config=True)

    container_name_template = Unicode(
        "faas-{namespace}-{action}-{n}-{instance}",
        help="""Name of each action container. Fields: {namespace} (the action's namespace),
        {action} (package and action name joined by "-"), {n} (a counter, required: it keeps
        names unique), {instance} (8 hex characters naming this server process). Namespace
        and action are escaped for Docker: characters other than letters, digits, "." and
        "-" become "_" plus their UTF-8 bytes in hex (so "my act" → "my_20act"). Prewarm
        containers use namespace "prewarm" and action "python".
        Example: "wsk-{instance}-{n}-{action}".""",
    ).tag(config=True)

    max_activations_per_container = Integer(
        0,
        help="""Remove a container after it has run this many activations, so long-lived
        processes cannot accumulate state or leaked memory. 0 reuses containers without
        limit. Example: 1000.""",
    ).tag(config=True)

    sentinel_wait_s = Float(
        2.0,
        help="""Upper bound in seconds on waiting, after an activation, for the log sentinel
        lines of runtimes that print them (ours, and images built by jupyter-faas). Other
        images are not waited for. Example: 2.""",
    ).tag(config=True)

    start_timeout_s = Float(
        30.0,
        help="""Seconds a prewarm container may take to listen on port 8080 before it is
        dropped. (Cold starts are bounded by the action's own time limit.) Example: 30.""",
    ).tag(config=True)

    extra_labels = Dict(
        value_trait=Unicode(),
        help="""Extra Docker labels put on every action container. They also scope the
        crash cleanup at start: only containers with role "server" AND these labels are
        removed, so two servers on one engine can keep apart by giving each its own label.
        Example: {"org.jupyter-faas.site": "lab1"}.""",
    ).tag(config=True)

    site = Instance(
        FaaSSite,
        help="""The site settings (CA bundle, proxies; c.FaaSSite) given to every action
        container, as to builds and local test containers.""",
    )

    @default("site")
    def _site_default(self):
        return FaaSSite(parent=self.parent or self)

    docker_slow_threads = Integer(
        4,
        help="""Threads for slow Docker calls (container start, image pull, removal), so that
        they never delay quick ones. Example: 4.""",
    ).tag(config=True)

    docker_quick_threads = Integer(
        2,
        help="""Threads for quick Docker calls (inspect, list). Example: 2.""",
    ).tag(config=True)

    @default("registry")
    def _registry_default(self):
        return _env("FAAS_REGISTRY")

    @default("api_host")
    def _api_host_default(self):
        return _env("FAAS_API_HOST")

    @validate("container_name_template")
    def _validate_template(self, proposal):
        template = proposal["value"]
        if "{n}" not in template:
            raise TraitError(
                f"c.DockerInvoker.container_name_template {template!r} lacks {{n}}: without the "
                "counter two containers of one action get the same name. Add it, e.g. "
                '"faas-{namespace}-{action}-{n}-{instance}".'
            )
        try:
            sample = template.format(**_NAME_FIELDS)
        except (KeyError, IndexError, ValueError) as err:
            raise TraitError(
                f"c.DockerInvoker.container_name_template {template!r} cannot be filled in ({err}); "
                "the fields are {namespace}, {action}, {n} and {instance}."
            ) from None
        if not _NAME_RE.match(sample):
            raise TraitError(
                f"c.DockerInvoker.container_name_template {template!r} gives {sample!r}, which is "
                "not a valid Docker container name: it must start with a letter or digit and "
                "hold only letters, digits, '_', '.' and '-'."
            )
        return template

    @validate("memory_budget_mb")
    def _validate_budget(self, proposal):
        if proposal["value"] < 128:
            raise TraitError(
                f"c.DockerInvoker.memory_budget_mb = {proposal['value']} is below 128, the smallest "
                "action memory limit: no container could ever start. Use e.g. 4096."
            )
        return proposal["value"]

    @validate(
        "prewarm_count",
        "max_activations_per_container",
        "docker_slow_threads",
        "docker_quick_threads",
    )
    def _validate_counts(self, proposal):
        name, value = proposal["trait"].name, proposal["value"]
        smallest = 1 if name.startswith("docker_") else 0
        if value < smallest:
            raise TraitError(f"c.DockerInvoker.{name} = {value} must be at least {smallest}.")
        return value

    @validate("idle_timeout_s", "capacity_wait_s", "sentinel_wait_s", "start_timeout_s")
    def _validate_seconds(self, proposal):
        if proposal["value"] < 0:
            raise TraitError(
                f"c.DockerInvoker.{proposal['trait'].name} = {proposal['value']} is negative; give "
                "a number of seconds (0 or more)."
            )
        return proposal["value"]

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.instance = uuid.uuid4().hex[:8]
        self._slots: dict[str, ActionContainer] = {}
        self._reserved_mb = 0
        self._prewarm_starting = 0
        self._counter = itertools.count(1)
        self._action_locks: dict[str, asyncio.Lock] = {}
        self._image_locks: dict[str, asyncio.Lock] = {}
        self._tasks: set[asyncio.Task] = set()
        self._reaper: asyncio.Task | None = None
        self._capacity: asyncio.Condition | None = None
        self._calls: BlockingCalls | None = None
        self._client = None
        self._stream_client = None
        self._running = False
        self._last_prewarm_error = ""

    # ---- start / stop -------------------------------------------------------------------

    async def start(self) -> None:
        """Remove containers a crashed server left behind, then start prewarming and reaping."""
        self._capacity = asyncio.Condition()
        self._calls = BlockingCalls(
            self.docker_slow_threads,
            self.docker_quick_threads,
            self.memory_budget_mb // 128 + self.prewarm_count + 2,
        )
        self._client = engine.docker_client()
        await self._calls.slow(self._ensure_runtime_image)
        # Attached output streams stay silent for as long as a container idles: no read timeout.
        self._stream_client = await self._calls.quick(docker.from_env, timeout=None)
        orphans = await self._calls.quick(
            lambda: list(engine.containers_with_label(self._client, **self._scope_labels()))
        )
        if orphans:
            self.log.info("removing %d containers left by an earlier server", len(orphans))
            await asyncio.gather(*(self._calls.slow(engine.remove_container, c) for c in orphans))
        self._running = True
        self._refill_prewarm()
        self._reaper = asyncio.create_task(self._reap_forever(), name="faas-invoker-reaper")
        self.log.info(
            "invoker %s started: budget %d MB, %d prewarm, idle timeout %g s, network %s",
            self.instance,
            self.memory_budget_mb,
            self.prewarm_count,
            self.idle_timeout_s,
            self.network,
        )

    async def stop(self) -> None:
        """Remove every container of this invoker; safe to call twice."""
        if self._calls is None:
            return
        self._running = False
        tasks = [*self._tasks, *([self._reaper] if self._reaper else [])]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._reaper = None
        slots = list(self._slots.values())
        self._slots.clear()
        self._reserved_mb = 0
        await asyncio.gather(*(self._calls.slow(slot.remove) for slot in slots))
        # Containers whose start was cut short by the cancellation are found by label.
        if self._client is not None:
            stragglers = await self._calls.quick(self._our_containers, False)
            await asyncio.gather(
                *(self._calls.slow(engine.remove_container, c) for c in stragglers)
            )
        if self._stream_client is not None:
            self._stream_client.close()
            self._stream_client = None
        self._calls.shutdown()
        self._calls = None
        self.log.info("invoker %s stopped; removed %d containers", self.instance, len(slots))

    def _ensure_runtime_image(self) -> None:
        """Build our runtime image (base image + runtime, no extra packages) when it is missing."""
        from ...builders.docker import DockerBuilder

        if self.python_image != protocol.RUNTIME_IMAGE or engine.has_image(
            self._client, self.python_image
        ):
            return
        self.log.info("Building the runtime image %s for Python actions", self.python_image)
        DockerBuilder(parent=self).ensure_runtime_image()

    # ---- run ----------------------------------------------------------------------------

    async def run(self, job: ActivationJob) -> RunOutcome:
        """Run one activation: find or start a container, /init if cold, /run, collect logs.

        Never raises for a failing action or container: every failure becomes a
        RunOutcome with OpenWhisk's status code and message.
        """
        accepted_ms = _now_ms()
        if not self._running:
            return failed_outcome(accepted_ms, *internal("The function server is shutting down."))
        try:
            spec = self._spec(job)
        except JobRejected as err:
            return failed_outcome(accepted_ms, DEVELOPER_ERROR, {"error": str(err)})
        # A 503 from /init or /run means "this container is shutting down": OpenWhisk runs
        # the activation again on another container; so do we, once.
        for last_try in (False, True):
            try:
                slot, cold = await self._acquire(job, spec)
            except (JobRejected, PullFailed) as err:
                return failed_outcome(accepted_ms, DEVELOPER_ERROR, {"error": str(err)})
            except NoCapacity as err:
                return failed_outcome(accepted_ms, *internal(str(err)))
            except (docker.errors.DockerException, requests.exceptions.RequestException) as err:
                self.log.warning("starting a container for %s failed: %s", job.action_name, err)
                return failed_outcome(accepted_ms, *self._start_failure(spec, err))
            try:
                outcome = await self._activate(job, spec, slot, cold, accepted_ms, last_try)
            except Exception:
                self.log.exception("activation %s of %s failed", job.activation_id, job.action_name)
                await self._discard(slot)
                return failed_outcome(
                    accepted_ms,
                    *internal("The function server failed to run the activation; see its log."),
                )
            if outcome is not None:
                return outcome
            self.log.info(
                "container %s of %s answered 503 (shutting down): running %s on another",
                slot.name,
                job.action_name,
                job.activation_id,
            )
        raise AssertionError("unreachable: the last try always returns an outcome")

    async def _activate(
        self,
        job: ActivationJob,
        spec: _Spec,
        slot: ActionContainer,
        cold: bool,
        accepted_ms: int,
        last_try: bool = True,
    ) -> RunOutcome | None:
        """One try on ``slot``; None when the container said it is shutting down (503) and
        this is not the last try, so the caller reschedules."""
        init_value = self._init_value(job, spec) if cold else None
        ex: Exchange = await self._calls.activation(
            slot.exchange,
            init_value,
            self._run_body(job),
            spec.timeout_ms / 1000,
            self.sentinel_wait_s,
            spec.log_limit_bytes,
        )
        answer = ex.run if ex.run is not None else ex.init
        if not last_try and answer is not None and answer.status == 503:
            await self._discard(slot)
            return None
        peak = None
        logs = ex.logs
        if ex.timed_out_in or ex.gone_in:
            oom = bool(ex.gone_in) and await self._calls.slow(slot.died_of_oom)
            await self._discard(slot)
            logs = await self._calls.activation(
                slot.final_logs, FINAL_LOGS_WAIT_S, spec.log_limit_bytes
            )
            if ex.timed_out_in:
                status, result = (
                    DEVELOPER_ERROR,
                    {"error": timeout_message(spec.timeout_ms, ex.timed_out_in)},
                )
            else:
                status, result = died(ex.gone_in, oom)
        elif ex.run is None:
            await self._discard(slot)
            status, result = init_failed(ex.init)
        else:
            status, result = run_result(ex.run)
            peak = protocol.peak_memory(ex.run.headers)
            await self._release(slot)
        return RunOutcome(
            status_code=status,
            result=result,
            start_ms=ex.start_ms,
            end_ms=ex.end_ms,
            logs=logs,
            init_time_ms=ex.init_ms,
            wait_time_ms=max(0, ex.start_ms - accepted_ms),
            timed_out=bool(ex.timed_out_in),
            peak_memory_bytes=peak,
        )

    def _spec(self, job: ActivationJob) -> _Spec:
        kind = str(job.exec.get("kind") or "")
        code = job.exec.get("code") or None
        memory = int(job.limits.get("memory") or PREWARM_MEMORY_MB)
        if kind.startswith("python:"):
            if not code:
                raise JobRejected(f"The {kind} action {job.action_name} has no code to run.")
            image = self.python_image
        elif kind == "blackbox":
            image = job.exec.get("image") or ""
            if not image:
                raise JobRejected(
                    f"The blackbox action {job.action_name} names no image; update it with "
                    'exec {"kind": "blackbox", "image": "registry/name:tag"}.'
                )
        else:
            raise JobRejected(
                f"The kind {kind!r} of {job.action_name} cannot run on this function server; "
                "use python:3.11 (code) or blackbox (an image)."
            )
        ours = image == self.python_image
        return _Spec(
            image=image,
            code=code,
            memory_mb=memory,
            timeout_ms=int(job.limits.get("timeout") or 60000),
            log_limit_bytes=int(float(job.limits.get("logs", 10)) * 1024 * 1024),
            sentinelled=ours,
            refresh=not ours and wants_refresh(image),
            prewarmable=ours and bool(code) and memory == PREWARM_MEMORY_MB,
        )

    def _init_value(self, job: ActivationJob, spec: _Spec) -> dict:
        return protocol.init_value(
            job.action_name.rsplit("/", 1)[-1],
            job.exec.get("main"),
            spec.code,
            job.exec.get("binary"),
            job.init_env,
        )

    @staticmethod
    def _run_body(job: ActivationJob) -> dict:
        return protocol.run_body(
            job.params,
            namespace=job.namespace,
            action_name=job.action_name,
            action_version=job.action_version,
            activation_id=job.activation_id,
            deadline_ms=job.deadline_ms,
            api_key=job.api_key,
        )

    def _start_failure(self, spec: _Spec, err: Exception) -> tuple[int, dict]:
        reason = str(getattr(err, "explanation", None) or err).strip().splitlines()[0][:300]
        if spec.image == self.python_image:
            return internal(
                f"The runtime image {spec.image!r} could not be started ({reason}). Check "
                "c.DockerInvoker.python_image and that the image exists (`docker images`)."
            )
        return DEVELOPER_ERROR, {
            "error": f"Failed to start a container from image '{spec.image}': {reason}. "
            "The image must have a CMD that serves the OpenWhisk action protocol on port 8080."
        }

    # ---- container slots ----------------------------------------------------------------

    async def _acquire(self, job: ActivationJob, spec: _Spec) -> tuple[ActionContainer, bool]:
        """A container for ``job``, marked busy, and whether it still needs its /init."""
        slot = self._take_idle(job.action_key)
        if slot is not None:
            return slot, False
        lock = self._action_locks.setdefault(job.action_key, asyncio.Lock())
        async with lock:
            slot = self._take_idle(job.action_key)
            if slot is not None:
                return slot, False
            if spec.prewarmable:
                slot = self._take_prewarm(job.action_key)
                if slot is not None:
                    return slot, True
            labels = await self._ensure_image(spec.image, spec.refresh)
            await self._reserve(spec.memory_mb)
            try:
                slot = await self._calls.slow(
                    ActionContainer.start,
                    self._client,
                    self._stream_client.api,
                    image=spec.image,
                    name=self._name(job.action_name),
                    memory_mb=spec.memory_mb,
                    env=self._env(),
                    labels=self._labels(**{ACTION_LABEL: job.action_key}),
                    network=self.network,
                    volumes=self.site.container_volumes(),
                )
            except BaseException:
                self._reserved_mb -= spec.memory_mb
                await self._notify()
                raise
            slot.action_key = job.action_key
            slot.state = "busy"
            slot.sentinelled = spec.sentinelled or labels.get(engine.LABEL) == "1"
            self._slots[slot.id] = slot
            self.log.debug("cold start of %s in %s", job.action_key, slot.name)
            return slot, True

    def _take_idle(self, action_key: str) -> ActionContainer | None:
        best = None
        for slot in self._slots.values():
            if slot.state == "idle" and slot.action_key == action_key:
                if best is None or slot.last_used > best.last_used:
                    best = slot
        if best is not None:
            best.state = "busy"
        return best

    def _take_prewarm(self, action_key: str) -> ActionContainer | None:
        for slot in self._slots.values():
            if slot.state == "prewarm":
                slot.state = "busy"
                slot.action_key = action_key
                self._refill_prewarm()
                return slot
        return None

    async def _release(self, slot: ActionContainer) -> None:
        slot.activations += 1
        limit = self.max_activations_per_container
        if limit and slot.activations >= limit:
            self.log.debug("recycling %s after %d activations", slot.name, slot.activations)
            await self._discard(slot)
            return
        slot.state = "idle"
        slot.last_used = time.monotonic()
        await self._notify()

    async def _discard(self, slot: ActionContainer) -> None:
        """Forget ``slot`` and remove its container (idempotent)."""
        if self._forget(slot):
            await self._notify()
        await self._calls.slow(slot.remove)

    def _forget(self, slot: ActionContainer) -> bool:
        if self._slots.pop(slot.id, None) is None:
            return False
        self._reserved_mb -= slot.memory_mb
        slot.state = "removed"
        return True

    async def _notify(self) -> None:
        async with self._capacity:
            self._capacity.notify_all()

    async def _reserve(self, memory_mb: int) -> None:
        """Count ``memory_mb`` against the budget, evicting idle containers or waiting for room.

        Raises:
            NoCapacity: the action can never fit, or nothing was freed in time.
        """
        budget = self.memory_budget_mb
        if memory_mb > budget:
            raise NoCapacity(
                f"No capacity: the action needs {memory_mb} MB but c.DockerInvoker.memory_budget_mb "
                f"is {budget} MB. Lower the action's memory limit or raise the budget."
            )
        deadline = time.monotonic() + self.capacity_wait_s
        while True:
            evicted = []
            async with self._capacity:
                idle = sorted(
                    (s for s in self._slots.values() if s.state in ("idle", "prewarm")),
                    key=lambda s: (s.state == "prewarm", s.last_used),
                )
                free = budget - self._reserved_mb
                if free + sum(s.memory_mb for s in idle) >= memory_mb:
                    while self._reserved_mb + memory_mb > budget:
                        victim = idle.pop(0)
                        self._forget(victim)
                        evicted.append(victim)
                    self._reserved_mb += memory_mb
                else:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        raise NoCapacity(
                            f"No capacity: busy containers hold {self._reserved_mb} MB of the "
                            f"{budget} MB memory budget and none was released within "
                            f"{self.capacity_wait_s:g} s. Retry later, or raise "
                            "c.DockerInvoker.memory_budget_mb."
                        )
                    try:
                        await asyncio.wait_for(self._capacity.wait(), remaining)
                    except asyncio.TimeoutError:
                        pass
                    continue
            for victim in evicted:
                self.log.debug("evicting idle %s to stay within the memory budget", victim.name)
            await asyncio.gather(*(self._calls.slow(v.remove) for v in evicted))
            return

    async def _ensure_image(self, ref: str, refresh: bool) -> dict:
        lock = self._image_locks.setdefault(ref, asyncio.Lock())
        async with lock:
            return await self._calls.slow(ensure_image, self._client, ref, self.registry, refresh)

    # ---- prewarm ------------------------------------------------------------------------

    def _refill_prewarm(self) -> None:
        if not self._running:
            return
        have = sum(s.state == "prewarm" for s in self._slots.values()) + self._prewarm_starting
        for _ in range(self.prewarm_count - have):
            self._prewarm_starting += 1
            self._spawn(self._start_prewarm())

    async def _start_prewarm(self) -> None:
        """Start one prewarm container; a full budget evicts the least recently used idle one."""
        slot = None
        reserved = False
        try:
            await self._reserve(PREWARM_MEMORY_MB)
            reserved = True
            await self._ensure_image(self.python_image, False)
            slot = await self._calls.slow(
                ActionContainer.start,
                self._client,
                self._stream_client.api,
                image=self.python_image,
                name=self._name("/prewarm/python"),
                memory_mb=PREWARM_MEMORY_MB,
                env=self._env(),
                labels=self._labels(**{PREWARM_LABEL: "1"}),
                network=self.network,
                volumes=self.site.container_volumes(),
            )
            await self._calls.activation(
                slot.wait_listening, time.monotonic() + self.start_timeout_s
            )
        except Exception as err:
            if reserved:
                self._reserved_mb -= PREWARM_MEMORY_MB
            if slot is not None:
                await self._calls.slow(slot.remove)
            message = str(err)
            # Retried on every reaper tick: say it once, not every tick.
            log = self.log.debug if message == self._last_prewarm_error else self.log.warning
            log("could not start a prewarm container from %s: %s", self.python_image, message)
            self._last_prewarm_error = message
            return
        finally:
            self._prewarm_starting -= 1
        slot.sentinelled = True
        self._slots[slot.id] = slot
        self._last_prewarm_error = ""
        await self._notify()

    # ---- reaper -------------------------------------------------------------------------

    async def _reap_forever(self) -> None:
        interval = 30.0
        if self.idle_timeout_s:
            interval = min(30.0, max(0.05, self.idle_timeout_s / 4))
        while True:
            await asyncio.sleep(interval)
            try:
                await self._reap()
            except (docker.errors.DockerException, requests.exceptions.RequestException) as err:
                self.log.warning("checking the action containers failed: %s", err)

    async def _reap(self) -> None:
        """Remove idle containers past the idle timeout and containers that died while idle."""
        now = time.monotonic()
        running = {c.id for c in await self._calls.quick(self._our_containers, True)}
        doomed = []
        for slot in list(self._slots.values()):
            if slot.state not in ("idle", "prewarm"):
                continue
            expired = (
                slot.state == "idle"
                and self.idle_timeout_s
                and now - slot.last_used > self.idle_timeout_s
            )
            if expired or slot.id not in running:
                self._forget(slot)
                doomed.append(slot)
        if doomed:
            self.log.debug("reaping %d idle or dead containers", len(doomed))
            await self._notify()
            await asyncio.gather(*(self._calls.slow(slot.remove) for slot in doomed))
        self._refill_prewarm()

    # ---- helpers ------------------------------------------------------------------------

    def _our_containers(self, running_only: bool) -> list:
        # Sparse: a full listing inspects each container and fails on one removed meanwhile.
        filters = {"label": [engine.LABEL, f"{INSTANCE_LABEL}={self.instance}"]}
        if running_only:
            filters["status"] = "running"
        return self._client.containers.list(all=not running_only, sparse=True, filters=filters)

    def _spawn(self, coro) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _name(self, action_name: str) -> str:
        parts = action_name.strip("/").split("/")
        namespace, action = parts[0], "-".join(parts[1:]) or parts[0]
        return self.container_name_template.format(
            namespace=escape_name(namespace)[:60],
            action=escape_name(action)[:60],
            n=next(self._counter),
            instance=self.instance,
        )

    def _env(self) -> dict:
        """The container environment: the API host and the site's CA and proxy settings."""
        return {"__OW_API_HOST": self.api_host, **self.site.container_env()}

    def _scope_labels(self) -> dict:
        return {engine.ROLE_LABEL: "server", **self.extra_labels}

    def _labels(self, **extra: str) -> dict:
        return engine.labels(
            "server", **{INSTANCE_LABEL: self.instance, **self.extra_labels, **extra}
        )


def _env(name: str) -> str:
    return os.environ.get(name, "")


def _now_ms() -> int:
    return time.time_ns() // 1_000_000
