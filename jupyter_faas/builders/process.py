"""``ProcessBuilder``: the builder interface without a container engine.

A dependency "image" is a virtualenv made by ``FaaSEnvironments`` (named by the
same dependency key), and a test "container" is a ``RuntimeProcess`` of that
environment. As with ``DockerBuilder``, test processes are kept warm per
environment and memory limit and accept a re-init, so a code-only edit is one
``/init`` and one ``/run`` on a process whose libraries are already imported.
There is no registry: the function server on this machine runs the same
environments, found by their tag.
"""

from __future__ import annotations

import atexit
import threading
import time

from traitlets import Float, Instance, Unicode, default

from .. import image
from ..bundle import Bundle
from ..environments import FaaSEnvironments, RuntimeProcess, is_memory_error, log_text, site_env
from ..errors import BuildError, RegistryError
from ..site import FaaSSite
from .interface import BuiltImage, FaaSBuilder, Progress, PushedImage, no_progress
from .sandbox import ContainerRun, oom_message, run_test

#: Log bytes kept per test run, as the Docker sandbox's practical limit (OpenWhisk's is 10 MB).
LOG_LIMIT_BYTES = 10 * 2**20


class ProcessBuilder(FaaSBuilder):
    """Builds virtualenvs and tests functions in runtime processes on this machine."""

    notice = (
        "container-less mode: functions run as plain processes with no isolation beyond a "
        "process; memory and time limits are still enforced."
    )

    start_timeout = Float(
        30.0,
        help="""Seconds a test process may take to start listening on its port before the
        test is reported as failed, e.g. 30. Its environment is built before this starts.""",
    ).tag(config=True)

    log_wait = Float(
        2.0,
        help="""Seconds to wait, after a run, for the end-of-activation markers in the test
        process's output (the logs of a run are complete once both markers arrive), e.g. 2.
        0 takes whatever was printed already.""",
    ).tag(config=True)

    api_host = Unicode(
        "http://127.0.0.1:3233",
        help="""Value of __OW_API_HOST for test processes: the function server that functions
        calling OpenWhisk would reach, e.g. "http://127.0.0.1:3233". Empty leaves it unset.""",
    ).tag(config=True)

    site = Instance(FaaSSite, help="The site settings applied to pip and to test processes.")
    images = Instance(image.FaaSImages, help="Naming of dependency images (the BuiltImage ref).")
    environments = Instance(
        FaaSEnvironments, help="Where dependency environments live and what Python makes them."
    )

    @default("site")
    def _site_default(self):
        return FaaSSite(parent=self.parent or self)

    @default("images")
    def _images_default(self):
        return image.FaaSImages(parent=self.parent or self)

    @default("environments")
    def _environments_default(self):
        return FaaSEnvironments(parent=self.parent or self)

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self._warm: dict[tuple[str, int], _TestProcess] = {}
        self._lock = threading.Lock()
        atexit.register(self.close)

    # -- build -------------------------------------------------------------------------------

    def build(self, bundle: Bundle, progress: Progress = no_progress) -> BuiltImage:
        start = time.perf_counter()
        key, path, reused = self.environments.ensure(bundle.requirements, self.site, progress)
        ref = self.images.local_ref(key)
        return BuiltImage(ref, key, str(path), reused, time.perf_counter() - start)

    # -- test --------------------------------------------------------------------------------

    def test(
        self, bundle: Bundle, image: BuiltImage, args: dict, progress: Progress = no_progress
    ) -> ContainerRun:
        memory = bundle.metadata.memory_mb
        sandbox, reused = self._warm_sandbox(bundle, image, memory, progress)
        progress(
            {"step": "test", "message": "Running the function in its process", "progress": None}
        )

        def discard() -> None:
            self._discard(image.key, memory)

        run = run_test(sandbox, bundle, args, reused, discard, self.max_result_bytes)
        if run.status == "error" and is_memory_error(run.result):
            # The address-space backstop refused an allocation: the same limit, reported the
            # same way as the watchdog's kill. The process may be left fragmented: replace it.
            discard()
            run.status, run.result = "out of memory", {"error": oom_message(memory)}
        return run

    def _warm_sandbox(self, bundle: Bundle, built: BuiltImage, memory: int, progress: Progress):
        with self._lock:
            sandbox = self._warm.get((built.key, memory))
        if sandbox is not None and sandbox.runtime.alive():
            return sandbox, True
        if sandbox is not None:
            self._discard(built.key, memory)
        path = self.environments.find(built.key[:24])
        if path is None:
            raise BuildError(
                f"The environment {self.environments.path(built.key)} of {built.ref} is missing.",
                hint="Build the function again; environments are rebuilt when removed.",
            )
        progress(
            {"step": "test", "message": f"Starting a test process in {path}", "progress": None}
        )
        env = site_env(self.site)
        if self.api_host:
            env["__OW_API_HOST"] = self.api_host
        process = RuntimeProcess.start(
            path,
            memory_mb=memory,
            env=env,
            allow_reinit=True,
            name=f"test-{bundle.name}",
            timeout=self.start_timeout,
        )
        sandbox = _TestProcess(process, self.log_wait)
        with self._lock:
            old, self._warm[(built.key, memory)] = self._warm.get((built.key, memory)), sandbox
        if old is not None:  # another thread started one at the same time
            old.runtime.kill()
        return sandbox, False

    def _discard(self, key: str, memory: int) -> None:
        with self._lock:
            sandbox = self._warm.pop((key, memory), None)
        if sandbox is not None:
            sandbox.runtime.kill()

    def close(self) -> None:
        with self._lock:
            warm, self._warm = list(self._warm.values()), {}
        for sandbox in warm:
            try:
                sandbox.runtime.kill()
            except Exception as err:  # never let one stuck process keep the others alive
                self.log.debug("Could not kill a test process: %s", err)

    # -- push --------------------------------------------------------------------------------

    def published(self, image: BuiltImage) -> PushedImage | None:
        if self.environments.find(image.key[:24]) is None:
            return None
        return PushedImage(image.ref, f"env:{image.key[:24]}")

    def push(self, image: BuiltImage, progress: Progress = no_progress) -> PushedImage:
        """Nothing to send: the function server on this machine finds the environment by tag."""
        path = self.environments.find(image.key[:24])
        if path is None:
            raise RegistryError(
                f"The environment {self.environments.path(image.key)} of {image.ref} is missing.",
                hint="Build the function again before deploying it.",
            )
        progress(
            {
                "step": "push",
                "message": f"Container-less mode has no registry: the environment stays on this "
                f"machine at {path}",
                "progress": 1.0,
            }
        )
        return PushedImage(image.ref, f"env:{image.key[:24]}")


class _TestProcess:
    """A warm runtime process as a ``Sandbox``: its client, logs and exit state."""

    def __init__(self, runtime: RuntimeProcess, log_wait: float):
        self.runtime = runtime
        self.action = runtime.action
        self._log_wait = log_wait

    def mark(self) -> None:
        self.runtime.logs.discard()

    def logs(self, wait: bool) -> list[str]:
        """The run's output lines, as the Docker sandbox gives them (no timestamp, no stream)."""
        lines = self.runtime.logs.take(self._log_wait if wait else 0, LOG_LIMIT_BYTES)
        return [log_text(line) for line in lines]

    def exit_state(self) -> tuple[bool, object]:
        # The watchdog marks before it kills; the exit code needs the process reaped.
        code = self.runtime.wait(2)
        return self.runtime.oom_killed, "unknown" if code is None else code


__all__ = ["ProcessBuilder"]
