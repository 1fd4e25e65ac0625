"""One action container: start it, talk to it, tell how it died, remove it.

Everything here blocks (docker-py, ``http.client``); the Invoker calls it
through :class:`~.executor.BlockingCalls`. The container runs its image's own
CMD, listens on 8080 and is reached at its IP on the Docker network, exactly
as OpenWhisk's invoker does (protocols.md B.1).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

import docker.errors
import requests.exceptions
from docker.utils import parse_repository_tag

from ... import engine
from ...actionclient import ActionClient, ActionResponse, ContainerGone
from .logs import LogCollector

log = logging.getLogger(__name__)

#: Label holding the action key a container was started for (absent on prewarm containers).
ACTION_LABEL = "org.jupyter-faas.action"
#: Label naming the Invoker instance that owns a container.
INSTANCE_LABEL = "org.jupyter-faas.invoker"
#: Label marking a container started without code, waiting for a Python action.
PREWARM_LABEL = "org.jupyter-faas.prewarm"
#: How long to wait for an exited container's state to settle before reading OOMKilled.
EXIT_SETTLE_S = 2.0

_NAME_SAFE = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-")


def escape_name(value: str) -> str:
    """Make ``value`` safe in a Docker container name: others become ``_xx`` (hex of each byte)."""
    out = []
    for char in value:
        if char in _NAME_SAFE:
            out.append(char)
        else:
            out.extend(f"_{byte:02x}" for byte in char.encode())
    return "".join(out)


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


@dataclass
class Exchange:
    """What happened between the Invoker and a container during one activation."""

    start_ms: int = 0
    end_ms: int = 0
    init_ms: int | None = None
    init: ActionResponse | None = None
    run: ActionResponse | None = None
    timed_out_in: str | None = None
    gone_in: str | None = None
    logs: list[str] = field(default_factory=list)


class ActionContainer:
    """A running container, its connection and its log follower.

    Attributes:
        action_key: The action it serves; None while it is a prewarm container.
        state: ``prewarm``, ``idle``, ``busy`` or ``removed``.
        sentinelled: Whether its runtime prints log sentinels (wait for them).
    """

    def __init__(self, container, address: str, logs: LogCollector, memory_mb: int, image: str):
        self.container = container
        self.id = container.id
        self.name = container.name
        self.address = address
        self.client = ActionClient(address)
        self.logs = logs
        self.memory_mb = memory_mb
        self.image = image
        self.action_key: str | None = None
        self.state = "prewarm"
        self.sentinelled = False
        self.activations = 0
        self.last_used = time.monotonic()

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
    ) -> ActionContainer:
        """``docker run`` the image detached with its own CMD and attach to its output.

        The memory limit is also the swap limit (no swap), as OpenWhisk sets it.
        """
        container = client.containers.run(
            image,
            detach=True,
            name=name,
            environment=env,
            volumes=volumes or {},
            labels=labels,
            network=network,
            mem_limit=f"{memory_mb}m",
            memswap_limit=f"{memory_mb}m",
        )
        try:
            address = engine.container_address(container, network)
            logs = LogCollector.attach(stream_api, container.id, container.name)
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

    def exchange(
        self,
        init_value: dict | None,
        run_body: dict,
        timeout_s: float,
        sentinel_wait_s: float,
        log_limit_bytes: int,
    ) -> Exchange:
        """``/init`` (when ``init_value`` is given) then ``/run``, both within ``timeout_s``.

        Logs are collected here only when the container answered; after a
        timeout or a death the Invoker removes the container first and then
        collects them (see :meth:`final_logs`).
        """
        result = Exchange()
        clock = time.monotonic()
        deadline = clock + timeout_s
        result.start_ms = time.time_ns() // 1_000_000
        phase = "init"
        try:
            if init_value is not None:
                self.wait_listening(deadline)
                # The activation's logs start with its /init (import-time output included).
                self.logs.discard()
                result.init = self.client.init(init_value, _remaining(deadline))
                result.init_ms = int((time.monotonic() - clock) * 1000)
            if result.init is None or result.init.status == 200:
                phase = "run"
                result.run = self.client.run(run_body, _remaining(deadline))
        except TimeoutError:
            result.timed_out_in = phase
        except ContainerGone:
            result.gone_in = phase
        result.end_ms = time.time_ns() // 1_000_000
        if result.timed_out_in is None and result.gone_in is None:
            wait = sentinel_wait_s if (self.sentinelled or self.logs.saw_sentinel) else 0.0
            result.logs = self.logs.take(wait, log_limit_bytes)
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
        engine.remove_container(self.container)
        self.logs.close()


def _remaining(deadline: float) -> float:
    return max(0.001, deadline - time.monotonic())


def _image_labels(client, ref: str) -> dict | None:
    try:
        return client.images.get(ref).labels or {}
    except docker.errors.ImageNotFound:
        return None


def _first_line(err: Exception) -> str:
    text = str(getattr(err, "explanation", None) or err).strip()
    return text.splitlines()[0][:300] if text else type(err).__name__
