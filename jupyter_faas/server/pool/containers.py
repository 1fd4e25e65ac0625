"""One action container: start it, talk to it, tell how it died, remove it.

Everything here blocks (docker-py, ``http.client``); the Invoker calls it
through :class:`~.executor.BlockingCalls`. The container runs its image's own
CMD, listens on 8080 and is reached at its IP on the Docker network, exactly
as OpenWhisk's invoker does (protocols.md B.1).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import docker.errors
import requests.exceptions
from docker.types import LogConfig
from docker.utils import parse_repository_tag

from ... import engine
from ...actionclient import ActionClient, ContainerGone, sandbox_secret
from ...runtime import protocol
from ..entities import now_ms
from .aioclient import AsyncRunClient
from .logs import LogCollector
from .slots import Exchange, Slot
from .slots import escape_name as escape_name  # re-exported: callers import it from here

log = logging.getLogger(__name__)

#: Label holding the action key a container was started for (absent on prewarm containers).
ACTION_LABEL = "org.jupyter-faas.action"
#: Label naming the Invoker instance that owns a container.
INSTANCE_LABEL = "org.jupyter-faas.invoker"
#: Label marking a container started without code, waiting for a Python action.
PREWARM_LABEL = "org.jupyter-faas.prewarm"
#: Label naming the server (its data directory's stable id) that owns a container, across
#: restarts: its crash cleanup removes only containers with its own owner.
OWNER_LABEL = "org.jupyter-faas.owner"
#: How long to wait for an exited container's state to settle before reading OOMKilled.
EXIT_SETTLE_S = 2.0


def registry_host(ref: str) -> str | None:
    """The registry host of an image reference, or None for a plain local name."""
    first, sep, _ = ref.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost"):
        return first
    return None


def wants_refresh(ref: str) -> bool:
    """OpenWhisk pulls blackbox images tagged ``latest`` (or untagged) before every cold start."""
    if "@" in ref:
        return False
    _, tag = parse_repository_tag(ref)
    return tag in (None, "latest")


class PullFailed(Exception):
    """An image is neither on the engine nor pullable; ``str()`` is the user message."""


def ensure_image(client, ref: str, registry: str, refresh: bool) -> dict:
    """Make ``ref`` runnable on the engine, pulling it when needed.

    Args:
        client: docker-py client.
        ref: The image reference, e.g. ``127.0.0.1:5000/fn:1`` or ``fn:1``.
        registry: Registry host to pull plain local names from (``""``: none).
        refresh: Pull even when the image is local (tag ``latest``); a failed
            refresh falls back to the local image.

    Returns:
        The image's labels.

    Raises:
        PullFailed: not local and the pull failed; the message says what to do.
    """
    local = _image_labels(client, ref)
    if local is not None and not refresh:
        return local
    source = ref if registry_host(ref) else (f"{registry}/{ref}" if registry else "")
    if not source:
        if local is not None:
            return local
        raise PullFailed(
            f"Failed to pull container image '{ref}'. It is not on this Docker engine and "
            "names no registry. Push it to a registry and deploy it with its full name "
            "(e.g. 127.0.0.1:5000/name:tag), or set c.DockerInvoker.registry."
        )
    repo, tag = parse_repository_tag(source)
    try:
        image = client.images.pull(repo, tag=tag or "latest")
        if source != ref:
            local_repo, local_tag = parse_repository_tag(ref)
            image.tag(local_repo, local_tag or "latest")
        return image.labels or {}
    except (docker.errors.APIError, requests.exceptions.RequestException) as err:
        if local is not None:
            log.warning("pulling %s failed (%s); using the local image", source, err)
            return local
        raise PullFailed(
            f"Failed to pull container image '{ref}'. Push it first (docker push {source}), "
            f"and check that the registry {registry_host(source)} is running and reachable "
            f"from the Docker engine ({_first_line(err)})."
        ) from err


@dataclass(frozen=True)
class Hardening:
    """How a container is confined; the defaults assume the code and its neighbours are hostile.

    Each value 0 or empty turns its confinement off (see the c.DockerInvoker settings).
    """

    user: str = "65534:65534"
    read_only: bool = True
    tmp_mb: int = 64
    pids_limit: int = 256
    cpus: float = 1.0
    log_max_mb: int = 10
    log_max_files: int = 3
    cap_drop: tuple[str, ...] = ("ALL",)
    security_opt: tuple[str, ...] = ("no-new-privileges",)

    def run_options(self) -> dict:
        """The docker-py ``containers.run`` arguments for this confinement.

        /tmp is a size-bounded tmpfs (its pages count against the memory limit), mounted
        ``exec`` against Docker's ``noexec`` default: native actions run their ``exec`` there.
        """
        options: dict = {
            "read_only": self.read_only,
            "cap_drop": list(self.cap_drop),
            "security_opt": list(self.security_opt),
        }
        if self.user:
            options["user"] = self.user
        if self.tmp_mb:
            options["tmpfs"] = {"/tmp": f"rw,exec,nosuid,nodev,size={self.tmp_mb}m,mode=1777"}
        if self.pids_limit:
            options["pids_limit"] = self.pids_limit
        if self.cpus:
            options["nano_cpus"] = round(self.cpus * 1e9)
        if self.log_max_mb:
            options["log_config"] = LogConfig(
                type="json-file",
                config={"max-size": f"{self.log_max_mb}m", "max-file": str(self.log_max_files)},
            )
        return options


class ActionContainer(Slot):
    """A running container, its connection and its log follower (a prewarm one at first).

    Attributes:
        sentinelled: Whether its runtime prints log sentinels (wait for them).
    """

    def __init__(self, container, address: str, logs: LogCollector, memory_mb: int, image: str):
        super().__init__(container.id, container.name, memory_mb, None, "prewarm")
        self.container = container
        self.address = address
        self.client = self.action = ActionClient.for_sandbox(address, container.name)
        #: The warm path's client: /run from the event loop (see :meth:`run_warm`).
        self.warm_client = AsyncRunClient(address, 8080, sandbox_secret(container.name))
        self.logs = logs
        self.image = image
        self.sentinelled = False
        #: (image, memory MB) of a prewarm container to start when its activation is over.
        self.restock: tuple[str, int] | None = None

    @classmethod
    def start(
        cls,
        client,
        stream_api,
        *,
        image: str,
        name: str,
        memory_mb: int,
        env: dict,
        labels: dict,
        network: str,
        volumes: dict | None = None,
        hardening: Hardening | None = None,
        loop=None,
    ) -> ActionContainer:
        """``docker run`` the image detached with its own CMD and attach to its output.

        The memory limit is also the swap limit (no swap), as OpenWhisk sets it;
        ``hardening`` (default: :class:`Hardening`'s defaults) confines the rest. Its
        output is followed on ``loop`` (see :meth:`LogCollector.attach`), or a thread.
        """
        container = client.containers.run(
            image,
            detach=True,
            name=name,
            environment={**env, **ActionClient.secret_env(name)},
            volumes=volumes or {},
            labels=labels,
            network=network,
            mem_limit=f"{memory_mb}m",
            memswap_limit=f"{memory_mb}m",
            **(hardening or Hardening()).run_options(),
        )
        try:
            address = engine.container_address(container, network)
            logs = LogCollector.attach(stream_api, container.id, container.name, loop=loop)
        except Exception:
            engine.remove_container(container)
            raise
        return cls(container, address, logs, memory_mb, image)

    def wait_listening(self, deadline: float) -> None:
        """Probe port 8080 until it accepts connections.

        Raises:
            ContainerGone: the container exited first.
            TimeoutError: ``deadline`` (monotonic) passed.
        """
        while True:
            try:
                self.client.wait_ready(0.05)
                return
            except ContainerGone:
                if self.logs.ended:
                    raise ContainerGone(f"container {self.name} exited") from None
                if time.monotonic() >= deadline:
                    raise TimeoutError(f"container {self.name} is not listening") from None

    def ready(self, deadline: float) -> None:
        self.wait_listening(deadline)

    @property
    def announces_start(self) -> bool:
        """Images that print sentinels run our runtime, which announces that it listens."""
        return self.sentinelled

    def sentinel_wait(self, sentinel_wait_s: float) -> float:
        """Images that print no sentinels are not waited for."""
        return sentinel_wait_s if (self.sentinelled or self.logs.saw_sentinel) else 0.0

    async def run_warm(
        self, run_body: dict, timeout_s: float, sentinel_wait_s: float, log_limit_bytes: int
    ) -> Exchange:
        """:meth:`exchange` without ``/init``, on the event loop: for a warm container of our
        runtime (it answers with a Content-Length and prints sentinels). No thread hand-off."""
        result = Exchange(start_ms=now_ms())
        token = protocol.new_log_token() if self.log_tokens else None
        self.logs.token = token
        try:
            result.run = await self.warm_client.run(run_body, timeout_s, token=token)
        except TimeoutError:
            result.timed_out_in = "run"
        except ContainerGone:
            result.gone_in = "run"
        result.end_ms = now_ms()
        if result.timed_out_in is None and result.gone_in is None:
            wait_s = self.sentinel_wait(sentinel_wait_s)
            result.logs = await self.logs.take_async(wait_s, log_limit_bytes)
        return result

    def final_logs(self, wait_s: float, log_limit_bytes: int) -> list[str]:
        """The logs of a container that was removed or died: everything until its output ended."""
        self.logs.wait_ended(wait_s)
        return self.logs.take(0, log_limit_bytes)

    def died_of_oom(self) -> bool:
        """Whether the kernel killed the container for exceeding its memory limit."""
        try:
            self.container.wait(timeout=EXIT_SETTLE_S)
        except (requests.exceptions.RequestException, docker.errors.NotFound):
            pass  # still running, or already removed: read what the engine knows
        try:
            self.container.reload()
        except docker.errors.NotFound:
            return False
        return bool(self.container.attrs.get("State", {}).get("OOMKilled"))

    def remove(self) -> None:
        """Kill and remove the container; idempotent."""
        self.state = "removed"
        self.client.close()
        self.warm_client.close()
        engine.remove_container(self.container)
        self.logs.close()


def _image_labels(client, ref: str) -> dict | None:
    try:
        return client.images.get(ref).labels or {}
    except docker.errors.ImageNotFound:
        return None


def _first_line(err: Exception) -> str:
    text = str(getattr(err, "explanation", None) or err).strip()
    return text.splitlines()[0][:300] if text else type(err).__name__
