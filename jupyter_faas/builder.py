"""The builder interface: every piece of Docker work the function loop needs.

The notebook, the CLI and the Jupyter server extension call a ``FaaSBuilder``
and never Docker directly. On a laptop the builder is ``DockerBuilder`` (the
local engine); on JupyterHub user containers get no Docker socket and the
builder is a client of a build service implementing the same three methods.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from traitlets.config import LoggingConfigurable

from .bundle import Bundle

#: A progress event: {"step": "build"|"push"|"test", "message": str, "progress": 0..1 or None}.
ProgressEvent = dict
Progress = Callable[[ProgressEvent], None]


def no_progress(event: ProgressEvent) -> None:
    """A progress callback that drops events (for callers that need none)."""


@dataclass
class BuiltImage:
    """A dependency image on the builder's engine."""

    ref: str
    key: str
    image_id: str
    reused: bool
    seconds: float = 0.0


@dataclass
class PushedImage:
    """A dependency image in a registry."""

    ref: str
    digest: str
    seconds: float = 0.0


@dataclass
class ContainerRun:
    """One invocation of a function in a local container.

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


class FaaSBuilder(LoggingConfigurable):
    """Builds dependency images, runs functions in test containers, pushes images.

    Subclasses must implement build, test and push; a subclass missing one fails
    when it is defined, not when a scientist first presses a button.
    """

    _required = ("build", "test", "push")

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        missing = [m for m in cls._required if getattr(cls, m) is getattr(FaaSBuilder, m)]
        if missing:
            raise TypeError(f"{cls.__name__} must implement {', '.join(missing)}")

    def build(self, bundle: Bundle, progress: Progress = no_progress) -> BuiltImage:
        """Build (or reuse) the dependency image of ``bundle``.

        Raises:
            BaseImageMissing, BuildError, EngineUnavailable
        """
        raise NotImplementedError

    def test(
        self, bundle: Bundle, image: BuiltImage, args: dict, progress: Progress = no_progress
    ) -> ContainerRun:
        """Run ``bundle``'s code on ``args`` in a container of ``image``, as OpenWhisk would.

        Failures of the function are reported in the returned ContainerRun, not raised.
        """
        raise NotImplementedError

    def push(self, image: BuiltImage, progress: Progress = no_progress) -> PushedImage:
        """Push ``image`` to the configured registry.

        Raises:
            RegistryError: unreachable, credentials refused, or the push failed.
        """
        raise NotImplementedError

    def close(self) -> None:
        """Release containers and connections; safe to call twice."""
