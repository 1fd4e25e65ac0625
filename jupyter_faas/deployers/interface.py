"""The deployer interface: everything the faces need from a function server.

The magics, the CLI, the server extension and the sidebar deploy, invoke,
list and schedule through a ``FaaSDeployer`` and read back the neutral
records below, never a server's own JSON. ``OpenWhiskDeployer`` (the REST API
of OpenWhisk and of our own server) is the default; an OpenFaaS or a hub
deployer implements the same methods.
"""

from __future__ import annotations

import json
import shlex
from dataclasses import asdict, dataclass, field
from pathlib import Path

from traitlets.config import LoggingConfigurable

from ..builders import BaseImage, PushedImage
from ..bundle import METADATA_FILE, REQUIREMENTS_FILE, Bundle, FunctionMetadata, check_name
from ..errors import BundleError
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
        subject: Who invoked it (the invoking subject or namespace), when known.
        cause: The activation that started it (a trigger's or a sequence's), if any.
        cause_kind: What that activation is, when the deployer found out: "trigger",
            "schedule" (a trigger made by ``schedule``) or "sequence".
        cause_name: The name of the trigger or sequence that started it.
        cron: The cron pattern, when a schedule started it.
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
    subject: str | None = None
    cause: str | None = None
    cause_kind: str | None = None
    cause_name: str | None = None
    cron: str | None = None

    @property
    def ok(self) -> bool:
        return self.status == "success"

    def started_by(self) -> dict:
        """What started this run, for people: a person, a schedule, a trigger or a sequence."""
        kind = self.cause_kind or ("trigger" if self.cause else "person")
        label = {
            "person": self.subject or "someone",
            "schedule": f"schedule {self.cron or self.cause_name or ''}".strip(),
            "trigger": f"trigger {self.cause_name or self.cause}",
            "sequence": f"sequence {self.cause_name or self.cause}",
        }.get(kind, kind)
        return {
            "kind": kind,
            "label": label,
            "subject": self.subject,
            "trigger": self.cause_name if kind in ("schedule", "trigger") else None,
            "cron": self.cron,
            "sequence": self.cause_name if kind == "sequence" else None,
            "parent": self.cause,
        }

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
    #: The notebook cell it came from (``Bundle.metadata.cell``): notebook, cell_id, cell_sha256.
    notebook: str | None = None
    cell_id: str | None = None
    cell_sha256: str | None = None

    def to_json(self) -> dict:
        return asdict(self)


@dataclass
class Version:
    """One deploy of a function, as the deployer's history keeps it."""

    name: str
    version: str | None
    time: float
    who: str
    image: str
    digest: str
    code_sha256: str
    #: The version this deploy rolled back to, if it was a rollback.
    rollback_of: str | None = None
    notebook: str | None = None
    cell_id: str | None = None
    cell_sha256: str | None = None
    #: Whether the server runs this version now (filled in when listed).
    current: bool = False

    def to_json(self) -> dict:
        return asdict(self)


@dataclass
class DeployedFunction:
    """A function on the server."""

    name: str
    version: str | None = None
    updated_ms: int | None = None
    namespace: str | None = None
    #: The dependency image's digest and the code's hash, when this deployer deployed it.
    digest: str | None = None
    code_sha256: str | None = None
    #: Its public URL, when it is a web action.
    web_url: str | None = None


@dataclass
class SharedFunction:
    """A function some namespace published, as others find it.

    Attributes:
        owner: The namespace that published it (on a hub, the user's namespace).
        package: The published package holding it.
        name: The function's name in that package.
        description: What it does, in its publisher's words ("" when not given).
        version: The version published.
        updated_ms: When it was last published (epoch ms), when known.
        contract: How to call it: ``handler``, ``parameters`` (the input's keys, each
            ``{"name", "required"}``), ``sample_input``, ``memory_mb``, ``timeout_s``,
            ``python`` and ``image``, as far as its publisher's metadata tells.
        mine: Whether the caller published it.
    """

    owner: str
    package: str
    name: str
    description: str = ""
    version: str | None = None
    updated_ms: int | None = None
    contract: dict = field(default_factory=dict)
    mine: bool = False

    @property
    def ref(self) -> str:
        """``OWNER/PACKAGE/NAME``: what invoke, bind and pull take."""
        return f"{self.owner}/{self.package}/{self.name}"

    def to_json(self) -> dict:
        return {**asdict(self), "ref": self.ref}


