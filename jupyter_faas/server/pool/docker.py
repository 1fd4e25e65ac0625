"""``DockerInvoker``: runs activations in a pool of warm action containers on the Docker engine.

It plays the part of OpenWhisk's invoker and container pool on one machine
(protocols.md B.1-B.4): a container per action version, reused while warm,
one activation at a time; prewarmed runtime containers for Python code;
idle containers reaped, a memory budget enforced by evicting idle ones.

Lifecycle of a container slot: ``prewarm`` (runtime started without code) or
a cold start → ``busy`` (one activation) → ``idle`` (warm, reusable by the
same ``action_key``) → ``busy`` … → removed (idle too long, evicted, recycled
after ``max_activations_per_container``, or failed). Any failure of a
container (timeout, death, init refused) removes it.

Every container is confined as if its code and its neighbours were hostile
(:class:`~.containers.Hardening`: not root, no capabilities, read-only root, bounded
/tmp, pids, CPU and logs), joins a network without inter-container traffic, and
carries its server's owner id, so servers sharing an engine leave each other alone.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import docker
import docker.errors
import requests.exceptions
from traitlets import (
    Bool,
    Dict,
    Enum,
    Float,
    Instance,
    Integer,
    List,
    TraitError,
    Unicode,
    default,
    validate,
)

from ... import engine
from ...errors import ConfigError
from ...runtime import protocol
from ...site import FaaSSite
from ..entities import now_ms
from . import firewall
from .containers import (
    ACTION_LABEL,
    INSTANCE_LABEL,
    OWNER_LABEL,
    PREWARM_LABEL,
    ActionContainer,
    Hardening,
    PullFailed,
    ensure_image,
    wants_refresh,
)
from .executor import BlockingCalls
from .firewall import Destination, EgressFirewall
from .outcomes import failed_outcome, init_failed, internal, run_result
from .slots import (
    FINAL_LOGS_WAIT_S,
    JobRejected,
    NoCapacity,
    SlotPool,
    SlotSpec,
    activations_limit,
)
from .types import DEVELOPER_ERROR, ActivationJob, RunOutcome

#: Memory of prewarm containers; only actions with this memory limit use them (as OpenWhisk).
PREWARM_MEMORY_MB = 256
_NAME_RE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]*$")
_NAME_FIELDS = {"namespace": "guest", "action": "pkg-hello", "n": 1, "instance": "0a1b2c3d"}
#: File in the server's data directory holding the id its containers are labelled with.
OWNER_FILE = "invoker-owner"
_OWNER_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_USER_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*(:[A-Za-z0-9_][A-Za-z0-9_.-]*)?$")
_CAP_RE = re.compile(r"^[A-Za-z_]+$")
_HARDENED = Hardening()
#: Fewer processes than this cannot run the runtime (its threads count as processes).
MIN_PIDS = 16
#: Name prefix of the network an invoker makes for its containers (c.DockerInvoker.network "").
OWN_NETWORK_PREFIX = "faas-net-"


@dataclass
class _Spec(SlotSpec):
    image: str
    sentinelled: bool
    refresh: bool


class DockerInvoker(SlotPool):
    """Runs :class:`ActivationJob` s in Docker containers and reports :class:`RunOutcome` s."""

    sandbox, sandboxes = "container", "containers"

    @classmethod
    def unavailable(cls) -> str:
        return engine.unavailable()

    limit_trait = "max_activations_per_container"
    nonzero_counts = ("docker_slow_threads", "docker_quick_threads")
    reap_errors = (docker.errors.DockerException, requests.exceptions.RequestException)

    python_image = Unicode(
        protocol.RUNTIME_IMAGE,
        help="""Our runtime image: it runs the default Python kind (python:3.x, code sent
        through /init) and native actions. Prewarm containers are started from it. It is
        never refreshed from a registry; it is pulled only when absent and its name has a
        registry host (or c.DockerInvoker.registry is set). Example: "jupyter-faas-runtime:latest".""",
    ).tag(config=True)

    registry = Unicode(
        help="""Registry host[:port] to pull images from when they are not on the Docker
        engine and their name has no registry host, e.g. "127.0.0.1:5000". Images whose
        name has a host (127.0.0.1:5000/fn:1) are pulled from that host when absent, and
        before every cold start when tagged latest or untagged (a failed refresh falls
        back to the local copy). Empty: plain names must be on the engine.
        Default: $FAAS_REGISTRY or empty.""",
    ).tag(config=True)

    network = Unicode(
        help=f"""Docker network the action containers join. The server reaches each
        container at its IP on this network, port 8080 (no ports are published), so the
        server must be able to route to it (a server on the Docker host can). Empty (the
        default): a bridge network "{OWN_NETWORK_PREFIX}<owner>" (c.DockerInvoker.owner)
        that the invoker creates and labels, with inter-container communication disabled,
        so an action cannot reach its neighbours; it is removed at stop. A name: that
        existing network, as it is (never removed). Example: "bridge" (Docker's default
        network, where containers reach one another).""",
    ).tag(config=True)

    firewall = Enum(
        ["auto", "iptables", "off"],
        "auto",
        help="""Whether action containers are kept from this host's services and from
        everything not in c.DockerInvoker.allowed_egress. "iptables": the invoker adds
        iptables rules to the bridge of each network it creates (the server must run as
        root; it refuses to start otherwise). "auto" (the default): the same when the
        server runs as root, else it warns at start that containers can reach services
        listening on this host's addresses and the internet (and refuses to start if an
        allow-list is set). "off": no rules (Docker's defaults: the host and the
        internet are reachable). Not applied to a named c.DockerInvoker.network.""",
    ).tag(config=True)

    allowed_egress = List(
        Unicode(),
        help="""What every action container may reach, besides answering the server:
        CIDRs, addresses or host names (resolved at start), each with an optional
        :port (TCP and UDP), or "host:PORT" for a service on this Docker host (any of
        its addresses). Empty (the default): nothing; the host's services (Docker API,
        registry, Jupyter, this server's API, a hub) and the internet are out of reach.
        Example: ["pypi.example.org:443", "10.20.0.0/16", "host:3233"] (a package index,
        a data network, and this server, for actions that call it back at
        c.DockerInvoker.api_host).""",
    ).tag(config=True)

    allowed_egress_by_namespace = Dict(
        key_trait=Unicode(),
        value_trait=List(Unicode()),
        help="""More destinations for the containers of activations invoked by one
        namespace, in the form of c.DockerInvoker.allowed_egress (which still applies).
        Such a namespace's containers join a network of their own, made when first
        needed (prewarmed containers do not serve it).
        Example: {"beamline-11": ["10.30.0.5:8000"]}.""",
    ).tag(config=True)

    api_host = Unicode(
        help="""Value of the __OW_API_HOST environment variable in every action container:
        the URL actions use to call this server back, as reachable from inside a
        container, e.g. "http://172.17.0.1:3233". Default: $FAAS_API_HOST or empty.""",
    ).tag(config=True)

    prewarm_count = Integer(
        1,
        help=f"""Number of runtime containers kept started without code, with
        {PREWARM_MEMORY_MB} MB of memory, so that a Python action with that memory limit
        skips the container start (its /init is its only cold-start cost). 0 disables
        prewarming. Example: 2.""",
    ).tag(config=True)

    prewarm_images = Bool(
        True,
        help="""After a cold start from an image built by jupyter-faas (it takes code
        through /init, like the runtime image), keep one container of that image and
        memory limit started without code, so that the next version of a function on the
        same dependency image (a code-only edit) skips the container start, as Python
        actions on the runtime image do. Such a container counts against
        c.DockerInvoker.memory_budget_mb, is evicted after idle ones when room is needed
        and is removed after c.DockerInvoker.idle_timeout_s unused. Namespaces with a
        network of their own (c.DockerInvoker.allowed_egress_by_namespace) do not use them.""",
    ).tag(config=True)

    container_name_template = Unicode(
        "faas-{namespace}-{action}-{n}-{instance}",
        help="""Name of each action container. Fields: {namespace} (the action's namespace),
        {action} (package and action name joined by "-"), {n} (a counter, required: it keeps
        names unique), {instance} (8 hex characters naming this server process). Namespace
        and action are escaped for Docker: characters other than letters, digits, "." and
        "-" become "_" plus their UTF-8 bytes in hex (so "my act" → "my_20act"). Prewarm
        containers use namespace "prewarm" and action "python".
        Example: "wsk-{instance}-{n}-{action}".""",
    ).tag(config=True)

    max_activations_per_container = activations_limit("container")

    extra_labels = Dict(
        value_trait=Unicode(),
        help="""Extra Docker labels put on every action container. They also narrow the
        crash cleanup at start: only containers with role "server", this invoker's owner
        (c.DockerInvoker.owner) AND these labels are removed.
        Example: {"org.jupyter-faas.site": "lab1"}.""",
    ).tag(config=True)

    owner = Unicode(
        help=f"""Id put on every action container as the label {OWNER_LABEL}; the crash
        cleanup at start removes only containers with this id, so servers sharing one
        Docker engine never remove each other's containers, while a restarted server still
        removes the orphans of its crashed predecessor. 1-64 letters, digits, "_", "." or
        "-". Default: a random id stored in the server's data directory (file
        {OWNER_FILE}), i.e. one per data directory; without a server (no data directory)
        a new id per invoker, which then removes no earlier containers.
        Example: "lab1-server".""",
    ).tag(config=True)

    user = Unicode(
        _HARDENED.user,
        help="""User (and group) the action containers run as, "uid[:gid]" or a name the
        image knows. Not root: a process that escapes its action then holds no privileges.
        Empty: the image's own USER (often root). Example: "1000:1000".""",
    ).tag(config=True)

    read_only_root = Bool(
        _HARDENED.read_only,
        help="""Mount the action containers' root filesystem read-only, so an action cannot
        alter the runtime or leave files for the next activation outside /tmp; /tmp is a
        tmpfs (c.DockerInvoker.tmp_size_mb) and the runtime keeps action code in
        /tmp/faas-action. Images that must write elsewhere need False. Example: False.""",
    ).tag(config=True)

    tmp_size_mb = Integer(
        _HARDENED.tmp_mb,
        help="""Size in MB of the writable tmpfs mounted at /tmp in every action container;
        what is written there counts against the action's memory limit. 0: no tmpfs (/tmp
        is then the image's own, which only works with c.DockerInvoker.read_only_root =
        False). Example: 256.""",
    ).tag(config=True)

    pids_limit = Integer(
        _HARDENED.pids_limit,
        help=f"""Most processes and threads an action container may hold at once, so a fork
        bomb stops there instead of exhausting the host. 0: unlimited. At least {MIN_PIDS}
        otherwise (the runtime's own threads count). Example: 1024.""",
    ).tag(config=True)

    cpus = Float(
        _HARDENED.cpus,
        help="""CPUs each action container may use at most (CPU time per wall time, e.g.
        0.5 is half a core), so one action cannot starve the others or the server. It must
        not exceed the Docker host's CPU count. 0: unlimited. Example: 2.""",
    ).tag(config=True)

    log_max_mb = Integer(
        _HARDENED.log_max_mb,
        help="""Size in MB after which the engine rotates an action container's json-file log
        (the activation logs are read from the container's output stream, not from this
        file), so a chatty action cannot fill the host's disk. 0: the engine's default log
        driver and options (often unbounded). Example: 50.""",
    ).tag(config=True)

    log_max_files = Integer(
        _HARDENED.log_max_files,
        help="""Rotated json-file logs kept per action container (with
        c.DockerInvoker.log_max_mb; a disk bound of their product). At least 1.
        Example: 5.""",
    ).tag(config=True)

    cap_drop = List(
        Unicode(),
        list(_HARDENED.cap_drop),
        help="""Linux capabilities removed from action containers ("ALL", or names such as
        "NET_RAW"). Default ["ALL"]: an action needs none to serve HTTP on port 8080.
        Empty: Docker's default set stays. Example: ["NET_RAW", "MKNOD"].""",
    ).tag(config=True)

    security_opt = List(
        Unicode(),
        list(_HARDENED.security_opt),
        help="""Docker security options of action containers. Default
        ["no-new-privileges"]: setuid programs cannot regain privileges. Empty: none.
        Example: ["no-new-privileges", "seccomp=/etc/docker/strict.json"].""",
    ).tag(config=True)

    site = Instance(
        FaaSSite,
        help="""The site settings (CA bundle, proxies; c.FaaSSite) given to every action
        container, as to builds and local test containers.""",
    )

    @default("site")
    def _site_default(self):
        return FaaSSite(parent=self.parent or self)

    docker_slow_threads = Integer(
        4,
        help="""Threads for slow Docker calls (container start, image pull, removal), so that
        they never delay quick ones. Example: 4.""",
    ).tag(config=True)

    docker_quick_threads = Integer(
        2,
        help="""Threads for quick Docker calls (inspect, list). Example: 2.""",
    ).tag(config=True)

    @default("registry")
    def _registry_default(self):
        return _env("FAAS_REGISTRY")

    @default("api_host")
    def _api_host_default(self):
        return _env("FAAS_API_HOST")

    @default("owner")
    def _owner_default(self):
        data_dir = getattr(self.parent, "data_dir", "")
        if not data_dir:
            return uuid.uuid4().hex[:16]
        return stored_owner(Path(data_dir) / OWNER_FILE)

    @validate("owner")
    def _validate_owner(self, proposal):
        value = proposal["value"]
        if not _OWNER_RE.match(value):
            raise TraitError(
                f"c.DockerInvoker.owner {value!r} is not a valid owner id: use 1-64 letters, "
                'digits, "_", "." or "-", starting with a letter or digit, e.g. "lab1-server".'
            )
        return value

    @validate("user")
    def _validate_user(self, proposal):
        value = proposal["value"]
        if value and not _USER_RE.match(value):
            raise TraitError(
                f"c.DockerInvoker.user {value!r} is not a Docker user: give uid[:gid] or "
                'names, e.g. "65534:65534", or "" for the image\'s own user.'
            )
        return value

    @validate("tmp_size_mb", "log_max_mb")
    def _validate_mb(self, proposal):
        value = proposal["value"]
        if value < 0:
            raise TraitError(
                f"c.DockerInvoker.{proposal['trait'].name} is {value}, a negative size; give "
                "MB (e.g. 64), or 0 to turn the bound off."
            )
        return value

    @validate("log_max_files")
    def _validate_log_files(self, proposal):
        if proposal["value"] < 1:
            raise TraitError(
                f"c.DockerInvoker.log_max_files is {proposal['value']}; at least 1 file must "
                "be kept (e.g. 3)."
            )
        return proposal["value"]

    @validate("pids_limit")
    def _validate_pids(self, proposal):
        value = proposal["value"]
        if value != 0 and value < MIN_PIDS:
            raise TraitError(
                f"c.DockerInvoker.pids_limit is {value}; the runtime needs at least {MIN_PIDS} "
                "processes and threads (e.g. 256), or 0 for no limit."
            )
        return value

    @validate("cpus")
    def _validate_cpus(self, proposal):
        value = proposal["value"]
        if value != 0 and not value >= 0.01:
            raise TraitError(
                f"c.DockerInvoker.cpus is {value}; give at least 0.01 CPUs (e.g. 1.0), "
                "or 0 for no limit."
            )
        return value

    @validate("cap_drop")
    def _validate_cap_drop(self, proposal):
        for cap in proposal["value"]:
            if not _CAP_RE.match(cap):
                raise TraitError(
                    f"c.DockerInvoker.cap_drop holds {cap!r}, not a capability name; use "
                    'names like "ALL", "NET_RAW" or "CAP_NET_RAW".'
                )
        return proposal["value"]

    @validate("security_opt")
    def _validate_security_opt(self, proposal):
        for option in proposal["value"]:
            if not option.strip():
                raise TraitError(
                    "c.DockerInvoker.security_opt holds an empty option; remove it, e.g. "
                    '["no-new-privileges"].'
                )
        return proposal["value"]

    @validate("container_name_template")
    def _validate_template(self, proposal):
        template = proposal["value"]
        if "{n}" not in template:
            raise TraitError(
                f"c.DockerInvoker.container_name_template {template!r} lacks {{n}}: without the "
                "counter two containers of one action get the same name. Add it, e.g. "
                '"faas-{namespace}-{action}-{n}-{instance}".'
            )
        try:
            sample = template.format(**_NAME_FIELDS)
        except (KeyError, IndexError, ValueError) as err:
            raise TraitError(
                f"c.DockerInvoker.container_name_template {template!r} cannot be filled in ({err}); "
                "the fields are {namespace}, {action}, {n} and {instance}."
            ) from None
        if not _NAME_RE.match(sample):
            raise TraitError(
                f"c.DockerInvoker.container_name_template {template!r} gives {sample!r}, which is "
                "not a valid Docker container name: it must start with a letter or digit and "
                "hold only letters, digits, '_', '.' and '-'."
            )
        return template

    _validate_counts = validate(
        "prewarm_count",
        "max_activations_per_container",
        "docker_slow_threads",
        "docker_quick_threads",
    )(SlotPool._check_count)

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.instance = uuid.uuid4().hex[:8]
        #: Prewarm containers being started, per (image, memory MB).
        self._prewarm_starting: Counter[tuple[str, int]] = Counter()
        self._image_locks: dict[str, asyncio.Lock] = {}
        self._tasks: set[asyncio.Task] = set()
        self._client = None
        self._stream_client = None
        self._last_prewarm_error = ""
        self._hardening: Hardening | None = None
        #: The network the containers join (by default); the networks we made, each
        #: with its firewall (None: none), removed at stop; and per-namespace networks.
        self._network = self.network or "bridge"
        self._own_networks: dict[str, EgressFirewall | None] = {}
        self._namespace_networks: dict[str, str] = {}
        self._network_lock: asyncio.Lock | None = None
        self._egress: list[Destination] | None = None

    # ---- start / stop -------------------------------------------------------------------

    async def start(self) -> None:
        """Remove containers a crashed server left behind, then start prewarming and reaping."""
        self._hardening = self.hardening()
        await asyncio.to_thread(lambda: self.owner)  # the default reads or writes a file
        self._capacity = asyncio.Condition()
        self._calls = BlockingCalls(
            self.docker_slow_threads,
            self.docker_quick_threads,
            self.memory_budget_mb // 128 + self.prewarm_count + 2,
        )
        self._client = engine.docker_client()
        await self._calls.slow(self._ensure_runtime_image)
        # Attached output streams stay silent for as long as a container idles: no read timeout.
        self._stream_client = await self._calls.quick(docker.from_env, timeout=None)
        self._egress = await asyncio.to_thread(self._check_egress)
        self._network_lock = asyncio.Lock()
        if not self.network:
            self._network = await self._calls.slow(
                self._ensure_own_network, OWN_NETWORK_PREFIX + self.owner, self._egress
            )
        orphans = await self._calls.quick(
            lambda: list(engine.containers_with_label(self._client, **self._scope_labels()))
        )
        if orphans:
            self.log.info("removing %d containers left by an earlier server", len(orphans))
            await asyncio.gather(*(self._calls.slow(engine.remove_container, c) for c in orphans))
        self._running = True
        self._refill_prewarm()
        self._start_reaper("faas-invoker-reaper")
        self.log.info(
            "invoker %s (owner %s) started: budget %d MB, %d prewarm, idle timeout %g s, "
            "network %s",
            self.instance,
            self.owner,
            self.memory_budget_mb,
            self.prewarm_count,
            self.idle_timeout_s,
            self._network,
        )

    async def stop(self) -> None:
        """Remove every container of this invoker; safe to call twice."""
        if self._calls is None:
            return
        slots = await self._remove_all(self._tasks)
        # Containers whose start was cut short by the cancellation are found by label.
        if self._client is not None:
            stragglers = await self._calls.quick(self._our_containers, False)
            await asyncio.gather(
                *(self._calls.slow(engine.remove_container, c) for c in stragglers)
            )
        for name, wall in list(self._own_networks.items()):
            await self._calls.slow(self._remove_own_network, name, wall)
        self._own_networks.clear()
        self._namespace_networks.clear()
        if self._stream_client is not None:
            self._stream_client.close()
            self._stream_client = None
        self._calls.shutdown()
        self._calls = None
        self.log.info("invoker %s stopped; removed %d containers", self.instance, len(slots))

    def _check_egress(self) -> list[Destination] | None:
        """The site-wide allowed destinations, or None when no firewall is applied.

        Raises:
            ConfigError: a destination is malformed, or a firewall is asked for (an
                allow-list or "iptables") and this process cannot apply it.
        """
        allows = {"c.DockerInvoker.allowed_egress": self.allowed_egress} | {
            f"c.DockerInvoker.allowed_egress_by_namespace[{ns!r}]": entries
            for ns, entries in self.allowed_egress_by_namespace.items()
        }
        for setting, entries in allows.items():
            for entry in entries:
                try:
                    firewall.parse_destination(entry)
                except ValueError as err:
                    raise ConfigError(f"{setting}: {err}") from None
        if self.firewall == "off" or self.network:
            if self.network and (self.allowed_egress or self.allowed_egress_by_namespace):
                self.log.warning(
                    "c.DockerInvoker.allowed_egress* are not applied: the containers join the "
                    "named network %s as it is (c.DockerInvoker.network)",
                    self.network,
                )
            return None
        why = firewall.unavailable()
        if why:
            if (
                self.firewall == "iptables"
                or self.allowed_egress
                or self.allowed_egress_by_namespace
            ):
                raise ConfigError(
                    f"Action containers cannot be confined to their allowed destinations: {why}.",
                    hint="Run the function server as root (with iptables installed), or set "
                    'c.DockerInvoker.firewall = "off" and leave c.DockerInvoker.allowed_egress* '
                    "empty to run without the egress firewall.",
                )
            self.log.warning(
                "Action containers can reach services listening on this host's addresses and "
                "the internet: no egress firewall, as %s (c.DockerInvoker.firewall). Run the "
                "server as root to apply it.",
                why,
            )
            return None
        return self._destinations(self.allowed_egress)

    @staticmethod
    def _destinations(entries: list[str]) -> list[Destination]:
        return [d for entry in entries for d in firewall.parse_destination(entry)]

    async def _network_for(self, namespace: str) -> str:
        """The network of containers invoked by ``namespace``: its own one when it has
        destinations of its own, else the invoker's."""
        extra = self.allowed_egress_by_namespace.get(namespace)
        if extra is None or self.network:
            return self._network
        async with self._network_lock:
            name = self._namespace_networks.get(namespace)
            if name is None:
                digest = hashlib.sha256(namespace.encode()).hexdigest()[:12]
                allowed = None
                if self._egress is not None:
                    allowed = self._egress + self._destinations(extra)
                name = await self._calls.slow(
                    self._ensure_own_network, f"{OWN_NETWORK_PREFIX}{self.owner}-{digest}", allowed
                )
                self._namespace_networks[namespace] = name
            return name

    def _ensure_own_network(self, name: str, allowed: list[Destination] | None) -> str:
        """Our bridge network ``name`` without inter-container traffic, confined to
        ``allowed`` (None: no firewall); a crashed predecessor's (same owner) is reused."""
        labels = engine.labels("server", **{**self.extra_labels, OWNER_LABEL: self.owner})
        name, wall = firewall.confined_network(
            self._client, name, labels, allowed, "c.DockerInvoker.network"
        )
        self._own_networks[name] = wall
        return name

    def _remove_own_network(self, name: str, wall: EgressFirewall | None) -> None:
        """Remove our network and its firewall; one still in use (a restarted server of
        the same owner runs) or already gone stays as it is, with its rules."""
        try:
            self._client.networks.get(name).remove()
        except docker.errors.NotFound:
            pass
        except docker.errors.APIError as err:
            self.log.info("network %s not removed: %s", name, err)
            return
        if wall is not None:
            wall.remove()

    def hardening(self) -> Hardening:
        """The confinement of every action container, from the settings.

        Raises:
            TraitError: the settings contradict each other.
        """
        if self.read_only_root and not self.tmp_size_mb:
            raise TraitError(
                "c.DockerInvoker.tmp_size_mb is 0 while c.DockerInvoker.read_only_root is True: "
                "the runtime then has no writable /tmp. Give /tmp a size (e.g. 64) or set "
                "read_only_root = False."
            )
        return Hardening(
            user=self.user,
            read_only=self.read_only_root,
            tmp_mb=self.tmp_size_mb,
            pids_limit=self.pids_limit,
            cpus=self.cpus,
            log_max_mb=self.log_max_mb,
            log_max_files=self.log_max_files,
            cap_drop=tuple(self.cap_drop),
            security_opt=tuple(self.security_opt),
        )

    def _ensure_runtime_image(self) -> None:
        """Build our runtime image (base image + runtime, no extra packages) when it is missing."""
        from ...builders.docker import DockerBuilder

        if self.python_image != protocol.RUNTIME_IMAGE or engine.has_image(
            self._client, self.python_image
        ):
            return
        self.log.info("Building the runtime image %s for Python actions", self.python_image)
        DockerBuilder(parent=self).ensure_runtime_image()

    # ---- run ----------------------------------------------------------------------------

    async def run(self, job: ActivationJob) -> RunOutcome:
        """Run one activation: find or start a container, /init if cold, /run, collect logs.

        Never raises for a failing action or container: every failure becomes a
        RunOutcome with OpenWhisk's status code and message.
        """
        accepted_ms = now_ms()
        if not self._running:
            return failed_outcome(accepted_ms, *internal("The function server is shutting down."))
        try:
            spec = self._spec(job)
        except JobRejected as err:
            return failed_outcome(accepted_ms, DEVELOPER_ERROR, {"error": str(err)})
        # A 503 from /init or /run means "this container is shutting down": OpenWhisk runs
        # the activation again on another container; so do we, once.
        for last_try in (False, True):
            try:
                slot, cold = await self._acquire(job, spec)
            except (JobRejected, PullFailed) as err:
                return failed_outcome(accepted_ms, DEVELOPER_ERROR, {"error": str(err)})
            except NoCapacity as err:
                return failed_outcome(accepted_ms, *internal(str(err)))
            except (docker.errors.DockerException, requests.exceptions.RequestException) as err:
                self.log.warning("starting a container for %s failed: %s", job.action_name, err)
                return failed_outcome(accepted_ms, *self._start_failure(spec, err))
            outcome = await self._activate_or_fail(
                job, slot, accepted_ms, self._activate(job, spec, slot, cold, accepted_ms, last_try)
            )
            if outcome is not None:
                return outcome
            self.log.info(
                "container %s of %s answered 503 (shutting down): running %s on another",
                slot.name,
                job.action_name,
                job.activation_id,
            )
        raise AssertionError("unreachable: the last try always returns an outcome")

    async def _activate(
        self,
        job: ActivationJob,
        spec: _Spec,
        slot: ActionContainer,
        cold: bool,
        accepted_ms: int,
        last_try: bool = True,
    ) -> RunOutcome | None:
        """One try on ``slot``; None when the container said it is shutting down (503) and
        this is not the last try, so the caller reschedules.

        A prewarm container to replace (or add) after a cold start is started once this
        activation is over, so that its start does not slow this one down."""
        try:
            return await self._activate_once(job, spec, slot, cold, accepted_ms, last_try)
        finally:
            if slot.restock is not None:
                image, memory_mb = slot.restock
                slot.restock = None
                if image == self.python_image:
                    self._refill_prewarm()
                else:
                    self._prewarm_image(image, memory_mb)

    async def _activate_once(
        self,
        job: ActivationJob,
        spec: _Spec,
        slot: ActionContainer,
        cold: bool,
        accepted_ms: int,
        last_try: bool,
    ) -> RunOutcome | None:
        ex = await self._exchange(job, spec, slot, cold)
        answer = ex.run if ex.run is not None else ex.init
        if not last_try and answer is not None and answer.status == 503:
            await self._discard(slot)
            return None
        peak = None
        logs = ex.logs
        if ex.timed_out_in or ex.gone_in:
            oom = bool(ex.gone_in) and await self._calls.slow(slot.died_of_oom)
            await self._discard(slot)
            logs = await self._calls.activation(
                slot.final_logs, FINAL_LOGS_WAIT_S, spec.log_limit_bytes
            )
            status, result = self._cut_short(ex, spec, oom)
        elif ex.run is None:
            await self._discard(slot)
            status, result = init_failed(ex.init)
        else:
            status, result = run_result(ex.run)
            peak = protocol.peak_memory(ex.run.headers)
            await self._release(slot)
        return self._outcome(ex, status, result, logs, peak, accepted_ms)

    async def _exchange(self, job: ActivationJob, spec: _Spec, slot: ActionContainer, cold: bool):
        """A warm container of our runtime answers /run on the event loop; the rest (cold
        starts, other images) goes through an activation thread."""
        if cold or not slot.sentinelled:
            return await super()._exchange(job, spec, slot, cold)
        return await slot.run_warm(
            self._run_body(job), spec.timeout_ms / 1000, self.sentinel_wait_s, spec.log_limit_bytes
        )

    def _spec(self, job: ActivationJob) -> _Spec:
        kind, code = self._check_kind(job)
        limits = self._limits(job)
        if kind.startswith("python:"):
            image = self.python_image
        else:
            image = job.exec.get("image") or ""
            if not image:
                raise JobRejected(
                    f"The blackbox action {job.action_name} names no image; update it with "
                    'exec {"kind": "blackbox", "image": "registry/name:tag"}.'
                )
        ours = image == self.python_image
        return _Spec(
            image=image,
            code=code,
            **limits,
            sentinelled=ours,
            refresh=not ours and wants_refresh(image),
        )

    def _start_failure(self, spec: _Spec, err: Exception) -> tuple[int, dict]:
        reason = str(getattr(err, "explanation", None) or err).strip().splitlines()[0][:300]
        if spec.image == self.python_image:
            return internal(
                f"The runtime image {spec.image!r} could not be started ({reason}). Check "
                "c.DockerInvoker.python_image and that the image exists (`docker images`)."
            )
        return DEVELOPER_ERROR, {
            "error": f"Failed to start a container from image '{spec.image}': {reason}. "
            "The image must have a CMD that serves the OpenWhisk action protocol on port 8080."
        }

    # ---- container slots ----------------------------------------------------------------

    async def _new_slot(self, job: ActivationJob, spec: _Spec) -> tuple[ActionContainer, bool]:
        """A prewarm container when the job fits one, else a container started for it."""
        network = await self._network_for(job.namespace)
        if spec.code and network == self._network:
            slot = self._take_prewarm(job.action_key, spec.image, spec.memory_mb)
            if slot is not None:
                return slot, True
        labels = await self._ensure_image(spec.image, spec.refresh)
        slot = await self._start_reserved(
            spec.memory_mb,
            lambda: self._calls.slow(
                ActionContainer.start,
                self._client,
                self._stream_client.api,
                image=spec.image,
                name=self._name(job.action_name),
                memory_mb=spec.memory_mb,
                env=self._env(),
                labels=self._labels(**{ACTION_LABEL: job.action_key}),
                network=network,
                volumes=self.site.container_volumes(),
                hardening=self._hardening,
                loop=asyncio.get_running_loop(),
            ),
        )
        slot.action_key = job.action_key
        slot.state = "busy"
        ours = labels.get(engine.LABEL) == "1"
        slot.sentinelled = spec.sentinelled or ours
        if (
            ours
            and self.prewarm_images
            and spec.code
            and not spec.refresh
            and spec.image != self.python_image
            and network == self._network
        ):
            slot.restock = (spec.image, spec.memory_mb)
        return slot, True

    def _take_prewarm(self, action_key: str, image: str, memory_mb: int) -> ActionContainer | None:
        for slot in self._slots.values():
            if slot.state == "prewarm" and slot.image == image and slot.memory_mb == memory_mb:
                slot.state = "busy"
                slot.action_key = action_key
                slot.restock = (image, memory_mb)
                return slot
        return None

    async def _ensure_image(self, ref: str, refresh: bool) -> dict:
        lock = self._image_locks.setdefault(ref, asyncio.Lock())
        async with lock:
            return await self._calls.slow(ensure_image, self._client, ref, self.registry, refresh)

    # ---- prewarm ------------------------------------------------------------------------

    def _prewarm_count(self, image: str, memory_mb: int) -> int:
        started = sum(
            s.state == "prewarm" and s.image == image and s.memory_mb == memory_mb
            for s in self._slots.values()
        )
        return started + self._prewarm_starting[image, memory_mb]

    def _refill_prewarm(self) -> None:
        if not self._running:
            return
        have = self._prewarm_count(self.python_image, PREWARM_MEMORY_MB)
        for _ in range(self.prewarm_count - have):
            self._spawn(self._start_prewarm(self.python_image, PREWARM_MEMORY_MB))

    def _prewarm_image(self, image: str, memory_mb: int) -> None:
        """Start one prewarm container of a function's image unless one is there or starting,
        or the memory budget has no free room for it (it never evicts a warm container)."""
        free = self.memory_budget_mb - self._reserved_mb
        if self._running and free >= memory_mb and not self._prewarm_count(image, memory_mb):
            self._spawn(self._start_prewarm(image, memory_mb))

    async def _start_prewarm(self, image: str, memory_mb: int) -> None:
        """Start one prewarm container; a full budget evicts the least recently used idle one."""
        slot = None
        reserved = False
        self._prewarm_starting[image, memory_mb] += 1
        try:
            await self._reserve(memory_mb)
            reserved = True
            await self._ensure_image(image, False)
            slot = await self._calls.slow(
                ActionContainer.start,
                self._client,
                self._stream_client.api,
                image=image,
                name=self._name(
                    "/prewarm/python" if image == self.python_image else "/prewarm/image"
                ),
                memory_mb=memory_mb,
                env=self._env(),
                labels=self._labels(**{PREWARM_LABEL: "1"}),
                network=self._network,
                volumes=self.site.container_volumes(),
                hardening=self._hardening,
                loop=asyncio.get_running_loop(),
            )
            await self._calls.activation(
                slot.wait_listening, time.monotonic() + self.start_timeout_s
            )
        except Exception as err:
            if reserved:
                self._reserved_mb -= memory_mb
            if slot is not None:
                await self._calls.slow(slot.remove)
            message = str(err)
            # The runtime's are retried on every reaper tick: say it once, not every tick. A
            # function image may be gone meanwhile (deleted, retagged): nothing to warn about.
            quiet = message == self._last_prewarm_error or image != self.python_image
            log = self.log.debug if quiet else self.log.warning
            log("could not start a prewarm container from %s: %s", image, message)
            self._last_prewarm_error = message
            return
        finally:
            self._prewarm_starting[image, memory_mb] -= 1
        slot.sentinelled = True
        self._slots[slot.id] = slot
        self._last_prewarm_error = ""
        await self._notify()

    # ---- reaper -------------------------------------------------------------------------

    async def _dead_check(self):
        running = {c.id for c in await self._calls.quick(self._our_containers, True)}
        return lambda slot: slot.id not in running

    def _after_reap(self) -> None:
        self._refill_prewarm()

    def _expires(self, slot: ActionContainer) -> bool:
        """Prewarm containers of function images go when unused, as idle ones do."""
        return slot.state == "idle" or (slot.state == "prewarm" and slot.image != self.python_image)

    # ---- helpers ------------------------------------------------------------------------

    def _our_containers(self, running_only: bool) -> list:
        # Sparse: a full listing inspects each container and fails on one removed meanwhile.
        filters = {"label": [engine.LABEL, f"{INSTANCE_LABEL}={self.instance}"]}
        if running_only:
            filters["status"] = "running"
        return self._client.containers.list(all=not running_only, sparse=True, filters=filters)

    def _spawn(self, coro) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _name(self, action_name: str) -> str:
        return self.container_name_template.format(
            **self._name_fields(action_name), instance=self.instance
        )

    def _env(self) -> dict:
        """The container environment: the API host and the site's CA and proxy settings."""
        return {"__OW_API_HOST": self.api_host, **self.site.container_env()}

    def _scope_labels(self) -> dict:
        return {engine.ROLE_LABEL: "server", **self.extra_labels, OWNER_LABEL: self.owner}

    def _labels(self, **extra: str) -> dict:
        return engine.labels(
            "server",
            **{
                INSTANCE_LABEL: self.instance,
                **self.extra_labels,
                OWNER_LABEL: self.owner,
                **extra,
            },
        )


def stored_owner(path: Path) -> str:
    """The owner id kept in ``path``, made on first use so that it survives restarts.

    Raises:
        TraitError: the file holds something else; the message says to delete it.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        # Written aside and linked in: a concurrent start reads a whole id or makes none.
        fresh = path.with_name(f".{path.name}.{uuid.uuid4().hex}")
        fresh.write_text(uuid.uuid4().hex[:16] + "\n", encoding="utf-8")
        try:
            os.link(fresh, path)
        except FileExistsError:
            pass  # another start won: use its id
        finally:
            fresh.unlink()
    value = path.read_text(encoding="utf-8").strip()
    if not _OWNER_RE.match(value):
        raise TraitError(
            f"{path} holds {value[:80]!r}, not an owner id. Delete the file (a new id is made; "
            "containers left by the earlier server are then not cleaned up) or set "
            "c.DockerInvoker.owner."
        )
    return value


def _env(name: str) -> str:
    return os.environ.get(name, "")
