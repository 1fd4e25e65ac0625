"""Turn what a container answered into an OpenWhisk status code and result.

The rules and messages are OpenWhisk's (``ActivationResponse`` and
``Messages`` in its invoker; protocols.md A.6, B.2, B.3), so clients that
match on them keep working.
"""

from __future__ import annotations

import time

from ...actionclient import ActionResponse
from .types import APPLICATION_ERROR, DEVELOPER_ERROR, SUCCESS, WHISK_ERROR, RunOutcome

#: Results larger than this become an application error, as in OpenWhisk.
MAX_RESULT_BYTES = 1024 * 1024

OOM = "The action exhausted its memory and was aborted."
DIED_IN_RUN = "The action did not produce a valid response and exited unexpectedly."
DIED_IN_INIT = "The action did not initialize and exited unexpectedly."


def timeout_message(timeout_ms: int, phase: str) -> str:
    """OpenWhisk's timeout text; ``phase`` is ``init`` or ``run``."""
    suffix = " during initialization" if phase == "init" else ""
    return f"The action exceeded its time limits of {timeout_ms} milliseconds{suffix}."


def died(phase: str, oom: bool) -> tuple[int, dict]:
    """The outcome of a container that stopped answering in ``phase``."""
    if oom:
        return DEVELOPER_ERROR, {"error": OOM}
    return DEVELOPER_ERROR, {"error": DIED_IN_INIT if phase == "init" else DIED_IN_RUN}


def init_failed(resp: ActionResponse) -> tuple[int, dict]:
    """The outcome of an ``/init`` that did not answer 200."""
    body = resp.body
    if isinstance(body, dict) and "error" in body:
        return DEVELOPER_ERROR, {"error": body["error"]}
    text = resp.text.strip()
    message = "The action failed during initialization" + (f": {text}" if text else ".")
    return DEVELOPER_ERROR, {"error": message}


def run_result(resp: ActionResponse) -> tuple[int, object]:
    """The outcome of a ``/run`` answer.

    200 with an object or array is success, 200 with ``{"error"}`` an
    application error; any other status is a developer error carrying the
    body's ``error``; anything that is not a JSON object or array is a
    developer error quoting the body.
    """
    body = resp.body
    size = len(resp.text.encode())
    if resp.status == 200 and size > MAX_RESULT_BYTES:
        return APPLICATION_ERROR, {
            "error": "The action produced a response that exceeded the allowed length: "
            f"{size} > {MAX_RESULT_BYTES} bytes."
        }
    if isinstance(body, dict):
        if resp.status == 200:
            if "error" in body:
                return APPLICATION_ERROR, {"error": body["error"]}
            return SUCCESS, body
        if "error" in body:
            return DEVELOPER_ERROR, {"error": body["error"]}
    elif isinstance(body, list) and resp.status == 200:
        return SUCCESS, body
    return DEVELOPER_ERROR, {
        "error": f"The action did not produce a valid JSON or JSON Array response: {resp.text}"
    }


def internal(message: str) -> tuple[int, dict]:
    """A failure of the function server itself (whisk internal error)."""
    return WHISK_ERROR, {"error": message}


def failed_outcome(accepted_ms: int, status: int, result: dict) -> RunOutcome:
    """An activation that failed before any container ran it."""
    now = time.time_ns() // 1_000_000
    return RunOutcome(
        status_code=status,
        result=result,
        start_ms=now,
        end_ms=now,
        wait_time_ms=max(0, now - accepted_ms),
    )


def peak_memory(headers: dict) -> int | None:
    """The activation's peak memory in bytes, as our runtime reports it (None otherwise)."""
    for name, value in headers.items():
        if name.lower() == "x-faas-peak-memory":
            try:
                return int(value)
            except ValueError:
                return None
    return None
