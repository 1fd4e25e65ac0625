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

import time

from traitlets import Instance, default

from ..bundle import Bundle
from ..environments import FaaSEnvironments, RuntimeProcess, is_memory_error, log_text
from ..errors import BuildError, RegistryError
from ..server.pool.logs import RUNTIME_STARTED
from .interface import BaseImage, BaseUnusable, BuiltImage, Progress, PushedImage, no_progress
from .local import LocalBuilder
from .sandbox import ContainerRun, oom_message

#: Log bytes kept per test run, as the Docker sandbox's practical limit (OpenWhisk's is 10 MB).
LOG_LIMIT_BYTES = 10 * 2**20


class ProcessBuilder(LocalBuilder):
    """Builds virtualenvs and tests functions in runtime processes on this machine."""

    sandbox_word = "process"

    notice = (
        "container-less mode: functions run as plain processes with no isolation beyond a "
        "process; memory and time limits are still enforced."
    )

    environments = Instance(
        FaaSEnvironments, help="Where dependency environments live and what Python makes them."
    )

    @default("environments")
    def _environments_default(self):
        return FaaSEnvironments(parent=self.parent or self)

    # -- build -------------------------------------------------------------------------------

    def build(
        self, bundle: Bundle, progress: Progress = no_progress, base: BaseImage | None = None
    ) -> BuiltImage:
        if base is not None or bundle.metadata.base:
            ref = base.ref if base is not None else bundle.metadata.base
            raise BaseUnusable(
                f"{bundle.name} derives from {ref}, and a published function as a base is not "
                "supported in container-less mode, because what it inherits is a container "
                "image (its installed packages live in the image's layers), and this mode "
                "builds virtualenvs from requirements.txt alone, with no engine to run or "
                "unpack an image.",
                hint='Use the Docker builder (c.FaaSWorkspace.builder_class = "docker" where '
                f"an engine runs), or copy the function (%faas pull {ref}) and keep its "
                "requirements: they are in the copy's requirements.txt.",
            )
        start = time.perf_counter()
        key, path, reused = self.environments.ensure(bundle.requirements, self.site, progress)
        ref = self.images.local_ref(key)
        return BuiltImage(ref, key, str(path), reused, time.perf_counter() - start)

    # -- test --------------------------------------------------------------------------------

    def test(
        self, bundle: Bundle, image: BuiltImage, args: dict, progress: Progress = no_progress
    ) -> ContainerRun:
        run = super().test(bundle, image, args, progress)
        if run.status == "error" and is_memory_error(run.result):
            # The address-space backstop refused an allocation: the same limit, reported the
            # same way as the watchdog's kill. The process may be left fragmented: replace it.
            memory = bundle.metadata.memory_mb
            self._discard(image.image_id, memory)
            run.status, run.result = "out of memory", {"error": oom_message(memory)}
        return run

    def _start_sandbox(self, bundle: Bundle, built: BuiltImage, memory: int, progress: Progress):
        path = self.environments.find(built.key[:24])
        if path is None:
            raise BuildError(
                f"The environment {self.environments.path(built.key)} of {built.ref} is missing.",
                hint="Build the function again; environments are rebuilt when removed.",
            )
        progress(
            {"step": "test", "message": f"Starting a test process in {path}", "progress": None}
        )
        env = self.site.host_env()
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
        return _TestProcess(process, self.log_wait)

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
        #: The runtime's own start-up line, dropped at the first mark even if it comes late
        #: (its port may answer before the line has come through the pipe).
        self._startup: str | None = RUNTIME_STARTED

    def mark(self) -> None:
        self.runtime.logs.discard(self._startup)
        self._startup = None

    def alive(self) -> bool:
        return self.runtime.alive()

    def remove(self) -> None:
        self.runtime.kill()

    def logs(self, wait: bool, token: str | None = None) -> list[str]:
        """The run's output lines, as the Docker sandbox gives them (no timestamp, no stream)."""
        self.runtime.logs.token = token
        lines = self.runtime.logs.take(self._log_wait if wait else 0, LOG_LIMIT_BYTES)
        return [log_text(line) for line in lines]

    def exit_state(self) -> tuple[bool, object]:
        # The watchdog marks before it kills; the exit code needs the process reaped.
        code = self.runtime.wait(2)
        return self.runtime.oom_killed, "unknown" if code is None else code


__all__ = ["ProcessBuilder"]