@dataclass
class SharedBundle:
    """A published function's bundle, as ``pull`` copies it.

    Attributes:
        ref: ``OWNER/PACKAGE/NAME`` it was pulled from.
        version: The version pulled.
        files: The code's files by path relative to the bundle (``handler.py`` first).
        requirements: The pinned requirement lines, when the publisher's deploy recorded them.
        metadata: The publisher's ``faas.json`` fields (handler, limits, test input…).
        image: The dependency image the function runs on.
    """

    ref: str
    version: str | None
    files: dict[str, bytes]
    requirements: list[str]
    metadata: dict
    image: str | None = None

    @property
    def handler_code(self) -> str:
        """handler.py without the header jupyter-faas writes above captured code."""
        text = self.files.get("handler.py", b"").decode()
        if text.startswith('"""Function ') and "generated by jupyter-faas" in text[:200]:
            end = text.find('"""', 3)
            text = text[end + 3 :] if end > 0 else text
        return text.lstrip("\n")

    def cell_text(self, name: str) -> str:
        """A ``%%faas NAME`` cell with the handler code, to derive a function of one's own."""
        options = ""
        handler = self.metadata.get("handler") or "main"
        if handler != "main":
            options += f" --handler {handler}"
        if self.metadata.get("base"):
            options += f" --base {self.metadata['base']}"
        if self.metadata.get("test_input") is not None:
            test = json.dumps(self.metadata["test_input"], separators=(",", ":"))
            options += f" --test {shlex.quote(test)}"
        head = f"%%faas {name}{options}\n# Derived from {self.ref} (version {self.version}).\n"
        return head + self.handler_code

    def write_bundle(self, path: Path, name: str) -> Bundle:
        """Write this copy as the bundle of function ``name`` in folder ``path`` (a new one).

        Raises:
            BundleError: the folder exists (nothing is overwritten), or the copy is not a
                valid bundle.
        """
        check_name(name)
        path = Path(path)
        if path.exists():
            raise BundleError(
                f"There is a function {name!r} here already ({path}); the copy would replace it.",
                hint=f"Give the copy another name: %faas pull {self.ref} --as {name}-mine.",
            )
        known = set(FunctionMetadata.__dataclass_fields__) - {"name", "cell", "cell_lines"}
        metadata = FunctionMetadata(
            name=name, **{k: v for k, v in self.metadata.items() if k in known}
        )
        path.mkdir(parents=True)
        for relative, data in self.files.items():
            target = (path / relative).resolve()
            if not target.is_relative_to(path.resolve()):
                continue  # a zip entry pointing outside the bundle is not copied
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
        (path / REQUIREMENTS_FILE).write_text("".join(f"{r}\n" for r in self.requirements))
        (path / METADATA_FILE).write_text(json.dumps(asdict(metadata), indent=2) + "\n")
        return Bundle.load(path)


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
        "versions",
        "rollback",
        "publish",
        "unpublish",
        "shared",
        "pull",
        "bind",
        "sequence",
        "base",
    )

    @property
    def location(self) -> str:
        """Where functions go, for people: the server's URL."""
        return ""

    def deploy(self, bundle: Bundle, image: PushedImage, base: dict | None = None) -> Deployment:
        """Create or update ``bundle``'s function: its published dependency image plus its code.

        ``base``: the ``BaseImage`` (as a dict, ``BuiltImage.base``) the image derives from,
        recorded with the function so that functions based on it know what it holds.
        """
        raise NotImplementedError

    def invoke(self, name: str, params: dict, blocking: bool = True) -> ActivationRecord | Accepted:
        """Run ``name`` on ``params``: its record, or Accepted when not (or no longer) waited for."""
        raise NotImplementedError

    def activation(self, activation_id: str) -> ActivationRecord:
        """One run, with its result and logs."""
        raise NotImplementedError

    def activations(
        self, name: str | None = None, limit: int = 30, since_ms: int | None = None
    ) -> list[ActivationRecord]:
        """Recent runs, newest first (of one function, or of all; those that started after
        ``since_ms``, epoch ms, if given); logs may be left out."""
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

    def versions(self, name: str) -> list[Version]:
        """Every deploy of ``name`` recorded, newest first, ``current`` set on the one running."""
        raise NotImplementedError

    def rollback(self, name: str, version: str) -> Deployment:
        """Deploy again exactly what ``version`` of ``name`` was (a new version on the server)."""
        raise NotImplementedError

    def publish(self, name: str, package: str = "", description: str = "") -> SharedFunction:
        """Share deployed function ``name`` with every namespace: a copy of its current
        version in ``package`` (the deployer's default when ""), published."""
        raise NotImplementedError

    def unpublish(self, name: str, package: str = "") -> None:
        """Stop sharing ``name``; raises NotFound when it is not published."""
        raise NotImplementedError

    def shared(self) -> list[SharedFunction]:
        """The functions published by any namespace the caller can see (its own marked)."""
        raise NotImplementedError

    def pull(self, ref: str) -> SharedBundle:
        """The bundle of published function ``ref`` (``OWNER/PACKAGE/NAME``)."""
        raise NotImplementedError

    def base(self, ref: str) -> BaseImage:
        """The dependency image of published function ``ref`` (``OWNER/PACKAGE/NAME``), to
        build FROM: its image, the digest that pins it and what it installed.

        Raises:
            ServerError: 403 when it is not (or no longer) published, or does not exist.
            BaseUnusable: it is published but has no image a builder can start from.
        """
        raise NotImplementedError

    def bind(self, package_ref: str, name: str = "", params: dict | None = None) -> str:
        """Bind published package ``package_ref`` (``OWNER/PACKAGE``) into the caller's
        namespace as ``name`` with default ``params``; returns the binding's name, so that
        ``NAME/FUNCTION`` invokes through it."""
        raise NotImplementedError

    def sequence(self, name: str, steps: list[str]) -> DeployedFunction:
        """Make ``name`` run ``steps`` in turn (each one's result the next one's input); a
        step is a function of one's own, ``BINDING/NAME`` or a shared ``OWNER/PACKAGE/NAME``."""
        raise NotImplementedError

    def web_url(self, name: str) -> str | None:
        """The function's public URL when it is a web action, else None."""
        return None

    def commands(self, name: str, params: dict) -> dict:
        """Shell commands (``curl``, and the server's own client if any) invoking ``name``."""
        return {}
