"""The deployer interface: everything the faces need from a function server.

The magics, the CLI, the server extension and the sidebar deploy, invoke,
list and schedule through a ``FaaSDeployer`` and read back the neutral
records below, never a server's own JSON. ``OpenWhiskDeployer`` (the REST API
of OpenWhisk and of our own server) is the default; an OpenFaaS or a hub
deployer implements the same methods.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from traitlets.config import LoggingConfigurable

from ..builders import PushedImage
from ..bundle import Bundle
from ..traits import Pluggable

#: Activation statuses, as the displays name them.
STATUSES = ("success", "application error", "developer error", "internal error")


@dataclass
class ActivationRecord:
    """One run of a deployed function.

    Attributes:
        activation_id: The server's id of the run.
        name: The function's name.
        status: One of ``STATUSES``, or "running" while it has no result.
        start_ms: When it started (epoch ms), or None.
        duration_ms: How long it ran, or None.
        cold: Whether it started a new sandbox (a cold start).
        result: The function's JSON result, or ``{"error": …}``.
        logs: Its log lines.
        wait_ms: Time between acceptance and start, when known.
        init_ms: Time spent loading the code (cold starts), when known.
        version: The version of the function that ran, when known.
    """

    activation_id: str
    name: str
    status: str
    start_ms: int | None = None
    duration_ms: int | None = None
    cold: bool = False
    result: object = None
    logs: list[str] = field(default_factory=list)
    wait_ms: int | None = None
    init_ms: int | None = None
    version: str | None = None

    @property
    def ok(self) -> bool:
        return self.status == "success"

    def to_json(self) -> dict:
        return {**asdict(self), "ok": self.ok}


@dataclass
class Accepted:
    """A run that was accepted but not waited for: look it up by ``activation_id``."""

    activation_id: str


@dataclass
class Deployment:
    """What a deploy left on the server (also written to the bundle's ``deployed.json``)."""

    name: str
    server: str
    namespace: str | None
    version: str | None
    image: str
    digest: str
    code_sha256: str
    time: float

    def to_json(self) -> dict:
        return asdict(self)


@dataclass
class DeployedFunction:
    """A function on the server."""

    name: str
    version: str | None = None
    updated_ms: int | None = None
    namespace: str | None = None


@dataclass
class Schedule:
    """A periodic run of ``action`` made by ``schedule``: ``trigger`` names it."""

    trigger: str
    action: str
    cron: str


class FaaSDeployer(Pluggable, LoggingConfigurable):
    """Puts bundles on a function server and runs, lists and schedules them.

    Subclasses must implement every method below; a subclass missing one fails
    when it is defined. Failures raise ``ServerError`` (with the server's HTTP
    status when there is one) with a message that says what to do.
    """

    _required = (
        "deploy",
        "invoke",
        "activation",
        "activations",
        "schedule",
        "schedules",
        "unschedule",
        "functions",
        "function",
        "delete",
    )

    @property
    def location(self) -> str:
        """Where functions go, for people: the server's URL."""
        return ""

    def deploy(self, bundle: Bundle, image: PushedImage) -> Deployment:
        """Create or update ``bundle``'s function: its published dependency image plus its code."""
        raise NotImplementedError

    def invoke(self, name: str, params: dict, blocking: bool = True) -> ActivationRecord | Accepted:
        """Run ``name`` on ``params``: its record, or Accepted when not (or no longer) waited for."""
        raise NotImplementedError

    def activation(self, activation_id: str) -> ActivationRecord:
        """One run, with its result and logs."""
        raise NotImplementedError

    def activations(self, name: str | None = None, limit: int = 30) -> list[ActivationRecord]:
        """Recent runs, newest first (of one function, or of all); logs may be left out."""
        raise NotImplementedError

    def schedule(self, name: str, cron: str, payload: dict | None = None) -> str:
        """Run ``name`` on a cron schedule (UTC); returns the schedule's trigger name."""
        raise NotImplementedError

    def schedules(self, name: str | None = None) -> list[Schedule]:
        """The schedules made by ``schedule`` (of one function, or of all)."""
        raise NotImplementedError

    def unschedule(self, name: str, cron: str | None = None) -> list[str]:
        """Remove ``name``'s schedules (all, or the one with ``cron``); the triggers removed."""
        raise NotImplementedError

    def functions(self) -> list[DeployedFunction]:
        """The functions on the server."""
        raise NotImplementedError

    def function(self, name: str) -> DeployedFunction:
        """One function; raises ServerError (404) when it is not there."""
        raise NotImplementedError

    def delete(self, name: str) -> None:
        """Remove ``name`` and its schedules from the server."""
        raise NotImplementedError
