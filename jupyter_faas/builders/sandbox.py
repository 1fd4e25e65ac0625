"""One local test run, the same for every builder: ``/init`` then ``/run`` in a sandbox.

A sandbox is a warm test container (``DockerBuilder``) or a runtime process
(``ProcessBuilder``) that accepts a re-init, so a code-only edit is one
``/init`` and one ``/run``. What the run gave, and how a timeout, an
out-of-memory kill or a crash read, is decided here once, in the same words
for both.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from typing import Protocol

from ..actionclient import ActionClient, ActionResponse, ContainerGone
from ..bundle import Bundle
from ..runtime import protocol


@dataclass
class ContainerRun:
    """One invocation of a function in a local test container (or runtime process).

    ``status`` is "success", "application error" (the function returned
    ``{"error": …}``), "error" (it raised, or returned something that is not
    JSON), "timeout" or "out of memory".
    """

    status: str
    result: object
    logs: list[str] = field(default_factory=list)
    seconds: float = 0.0
    peak_memory_bytes: int | None = None
    container_reused: bool = False

    @property
    def ok(self) -> bool:
        return self.status == "success"


class Sandbox(Protocol):
    """What a builder's test sandbox offers the run below."""

    action: ActionClient

    def mark(self) -> None:
        """Note the start of a run: ``logs`` returns what was printed after it."""

    def logs(self, wait: bool, token: str | None = None) -> list[str]:
        """Lines printed since ``mark``, without the end-of-activation markers; with
        ``wait``, first wait (briefly) for the markers of the run that just ended (those
        carrying ``token``, when given: output imitating a marker ends nothing)."""

    def exit_state(self) -> tuple[bool, object]:
        """After the sandbox stopped answering: (killed for memory, exit code)."""


def run_test(
    sandbox: Sandbox,
    bundle: Bundle,
    args: dict,
    reused: bool,
    discard,
    max_result_bytes: int = protocol.MAX_RESULT_BYTES,
) -> ContainerRun:
    """``/init`` ``bundle``'s code and ``/run`` it on ``args`` in ``sandbox``.

    Args:
        max_result_bytes: A larger result is an application error, as on the function
            server (c.FaaSWorkspace.max_result_bytes; 0: no limit).
        discard: Called (before the result is returned) when the sandbox must not be
            reused: its init failed, it timed out or it died.
    """
    timeout = bundle.metadata.timeout_s
    memory = bundle.metadata.memory_mb
    sandbox.mark()
    start = time.perf_counter()
    token = protocol.new_log_token()
    try:
        init = sandbox.action.init(bundle.init_value(), timeout=timeout, token=token)
        if protocol.header(init.headers, protocol.LOG_TOKEN_HEADER) is None:
            token = None  # a runtime without log tokens prints the plain marker
        if init.status != 200:
            logs = sandbox.logs(wait=True, token=token)
            discard()
            return ContainerRun("error", init.body or init.text, logs, time.perf_counter() - start)
        resp = sandbox.action.run(
            protocol.run_body(
                args,
                namespace="local",
                action_name=f"/local/{bundle.name}",
                action_version="0.0.0",
                activation_id=uuid.uuid4().hex,
                deadline_ms=(time.time() + timeout) * 1000,
            ),
            timeout=timeout,
            token=token,
        )
    except TimeoutError:
        seconds = time.perf_counter() - start
        logs = sandbox.logs(wait=False, token=token)
        discard()
        return ContainerRun("timeout", {"error": timeout_message(timeout)}, logs, seconds)
    except ContainerGone:
        seconds = time.perf_counter() - start
        logs = sandbox.logs(wait=False, token=token)
        oom, code = sandbox.exit_state()
        discard()
        if oom:
            return ContainerRun("out of memory", {"error": oom_message(memory)}, logs, seconds)
        return ContainerRun(
            "error",
            {"error": f"The function's sandbox exited unexpectedly (exit code {code})."},
            logs,
            seconds,
        )
    seconds = time.perf_counter() - start
    return _answer(resp, sandbox.logs(wait=True, token=token), seconds, reused, max_result_bytes)


def timeout_message(timeout_s: float) -> str:
    return (
        f"The function ran longer than its timeout of {timeout_s:g} s; its container was "
        "stopped. Raise --timeout or make the function faster."
    )


def oom_message(memory_mb: int) -> str:
    return (
        f"The function exhausted its memory limit of {memory_mb} MB and was killed. Raise "
        "--memory (up to 512) or process less data at a time."
    )


def _answer(
    resp: ActionResponse, logs: list[str], seconds: float, reused: bool, limit: int
) -> ContainerRun:
    outcome, result = protocol.classify(resp.status, resp.body, len(resp.text.encode()), limit)
    status = {protocol.SUCCESS: "success", protocol.APPLICATION_ERROR: "application error"}.get(
        outcome, "error"
    )
    if result is None:
        result = resp.body if resp.body is not None else {"error": resp.text}
    peak = protocol.peak_memory(resp.headers)
    return ContainerRun(status, result, logs, seconds, peak, reused)
