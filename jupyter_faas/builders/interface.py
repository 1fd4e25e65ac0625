"""The builder interface: everything the function loop needs from a build backend.

The notebook, the CLI, the server extension and the workspace call a
``FaaSBuilder`` and never an engine or a registry directly. Implementations:
``DockerBuilder`` (the local Docker engine and a registry), ``ProcessBuilder``
(no container engine: virtualenvs and runtime subprocesses) and, on
JupyterHub, a client of the hub's build service.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from traitlets import Integer
from traitlets.config import LoggingConfigurable

from ..bundle import Bundle
from ..errors import FaaSError
from ..runtime.faas_protocol import MAX_RESULT_BYTES
from ..traits import Pluggable
from .sandbox import ContainerRun

#: A progress event: {"step": "build"|"push"|"test", "message": str, "progress": 0..1 or None}.
ProgressEvent = dict
Progress = Callable[[ProgressEvent], None]


def no_progress(event: ProgressEvent) -> None:
    """A progress callback that drops events (for callers that need none)."""


class BaseUnusable(FaaSError):
    """A published function's image cannot be a base here (not ours, not pullable, no engine)."""

    status = 409
    reason = "base-unusable"


@dataclass
class BaseImage:
    """A published function's dependency image, as a base another image starts FROM.

    Resolved by the deployer (``FaaSDeployer.base``) from the function server's record of
    the published action, never taken from a person: only what its owner published can
    be a base.

    Attributes:
        ref: The published function, ``OWNER/PACKAGE/NAME``.
        owner: The namespace that published it.
        version: Its version at resolution time.
        image: Its image as the action names it, e.g. ``127.0.0.1:5000/jupyter-faas/deps:3f2a…``.
        digest: That image's manifest digest (``sha256:…``), which pins it.
        requirements: Requirement lines installed in the image (its own and its bases').
    """

    ref: str
    owner: str
    version: str | None
    image: str
    digest: str
    requirements: list[str] = field(default_factory=list)

    @property
    def repository(self) -> str:
        """``image`` without its tag or digest."""
        name = self.image.split("@", 1)[0]
        head, _, tail = name.rpartition("/")
        return f"{head}/{tail.split(':', 1)[0]}" if head else name.split(":", 1)[0]

    @property
    def pinned(self) -> str:
        """``repository@digest``: the exact image, whatever its tag points at later."""
        return f"{self.repository}@{self.digest}"


@dataclass
class BuiltImage:
    """A dependency environment (an image, or a virtualenv) ready on the builder's side.

    Attributes:
        ref: Its local name, e.g. ``jupyter-faas/deps:3f2a…``.
        key: The dependency key (hash of the base, the requirements and the runtime).
        image_id: The engine's id of the image (the environment's folder without one).
        reused: Whether it existed already.
        seconds: How long build (or lookup) took.
        base: The ``BaseImage`` it starts FROM as a dict (``dataclasses.asdict``), when
            it derives from a published function's image; None for the site's base.
    """

    ref: str
    key: str
    image_id: str
    reused: bool
    seconds: float = 0.0
    base: dict | None = None


@dataclass
class PushedImage:
    """A dependency environment where a function server can get it: ``ref`` and its digest."""

    ref: str
    digest: str
    seconds: float = 0.0


class FaaSBuilder(Pluggable, LoggingConfigurable):
    """Builds dependency environments, runs functions in test sandboxes, publishes them.

    Subclasses must implement every method below but ``close``; a subclass
    missing one fails when it is defined, not when a scientist first presses
    a button.
    """

    #: One line said when the builder starts, e.g. the isolation it gives; empty: nothing.
    notice = ""

    _required = ("build", "test", "push", "published")

    max_result_bytes = Integer(
        MAX_RESULT_BYTES,
        help="""Largest result of a local test run, in bytes: a larger one is an application
        error, as on the function server. Set from c.FaaSWorkspace.max_result_bytes before
        every test (configure it there); 0 means no limit.""",
    )

    @classmethod
    def unavailable(cls) -> str:
        """Why this builder cannot work here ("" when it can): "auto" skips it then."""
        return ""

    def build(
        self, bundle: Bundle, progress: Progress = no_progress, base: BaseImage | None = None
    ) -> BuiltImage:
        """Build (or reuse) the dependency environment of ``bundle``.

        Args:
            base: The published image ``bundle.metadata.base`` names, as the caller's
                deployer resolved it: the environment starts FROM it (pinned by digest)
                and adds the bundle's own requirements. None: the site's base image.

        Raises:
            BaseImageMissing, BuildError, EngineUnavailable; BaseUnusable when ``base``
            cannot be used by this builder.
        """
        raise NotImplementedError

    def test(
        self, bundle: Bundle, image: BuiltImage, args: dict, progress: Progress = no_progress
    ) -> ContainerRun:
        """Run ``bundle``'s code on ``args`` in a sandbox of ``image``, as OpenWhisk would.

        Failures of the function are reported in the returned ContainerRun, not raised.
        """
        raise NotImplementedError

    def push(self, image: BuiltImage, progress: Progress = no_progress) -> PushedImage:
        """Publish ``image`` where function servers get it (the configured registry).

        Raises:
            RegistryError: unreachable, credentials refused, or the push failed.
        """
        raise NotImplementedError

    def published(self, image: BuiltImage) -> PushedImage | None:
        """Where ``image`` is published already (its reference and digest), or None.

        A deploy pushes only when this is None; it never raises (when the registry
        cannot tell, the push decides).
        """
        raise NotImplementedError

    def close(self) -> None:
        """Release test containers and connections; safe to call twice."""
