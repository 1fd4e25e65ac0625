"""Per-namespace rate limits: OpenWhisk's invocations and trigger fires per minute."""

from __future__ import annotations

import time
from collections import defaultdict, deque

from .errors import WhiskError


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
