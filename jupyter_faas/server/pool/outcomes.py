"""Turn what a container answered into an OpenWhisk status code and result.

The rules and messages are OpenWhisk's (``ActivationResponse`` and
``Messages`` in its invoker; protocols.md A.6, B.2, B.3), so clients that
match on them keep working.
"""

from __future__ import annotations

from ...actionclient import ActionResponse
from ...runtime import protocol
from ..entities import now_ms
from .types import APPLICATION_ERROR, DEVELOPER_ERROR, SUCCESS, WHISK_ERROR, RunOutcome

_CODES = {
    protocol.SUCCESS: SUCCESS,
    protocol.APPLICATION_ERROR: APPLICATION_ERROR,
    protocol.DEVELOPER_ERROR: DEVELOPER_ERROR,
}

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
    """The outcome of a ``/run`` answer, by the protocol's rules (``faas_protocol.classify``).

    No size limit here: the activator applies c.FunctionServer.max_payload_bytes to every
    result, so that setting is the one limit (a fixed 1 MB here would undercut a larger one).
    """
    outcome, result = protocol.classify(resp.status, resp.body, len(resp.text.encode()), 0)
    if result is None:
        result = {
            "error": f"The action did not produce a valid JSON or JSON Array response: {resp.text}"
        }
    return _CODES[outcome], result


def internal(message: str) -> tuple[int, dict]:
    """A failure of the function server itself (whisk internal error)."""
    return WHISK_ERROR, {"error": message}


def failed_outcome(accepted_ms: int, status: int, result: dict) -> RunOutcome:
    """An activation that failed before any container ran it."""
    now = now_ms()
    return RunOutcome(
        status_code=status,
        result=result,
        start_ms=now,
        end_ms=now,
        wait_time_ms=max(0, now - accepted_ms),
    )
