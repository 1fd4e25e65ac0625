"""The one way the pool runs blocking calls from the event loop.

docker-py and ``http.client`` block. Each kind of call gets its own thread
pool so that a slow ``docker run`` or image pull never delays a quick
``inspect``, and neither delays the ``/run`` round trips of warm activations
(house style, rule 15).
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")


class BlockingCalls:
    """Three thread pools behind three awaitable helpers.

    Args:
        slow_threads: Threads for calls that may take seconds: create/start,
            pull, kill and remove containers.
        quick_threads: Threads for calls that take milliseconds: inspect, list.
        activation_threads: Threads for talking to containers (readiness
            probes, ``/init``, ``/run``, waiting for log sentinels); one per
            container that can be busy at the same time.
    """

    def __init__(self, slow_threads: int, quick_threads: int, activation_threads: int):
        self._slow = ThreadPoolExecutor(slow_threads, thread_name_prefix="faas-docker-slow")
        self._quick = ThreadPoolExecutor(quick_threads, thread_name_prefix="faas-docker-quick")
        self._activation = ThreadPoolExecutor(
            activation_threads, thread_name_prefix="faas-activation"
        )

    async def slow(self, fn: Callable[..., T], *args, **kwargs) -> T:
        """Run a slow docker call (run, pull, remove) in its pool and await its result."""
        return await self._submit(self._slow, fn, args, kwargs)

    async def quick(self, fn: Callable[..., T], *args, **kwargs) -> T:
        """Run a quick docker call (inspect, list) in its pool and await its result."""
        return await self._submit(self._quick, fn, args, kwargs)

    async def activation(self, fn: Callable[..., T], *args, **kwargs) -> T:
        """Run a call that talks to a container over HTTP and await its result."""
        return await self._submit(self._activation, fn, args, kwargs)

    def shutdown(self) -> None:
        """Stop accepting work; running calls finish on their own. Safe to call twice."""
        for pool in (self._slow, self._quick, self._activation):
            pool.shutdown(wait=False, cancel_futures=True)

    @staticmethod
    async def _submit(pool: ThreadPoolExecutor, fn, args, kwargs):
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(pool, functools.partial(fn, *args, **kwargs))
