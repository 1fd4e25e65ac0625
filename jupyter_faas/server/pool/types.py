"""The invoker interface: what the function server's activator needs to run activations.

The activator builds an :class:`ActivationJob` for every activation it wants
run and turns the :class:`RunOutcome` it gets back into an OpenWhisk
activation record. Invokers (``DockerInvoker``: containers on the Docker
engine; ``ProcessInvoker``: runtime processes, no engine) implement
:class:`FaaSInvoker`; both sides import these classes from here so the
contract lives in one place.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from traitlets.config import LoggingConfigurable

from ...runtime.faas_protocol import RUNTIME_IMAGE
from ...traits import Pluggable

#: RunOutcome.status_code values, as in OpenWhisk's ActivationResponse.
SUCCESS = 0
APPLICATION_ERROR = 1
DEVELOPER_ERROR = 2
WHISK_ERROR = 3


@dataclass
class ActivationJob:
    """One activation to run in a container.

    Attributes:
        activation_id: 32 lowercase hex characters.
        namespace: The invoking namespace (``__OW_NAMESPACE``).
        action_name: Fully qualified action name, ``/ns/[pkg/]name``.
        action_version: The action's semantic version, e.g. ``0.0.3``.
        exec: The stored exec: ``{"kind": "blackbox" | "python:3.11", "image"?,
            "code"?, "main"?, "binary"}``. For ``python:3.11`` the Invoker picks
            the server's runtime image; for ``blackbox`` it runs ``image``.
        params: Merged parameters, sent as ``value`` to ``/run``.
        init_env: Init parameters plus the ``__OW_*`` context, for ``/init``'s env.
        limits: ``{"timeout": ms, "memory": MB, "logs": MB, "concurrency": 1}``.
        deadline_ms: Epoch ms by which the activation must have finished.
        api_key: ``uuid:key`` of the invoker, only when the action has
            ``provide-api-key`` set true; otherwise None.
        action_key: Identity for container reuse, ``ns/pkg/name@version@caller``
            (the invoking namespace, %-escaped): a changed action never reuses an older
            action's containers, and no caller reuses another namespace's.
    """

    activation_id: str
    namespace: str
    action_name: str
    action_version: str
    exec: dict
    params: dict
    init_env: dict
    limits: dict
    deadline_ms: int
    api_key: str | None
    action_key: str


@dataclass
class RunOutcome:
    """What running an :class:`ActivationJob` produced.

    Attributes:
        status_code: 0 success, 1 application error, 2 action developer
            error, 3 whisk internal error.
        result: The JSON result (dict or list); errors are ``{"error": ...}``.
        start_ms: Epoch ms when the activation started (container acquired).
        end_ms: Epoch ms when it ended.
        logs: Formatted OpenWhisk log lines (timestamp padded to 30 chars,
            `` stdout: `` or `` stderr: ``, message), sentinels stripped.
        init_time_ms: Time spent in ``/init``, only on a cold start.
        wait_time_ms: Time between acceptance and start.
        timed_out: True when the run hit the action's time limit.
        peak_memory_bytes: Peak memory of the container, when known.
    """

    status_code: int
    result: object
    start_ms: int
    end_ms: int
    logs: list[str] = field(default_factory=list)
    init_time_ms: int | None = None
    wait_time_ms: int = 0
    timed_out: bool = False
    peak_memory_bytes: int | None = None


class FaaSInvoker(Pluggable, LoggingConfigurable):
    """Runs :class:`ActivationJob` s and reports :class:`RunOutcome` s.

    Subclasses must implement ``start``, ``stop`` and ``run``; a subclass missing
    one fails when it is defined. ``run`` never raises for a failing action or
    sandbox: every failure is an outcome with OpenWhisk's status code and words.
    """

    #: Whether its sandboxes keep namespaces apart. A server whose invoker does not
    #: serves one namespace only (it refuses to create or load a second one).
    isolates_namespaces = True

    #: One line said when the server starts (e.g. the isolation it lacks); empty: nothing.
    notice = ""

    #: What runs the default Python kind, as the server names it in exec records.
    python_image = RUNTIME_IMAGE

    _required = ("start", "stop", "run")

    @classmethod
    def unavailable(cls) -> str:
        """Why this invoker cannot work here ("" when it can): "auto" skips it then."""
        return ""

    async def start(self) -> None:
        """Prepare (clean up after a crash, prewarm); called once before any run."""
        raise NotImplementedError

    async def stop(self) -> None:
        """Remove every sandbox; safe to call twice."""
        raise NotImplementedError

    async def run(self, job: ActivationJob) -> RunOutcome:
        """Run one activation to its outcome."""
        raise NotImplementedError

    def pool_sizes(self) -> dict[tuple[str, str], int]:
        """Its sandboxes by ``(invoking namespace, state)`` ("" for prewarm ones), for
        ``/metrics``. Default: none."""
        return {}

    async def retire(self, action: str) -> int:
        """Remove the idle sandboxes of a deleted or replaced action; returns how many.

        ``action`` is ``ns/[pkg/]name`` (every version: a delete) or
        ``ns/[pkg/]name@version`` (that version: an update). Busy ones are removed when
        their run ends. Without it they would linger until the idle timeout. Default: none.
        """
        return 0
