"""What both invokers share: a pool of warm sandboxes ("slots") within a memory budget.

A slot is a container (:class:`~.containers.ActionContainer`) or a runtime process
(:class:`~.process.ProcessSlot`) serving one action version, one activation at a
time. :class:`SlotPool` keeps the slot table and the budget, reuses idle slots,
recycles, evicts and reaps them; its subclasses start and remove the sandboxes.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from urllib.parse import unquote

from traitlets import Float, Integer, TraitError, validate

from ...actionclient import ActionResponse, ContainerGone
from ...runtime import protocol
from ..entities import now_ms
from .executor import BlockingCalls
from .logs import RUNTIME_STARTED
from .outcomes import died, failed_outcome, internal, timeout_message
from .types import DEVELOPER_ERROR, ActivationJob, FaaSInvoker, RunOutcome

#: Memory of an action that states none (OpenWhisk's default), in MB.
DEFAULT_MEMORY_MB = 256
#: How long to wait for the output of a removed slot to end.
FINAL_LOGS_WAIT_S = 1.0

_NAME_SAFE = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-")


class JobRejected(Exception):
    """The job cannot run here at all (unsupported kind, missing image); a developer error."""


class NoCapacity(Exception):
    """No memory could be found within the capacity wait; a whisk internal error."""


def escape_name(value: str) -> str:
    """Make ``value`` safe in a Docker container name: others become ``_xx`` (hex of each byte)."""
    out = []
    for char in value:
        if char in _NAME_SAFE:
            out.append(char)
        else:
            out.extend(f"_{byte:02x}" for byte in char.encode())
    return "".join(out)


def remaining(deadline: float) -> float:
    return max(0.001, deadline - time.monotonic())


@dataclass
class Exchange:
    """What happened between the invoker and a slot during one activation."""

    start_ms: int = 0
    end_ms: int = 0
    init_ms: int | None = None
    init: ActionResponse | None = None
    run: ActionResponse | None = None
    timed_out_in: str | None = None
    gone_in: str | None = None
    logs: list[str] = field(default_factory=list)


@dataclass
class SlotSpec:
    """What a job needs from the pool, derived once from its exec and limits."""

    code: str | None
    memory_mb: int
    timeout_ms: int
    log_limit_bytes: int


class Slot:
    """One sandbox serving one action, and its bookkeeping in the pool.

    Subclasses set ``logs`` (a :class:`~.logs.LogCollector`) and ``action`` (what
    answers ``init``/``run``), and may wait for readiness in :meth:`ready`.

    Attributes:
        action_key: The action it serves; None while it is a prewarm container.
        state: ``prewarm``, ``idle``, ``busy`` or ``removed``.
        activations: How many activations it has run.
        last_used: ``time.monotonic()`` of its last release.
    """

    def __init__(self, id: str, name: str, memory_mb: int, action_key: str | None, state: str):
        self.id = id
        self.name = name
        self.memory_mb = memory_mb
        self.action_key = action_key
        self.state = state
        self.activations = 0
        self.last_used = time.monotonic()
        #: Its action was deleted or replaced: removed when its run ends, never reused.
        self.retired = False
        #: Its runtime prints log tokens after its markers (known from its /init answer).
        self.log_tokens = False

    @property
    def announces_start(self) -> bool:
        """Whether it runs our runtime, which prints ``RUNTIME_STARTED`` once it listens."""
        return False

    def ready(self, deadline: float) -> None:
        """Block until the sandbox listens (before a cold /init)."""

    def sentinel_wait(self, sentinel_wait_s: float) -> float:
        """How long to wait for the log sentinels after an answer."""
        return sentinel_wait_s

    def exchange(
        self,
        init_value: dict | None,
        run_body: dict,
        timeout_s: float,
        sentinel_wait_s: float,
        log_limit_bytes: int,
    ) -> Exchange:
        """``/init`` (when ``init_value`` is given) then ``/run``, both within ``timeout_s``.

        Logs are collected here only when the slot answered; after a timeout or a
        death the invoker collects them with ``final_logs``. Each activation gets a fresh
        log token (when the runtime supports them), so output imitating the end-of-activation
        marker cannot end its logs early nor shift the next activation's.
        """
        result = Exchange()
        clock = time.monotonic()
        deadline = clock + timeout_s
        result.start_ms = now_ms()
        phase = "init"
        token = protocol.new_log_token()
        try:
            if init_value is not None:
                self.ready(deadline)
                # The activation's logs start with its /init (import-time output included).
                self.logs.discard(RUNTIME_STARTED if self.announces_start else None)
                self.logs.token = token
                result.init = self.action.init(init_value, remaining(deadline), token=token)
                result.init_ms = int((time.monotonic() - clock) * 1000)
                self.log_tokens = (
                    protocol.header(result.init.headers, protocol.LOG_TOKEN_HEADER) is not None
                )
            token = token if self.log_tokens else None
            self.logs.token = token
            if result.init is None or result.init.status == 200:
                phase = "run"
                result.run = self.action.run(run_body, remaining(deadline), token=token)
        except TimeoutError:
            result.timed_out_in = phase
        except ContainerGone:
            result.gone_in = phase
        result.end_ms = now_ms()
        if result.timed_out_in is None and result.gone_in is None:
            result.logs = self.logs.take(self.sentinel_wait(sentinel_wait_s), log_limit_bytes)
        return result


def activations_limit(sandbox: str) -> Integer:
    """The recycling limit trait; each invoker keeps its own config name for it."""
    return Integer(
        0,
        help=f"""Remove a {sandbox} after it has run this many activations, so long-lived
        processes cannot accumulate state or leaked memory. 0 reuses {sandbox}s without
        limit. Example: 1000.""",
    ).tag(config=True)


class SlotPool(FaaSInvoker):
    """Slot table, memory budget, idle reuse, recycling and reaping for an invoker.

    Subclasses set ``sandbox``/``sandboxes`` (nouns for messages), ``limit_trait`` (the
    name of their :func:`activations_limit` trait) and implement ``start``,
    ``stop``, ``run``, :meth:`_new_slot` and :meth:`_dead_check`.
    """

    _abstract = True  # a shared partial implementation: its subclasses are checked
    sandbox, sandboxes = "sandbox", "sandboxes"
    limit_trait = ""
    #: Seconds traits that must be more than 0.
    positive_seconds: tuple[str, ...] = ()
    #: Count traits that must be at least 1 (others at least 0).
    nonzero_counts: tuple[str, ...] = ()
    #: Errors of a reaper round said as a warning (others are logged with their trace).
    reap_errors: tuple[type[BaseException], ...] = ()

    idle_timeout_s = Float(
        600.0,
        help="""Seconds a warm container (process) may stay idle before it is removed. 0
        keeps idle ones until evicted by the memory budget or the server stops.
        Example: 600.""",
    ).tag(config=True)

    memory_budget_mb = Integer(
        4096,
        help="""Total memory in MB of all action containers (busy, warm, prewarm) or runtime
        processes, counted by each action's memory limit. A new one that would exceed it
        first evicts idle ones, least recently used first; if busy ones hold the whole
        budget, the activation waits up to capacity_wait_s for one to be released, then
        fails with a whisk internal error "No capacity". At least 128. Example: 8192.""",
    ).tag(config=True)

    capacity_wait_s = Float(
        10.0,
        help="""Seconds an activation waits for memory to become free when the memory budget
        is held by busy containers (processes). 0 fails at once. Example: 10.""",
    ).tag(config=True)

    sentinel_wait_s = Float(
        2.0,
        help="""Upper bound in seconds on waiting, after an activation, for the log sentinel
        lines of runtimes that print them (ours, and images built by jupyter-faas; they mark
        where the activation's output ends). Other images are not waited for. Example: 2.""",
    ).tag(config=True)

    start_timeout_s = Float(
        30.0,
        help="""Seconds a prewarm container may take to listen on port 8080 before it is
        dropped, or a runtime process before its activation fails (must be more than 0 for
        ProcessInvoker). Cold starts of containers are bounded by the action's own time
        limit; process starts are not counted in it. Example: 30.""",
    ).tag(config=True)

    @validate("memory_budget_mb")
    def _validate_budget(self, proposal):
        if proposal["value"] < 128:
            raise TraitError(
                f"c.{type(self).__name__}.memory_budget_mb = {proposal['value']} is below 128, "
                f"the smallest action memory limit: no {self.sandbox} could ever start. "
                "Use e.g. 4096."
            )
        return proposal["value"]

    @validate("idle_timeout_s", "capacity_wait_s", "sentinel_wait_s", "start_timeout_s")
    def _validate_seconds(self, proposal):
        name, value = proposal["trait"].name, proposal["value"]
        positive = name in self.positive_seconds
        if value < 0 or (positive and value == 0):
            raise TraitError(
                f"c.{type(self).__name__}.{name} = {value} "
                f"{'is negative' if value < 0 else 'cannot work'}; give a number of seconds "
                f"({'more than 0' if positive else '0 or more'}), e.g. 30."
            )
        return value

    def _check_count(self, proposal):
        """Validator of count traits; subclasses bind it with ``validate(...)``."""
        name, value = proposal["trait"].name, proposal["value"]
        smallest = 1 if name in self.nonzero_counts else 0
        if value < smallest:
            hint = " (0: no limit)" if name == self.limit_trait else ""
            raise TraitError(
                f"c.{type(self).__name__}.{name} = {value} must be at least {smallest}{hint}."
            )
        return value

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self._slots: dict[str, Slot] = {}
        self._reserved_mb = 0
        self._counter = itertools.count(1)
        self._action_locks: dict[str, asyncio.Lock] = {}
        self._reaper: asyncio.Task | None = None
        self._capacity: asyncio.Condition | None = None
        self._calls: BlockingCalls | None = None
        self._running = False

    # ---- hooks --------------------------------------------------------------------------

    async def _new_slot(self, job: ActivationJob, spec: SlotSpec) -> tuple[Slot, bool]:
        """A new busy slot for ``job`` (not yet in the table), and whether it needs /init."""
        raise NotImplementedError

    async def _dead_check(self) -> Callable[[Slot], bool]:
        """A test telling whether an idle slot's sandbox died (checked once per reap)."""
        raise NotImplementedError

    def _expires(self, slot: Slot) -> bool:
        """Whether ``slot`` is removed after c.<Invoker>.idle_timeout_s unused."""
        return slot.state == "idle"

    def _after_reap(self) -> None:
        """Called after every reap round."""

    # ---- jobs ---------------------------------------------------------------------------

    def _check_kind(self, job: ActivationJob) -> tuple[str, str | None]:
        """The job's kind and code; only Python code and blackbox kinds run here.

        Raises:
            JobRejected: Python without code, or another kind.
        """
        kind = str(job.exec.get("kind") or "")
        code = job.exec.get("code") or None
        if kind.startswith("python:"):
            if not code:
                raise JobRejected(f"The {kind} action {job.action_name} has no code to run.")
        elif kind != "blackbox":
            raise JobRejected(
                f"The kind {kind!r} of {job.action_name} cannot run on this function server; "
                "use python:3.11 (code) or blackbox (an image)."
            )
        return kind, code

    @staticmethod
    def _limits(job: ActivationJob) -> dict:
        """The job's memory, time and log limits as :class:`SlotSpec` fields."""
        return {
            "memory_mb": int(job.limits.get("memory") or DEFAULT_MEMORY_MB),
            "timeout_ms": int(job.limits.get("timeout") or 60000),
            "log_limit_bytes": int(float(job.limits.get("logs", 10)) * 1024 * 1024),
        }

    def _init_value(self, job: ActivationJob, spec: SlotSpec) -> dict:
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

    def _name_fields(self, action_name: str) -> dict:
        """Escaped namespace and action, and the next counter value, for a slot's name."""
        parts = action_name.strip("/").split("/")
        namespace, action = parts[0], "-".join(parts[1:]) or parts[0]
        return {
            "namespace": escape_name(namespace)[:60],
            "action": escape_name(action)[:60],
            "n": next(self._counter),
        }

    # ---- activations --------------------------------------------------------------------

    async def _exchange(self, job: ActivationJob, spec: SlotSpec, slot: Slot, cold: bool):
        """Run the job's /init (when cold) and /run on ``slot`` on an activation thread."""
        return await self._calls.activation(
            slot.exchange,
            self._init_value(job, spec) if cold else None,
            self._run_body(job),
            spec.timeout_ms / 1000,
            self.sentinel_wait_s,
            spec.log_limit_bytes,
        )

    @staticmethod
    def _cut_short(ex: Exchange, spec: SlotSpec, oom: bool) -> tuple[int, dict]:
        """Status and result of an exchange that timed out or lost its sandbox."""
        if ex.timed_out_in:
            return DEVELOPER_ERROR, {"error": timeout_message(spec.timeout_ms, ex.timed_out_in)}
        return died(ex.gone_in, oom)

    @staticmethod
    def _outcome(ex, status, result, logs, peak, accepted_ms) -> RunOutcome:
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

    async def _activate_or_fail(self, job: ActivationJob, slot: Slot, accepted_ms: int, attempt):
        """Await ``attempt``; an unexpected error discards ``slot`` and fails the activation."""
        try:
            return await attempt
        except Exception:
            self.log.exception("activation %s of %s failed", job.activation_id, job.action_name)
            await self._discard(slot)
            return failed_outcome(
                accepted_ms,
                *internal("The function server failed to run the activation; see its log."),
            )

    # ---- slots --------------------------------------------------------------------------

    async def _acquire(self, job: ActivationJob, spec: SlotSpec) -> tuple[Slot, bool]:
        """A slot for ``job``, marked busy, and whether it still needs its /init."""
        slot = self._take_idle(job.action_key)
        if slot is not None:
            return slot, False
        lock = self._action_locks.setdefault(job.action_key, asyncio.Lock())
        async with lock:
            slot = self._take_idle(job.action_key)
            if slot is not None:
                return slot, False
            slot, cold = await self._new_slot(job, spec)
            if slot.id not in self._slots:
                self._slots[slot.id] = slot
                self.log.debug("cold start of %s in %s", job.action_key, slot.name)
            return slot, cold

    async def _start_reserved(self, memory_mb: int, start: Callable[[], Awaitable]):
        """Reserve ``memory_mb`` and ``await start()``; a failed start gives the memory back."""
        await self._reserve(memory_mb)
        try:
            return await start()
        except BaseException:
            self._reserved_mb -= memory_mb
            await self._notify()
            raise

    def _take_idle(self, action_key: str) -> Slot | None:
        best = None
        for slot in self._slots.values():
            if slot.state == "idle" and slot.action_key == action_key:
                if best is None or slot.last_used > best.last_used:
                    best = slot
        if best is not None:
            best.state = "busy"
        return best

    async def _release(self, slot: Slot) -> None:
        slot.activations += 1
        limit = getattr(self, self.limit_trait)
        if slot.retired:
            self.log.debug("removing %s: its action was deleted or replaced", slot.name)
            await self._discard(slot)
            return
        if limit and slot.activations >= limit:
            self.log.debug("recycling %s after %d activations", slot.name, slot.activations)
            await self._discard(slot)
            return
        slot.state = "idle"
        slot.last_used = time.monotonic()
        await self._notify()

    def pool_sizes(self) -> dict[tuple[str, str], int]:
        """Slots by ``(invoking namespace, state)``: the caller is the action key's last part."""
        sizes: Counter = Counter()
        for slot in self._slots.values():
            key = slot.action_key
            sizes[unquote(key.rpartition("@")[2]) if key else "", slot.state] += 1
        return dict(sizes)

    async def retire(self, action: str) -> int:
        """Remove the idle slots of ``action`` (``ns/name`` or ``ns/name@version``) now and its
        busy ones when their run ends: a deleted action's containers free memory at once."""

        def serves(key: str | None) -> bool:
            return key is not None and (key == action or key.startswith(action + "@"))

        doomed = []
        for slot in list(self._slots.values()):
            if not serves(slot.action_key):
                continue
            if slot.state == "idle":
                self._forget(slot)  # at once, so no run takes it while it is being removed
                doomed.append(slot)
            else:
                slot.retired = True
        for key in [k for k, lock in self._action_locks.items() if serves(k) and not lock.locked()]:
            del self._action_locks[key]
        if doomed:
            self.log.debug("removing %d idle %s of /%s", len(doomed), self.sandboxes, action)
            await self._notify()
            if self._calls is None:
                await asyncio.gather(*(asyncio.to_thread(s.remove) for s in doomed))
            else:
                await asyncio.gather(*(self._calls.slow(s.remove) for s in doomed))
        return len(doomed)

    async def _discard(self, slot: Slot) -> None:
        """Forget ``slot`` and remove its sandbox (idempotent, also after ``stop``)."""
        if self._forget(slot):
            await self._notify()
        if self._calls is None:
            await asyncio.to_thread(slot.remove)
        else:
            await self._calls.slow(slot.remove)

    def _forget(self, slot: Slot) -> bool:
        if self._slots.pop(slot.id, None) is None:
            return False
        self._reserved_mb -= slot.memory_mb
        slot.state = "removed"
        return True

    async def _notify(self) -> None:
        async with self._capacity:
            self._capacity.notify_all()

    async def _reserve(self, memory_mb: int) -> None:
        """Count ``memory_mb`` against the budget, evicting idle slots or waiting for room.

        Raises:
            NoCapacity: the action can never fit, or nothing was freed in time.
        """
        budget = self.memory_budget_mb
        setting = f"c.{type(self).__name__}.memory_budget_mb"
        if memory_mb > budget:
            raise NoCapacity(
                f"No capacity: the action needs {memory_mb} MB but {setting} is {budget} MB. "
                "Lower the action's memory limit or raise the budget."
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
                    left = deadline - time.monotonic()
                    if left <= 0:
                        raise NoCapacity(
                            f"No capacity: busy {self.sandboxes} hold {self._reserved_mb} MB of "
                            f"the {budget} MB memory budget and none was released within "
                            f"{self.capacity_wait_s:g} s. Retry later, or raise {setting}."
                        )
                    try:
                        await asyncio.wait_for(self._capacity.wait(), left)
                    except asyncio.TimeoutError:
                        pass
                    continue
            for victim in evicted:
                self.log.debug("evicting idle %s to stay within the memory budget", victim.name)
            await asyncio.gather(*(self._calls.slow(v.remove) for v in evicted))
            return

    async def _remove_all(self, tasks=()) -> list[Slot]:
        """Cancel ``tasks`` and the reaper, then remove every slot; returns the removed ones."""
        self._running = False
        tasks = [*tasks, *([self._reaper] if self._reaper else [])]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._reaper = None
        slots = list(self._slots.values())
        self._slots.clear()
        self._reserved_mb = 0
        await asyncio.gather(*(self._calls.slow(slot.remove) for slot in slots))
        return slots

    # ---- reaper -------------------------------------------------------------------------

    def _start_reaper(self, name: str) -> None:
        self._reaper = asyncio.create_task(self._reap_forever(), name=name)

    async def _reap_forever(self) -> None:
        interval = 30.0
        if self.idle_timeout_s:
            interval = min(30.0, max(0.05, self.idle_timeout_s / 4))
        while True:
            await asyncio.sleep(interval)
            try:
                await self._reap()
            except self.reap_errors as err:
                self.log.warning("checking the %s failed: %s", self.sandboxes, err)
            except Exception:  # the reaper must outlive one bad round
                self.log.exception("checking the %s failed", self.sandboxes)

    async def _reap(self) -> None:
        """Remove idle slots past the idle timeout and slots whose sandbox died while idle."""
        now = time.monotonic()
        dead = await self._dead_check()
        doomed = []
        for slot in list(self._slots.values()):
            if slot.state not in ("idle", "prewarm"):
                continue
            expired = (
                self._expires(slot)
                and self.idle_timeout_s
                and now - slot.last_used > self.idle_timeout_s
            )
            if expired or dead(slot):
                self._forget(slot)
                doomed.append(slot)
        if doomed:
            self.log.debug("reaping %d idle or dead %s", len(doomed), self.sandboxes)
            await self._notify()
            await asyncio.gather(*(self._calls.slow(slot.remove) for slot in doomed))
        self._after_reap()
