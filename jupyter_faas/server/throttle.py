"""Per-namespace rate limits: OpenWhisk's invocations and trigger fires per minute, and the
activator that applies them (and the sequence length limit) on every path of invocation."""

from __future__ import annotations

import contextvars
import time
from collections import defaultdict, deque
from typing import Any

from .activator import Activator, Target
from .entities import Identity, now_ms
from .errors import BadRequest, WhiskError
from .pool.types import APPLICATION_ERROR, RunOutcome


class TooManyRequests(WhiskError):
    """A namespace went over its per-minute limit."""

    status = 429
    reason = "throttled"


class MinuteThrottle:
    """Counts events per namespace over the last 60 s and refuses those over ``allowed``.

    ``allowed`` 0 means no limit (then nothing is recorded).
    """

    def __init__(self, allowed: int, what: str = "requests"):
        self.allowed = allowed
        self.what = what
        self._events: dict[str, deque] = defaultdict(deque)

    def admit(self, namespace: str) -> None:
        """Record one event of ``namespace``, or raise TooManyRequests with OpenWhisk's message."""
        if not self.allowed:
            return
        now = time.monotonic()
        events = self._events[namespace]
        while events and now - events[0] >= 60:
            events.popleft()
        if len(events) >= self.allowed:
            raise TooManyRequests(
                f"Too many {self.what} in the last minute (count: {len(events)}, "
                f"allowed: {self.allowed}).",
                hint="Wait a little and retry, or ask the server's operator to raise "
                "c.FunctionServer.invocations_per_minute / fires_per_minute.",
            )
        events.append(now)


#: The atomic actions run so far by the sequence invocation of the current task
#: (a one-item list so nested calls share it); None outside sequences.
_SEQUENCE_COUNT: contextvars.ContextVar[list[int] | None] = contextvars.ContextVar(
    "faas_sequence_count", default=None
)
#: Set while a trigger fire invokes its rules' actions.
_IN_FIRE: contextvars.ContextVar[bool] = contextvars.ContextVar("faas_in_fire", default=False)
#: The in-flight slot an invocation holds, seen by the activation task it starts (tasks copy
#: the context they are created in); None for activations no invocation counted (recovery).
_SLOT: contextvars.ContextVar[_InFlight | None] = contextvars.ContextVar("faas_slot", default=None)


class _InFlight:
    """One counted activation of ``namespace``; released exactly once."""

    def __init__(self, counts: dict[str, int], namespace: str):
        self.counts, self.namespace = counts, namespace
        self.started = self.released = False
        counts[namespace] += 1

    def release(self) -> None:
        if not self.released:
            self.released = True
            self.counts[self.namespace] -= 1


class RuleThrottled(BadRequest):
    """A rule's action was not invoked: its namespace is over its per-minute limit."""

    status = 429
    reason = "throttled"


class LimitedActivator(Activator):
    """The Activator with the limits every path of invocation must respect.

    * A sequence invocation runs at most ``sequence_limit`` atomic actions in all,
      nested sequences included (OpenWhisk's ``actionSequenceLimit``); the component
      that would go over ends the sequence with OpenWhisk's "Too many actions in the
      sequence." application error.
    * Every sequence component, and every action a trigger's rules invoke, counts
      against ``invocations`` (the per-minute limit), like a direct invocation.
    * A namespace has at most ``concurrent`` invocations in flight (accepted and not yet
      finished, blocking or not; OpenWhisk's ``concurrentInvocations``); one more gets 429
      with OpenWhisk's message. 0 means no limit.
    """

    def __init__(
        self,
        *args,
        invocations: MinuteThrottle,
        sequence_limit: int,
        concurrent: int = 0,
        **kwargs,
    ):
        super().__init__(*args, **kwargs)
        self.invocations = invocations
        self.sequence_limit = sequence_limit
        self.concurrent = concurrent
        self.in_flight: dict[str, int] = defaultdict(int)

    async def execute(
        self,
        identity: Identity,
        target: Target,
        params: Any,
        activation_id: str,
        cause: str | None,
        depth: int = 0,
    ) -> dict:
        if depth == 0:
            if target.kind != "sequence":
                return await super().execute(identity, target, params, activation_id, cause)
            token = _SEQUENCE_COUNT.set([0])
            try:
                return await super().execute(identity, target, params, activation_id, cause)
            finally:
                _SEQUENCE_COUNT.reset(token)
        count = _SEQUENCE_COUNT.get()
        error = None
        if count is not None and target.kind != "sequence":
            count[0] += 1
            if self.sequence_limit and count[0] > self.sequence_limit:
                error = "Too many actions in the sequence."
        if error is None:
            try:
                self.invocations.admit(identity.namespace)
            except TooManyRequests as err:
                error = str(err)
        if error is not None:
            now = now_ms()
            outcome = RunOutcome(APPLICATION_ERROR, {"error": error}, now, now)
            return self._record(identity, target, activation_id, outcome, cause)
        return await super().execute(identity, target, params, activation_id, cause, depth)

    async def fire(self, owner: Identity, trigger: dict, payload: dict, headers: dict):
        token = _IN_FIRE.set(True)
        try:
            return await super().fire(owner, trigger, payload, headers)
        finally:
            _IN_FIRE.reset(token)

    async def invoke(self, identity: Identity, target: Target, payload: dict, **kwargs):
        if _IN_FIRE.get():
            try:
                self.invocations.admit(identity.namespace)
                self._admit_concurrent(identity.namespace)
            except TooManyRequests as err:
                raise RuleThrottled(str(err)) from None
        else:
            self._admit_concurrent(identity.namespace)
        if not self.concurrent:
            return await super().invoke(identity, target, payload, **kwargs)
        slot = _InFlight(self.in_flight, identity.namespace)
        token = _SLOT.set(slot)
        try:
            return await super().invoke(identity, target, payload, **kwargs)
        except BaseException:
            if not slot.started:  # no activation task took the slot over
                slot.release()
            raise
        finally:
            _SLOT.reset(token)

    async def _activate(self, identity, target, params, activation_id, cause):
        slot = _SLOT.get()
        if slot is None:
            return await super()._activate(identity, target, params, activation_id, cause)
        slot.started = True
        try:
            return await super()._activate(identity, target, params, activation_id, cause)
        finally:
            slot.release()

    def _admit_concurrent(self, namespace: str) -> None:
        """Raise TooManyRequests when ``namespace`` has ``concurrent`` invocations in flight."""
        count = self.in_flight[namespace]
        if self.concurrent and count >= self.concurrent:
            raise TooManyRequests(
                f"Too many concurrent requests in flight (count: {count}, "
                f"allowed: {self.concurrent}).",
                hint="Wait for running activations to finish and retry, or ask the server's "
                "operator to raise c.FunctionServer.concurrent_invocations.",
            )
