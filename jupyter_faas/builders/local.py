"""``LocalBuilder``: what both local builders share, a warm test sandbox per environment.

Test sandboxes (containers for ``DockerBuilder``, runtime processes for
``ProcessBuilder``) are kept warm per dependency environment and memory limit
and accept a re-init, so a code-only edit is one ``/init`` and one ``/run`` on
a sandbox whose libraries are already imported, never a rebuild.
"""

from __future__ import annotations

import atexit
import threading

from traitlets import Float, Instance, Unicode, default

from .. import image
from ..bundle import Bundle
from ..site import FaaSSite
from .interface import BuiltImage, FaaSBuilder, Progress, no_progress
from .sandbox import ContainerRun, run_test


class LocalBuilder(FaaSBuilder):
    """A builder whose test sandboxes run on this machine; subclasses start them."""

    _abstract = True
    #: What a sandbox is called in progress messages ("container", "process").
    sandbox_word = "sandbox"

    start_timeout = Float(
        30.0,
        help="""Seconds a test container (or process) may take to start answering before the
        test is reported as failed, e.g. 30.""",
    ).tag(config=True)

    log_wait = Float(
        2.0,
        help="""Seconds to wait, after a run, for the end-of-activation markers in the test
        sandbox's output (the logs of a run are complete once both markers arrive), e.g. 2.
        0 takes whatever was printed already.""",
    ).tag(config=True)

    api_host = Unicode(
        "http://127.0.0.1:3233",
        help="""Value of __OW_API_HOST in test sandboxes: the function server that functions
        calling OpenWhisk would reach, e.g. "http://127.0.0.1:3233". Empty leaves it unset.""",
    ).tag(config=True)

    site = Instance(FaaSSite, help="The site settings applied to builds and test sandboxes.")
    images = Instance(image.FaaSImages, help="Naming and base of dependency images.")

    @default("site")
    def _site_default(self):
        return FaaSSite(parent=self.parent or self)

    @default("images")
    def _images_default(self):
        return image.FaaSImages(parent=self.parent or self)

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self._warm: dict[tuple[str, int], object] = {}
        self._lock = threading.Lock()
        atexit.register(self.close)

    def test(
        self, bundle: Bundle, image: BuiltImage, args: dict, progress: Progress = no_progress
    ) -> ContainerRun:
        memory = bundle.metadata.memory_mb
        sandbox, reused = self._warm_sandbox(bundle, image, memory, progress)
        progress(
            {
                "step": "test",
                "message": f"Running the function in its {self.sandbox_word}",
                "progress": None,
            }
        )
        return run_test(
            sandbox,
            bundle,
            args,
            reused,
            lambda: self._discard(image.image_id, memory),
            self.max_result_bytes,
        )

    def _start_sandbox(self, bundle: Bundle, built: BuiltImage, memory: int, progress: Progress):
        """A new test sandbox of ``built`` (a ``builders.sandbox.Sandbox`` with ``alive()``
        and ``remove()``), answering, with re-init allowed."""
        raise NotImplementedError

    def _warm_sandbox(self, bundle: Bundle, built: BuiltImage, memory: int, progress: Progress):
        key = (built.image_id, memory)
        with self._lock:
            sandbox = self._warm.get(key)
        if sandbox is not None and sandbox.alive():
            return sandbox, True
        if sandbox is not None:
            self._discard(*key)
        sandbox = self._start_sandbox(bundle, built, memory, progress)
        with self._lock:
            old, self._warm[key] = self._warm.get(key), sandbox
        if old is not None:  # another thread started one at the same time
            old.remove()
        return sandbox, False

    def _discard(self, image_id: str, memory: int) -> None:
        with self._lock:
            sandbox = self._warm.pop((image_id, memory), None)
        if sandbox is not None:
            sandbox.remove()

    def close(self) -> None:
        with self._lock:
            warm, self._warm = list(self._warm.values()), {}
        for sandbox in warm:
            try:
                sandbox.remove()
            except Exception as err:  # the engine may be gone at exit; never stop the others
                self.log.debug("Could not remove a test %s: %s", self.sandbox_word, err)
