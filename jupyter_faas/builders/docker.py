"""``DockerBuilder``: the builder interface on the local Docker engine.

Test containers are kept warm per dependency image and memory limit, and
started with ``FAAS_ALLOW_REINIT=1``: a code-only edit is one ``/init`` and one
``/run`` on a container whose libraries are already imported, never a rebuild.
"""

from __future__ import annotations

import os
import re
import socket
import time
from dataclasses import asdict

import docker.errors
from traitlets import Dict, Instance, List, Unicode, default

from .. import engine, image, runtime
from ..actionclient import ActionClient
from ..bundle import Bundle
from ..errors import BuildError, ConfigError, RegistryError
from ..registry import FaaSRegistry
from ..runtime import protocol
from .interface import BaseImage, BaseUnusable, BuiltImage, Progress, PushedImage, no_progress
from .local import LocalBuilder

_OWNER_LABEL = "org.jupyter-faas.owner"
_FUNCTION_LABEL = "org.jupyter-faas.function"
#: A manifest digest, as a registry gives it.
_DIGEST = re.compile(r"\Asha256:[0-9a-f]{64}\Z")
#: The network test containers join by default (shared by the builders of one engine).
TEST_NETWORK = "faas-tests"


class DockerBuilder(LocalBuilder):
    """Builds, tests and pushes with the Docker engine next to the kernel."""

    sandbox_word = "container"

    docker_url = Unicode(
        help="""Docker engine URL, e.g. "unix:///var/run/docker.sock" or
        "tcp://127.0.0.1:2375". Empty means $DOCKER_HOST, else the local socket.""",
    ).tag(config=True)

    extra_labels = Dict(
        help="""Labels added to every image and container this builder creates, e.g.
        {"org.example.project": "sfx"}, for a site's own bookkeeping and cleanup.""",
    ).tag(config=True)

    registry = Instance(FaaSRegistry, help="Where push sends dependency images.")

    network = Unicode(
        TEST_NETWORK,
        help=f"""Docker network the test containers join. "{TEST_NETWORK}" (the default): a
        bridge network without inter-container traffic, made when missing and shared by
        every builder on the engine (never removed); when this process runs as root (a
        hub's build service) it also gets the function server's egress firewall, so test
        containers reach no service of this host and nothing outside but
        c.DockerBuilder.allowed_egress. Another name: that existing network, as it is
        (e.g. "bridge", Docker's default, where containers reach one another).""",
    ).tag(config=True)

    allowed_egress = List(
        Unicode(),
        help="""What test containers may reach when the firewall applies, in the form of
        c.DockerInvoker.allowed_egress (CIDR, address, host name or "host:PORT", each with
        an optional :port). Empty (the default): nothing.""",
    ).tag(config=True)

    @default("registry")
    def _registry_default(self):
        return FaaSRegistry(parent=self.parent or self)

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self._owner = f"{socket.gethostname()}-{os.getpid()}"
        self._network_ready = False

    @property
    def client(self):
        return engine.docker_client(self.docker_url)

    @classmethod
    def unavailable(cls) -> str:
        return engine.unavailable()

    # -- build -------------------------------------------------------------------------------

    def build(
        self, bundle: Bundle, progress: Progress = no_progress, base: BaseImage | None = None
    ) -> BuiltImage:
        return self.build_requirements(bundle.requirements, progress, base)

    def build_requirements(
        self, requirements: str, progress: Progress = no_progress, base: BaseImage | None = None
    ) -> BuiltImage:
        """Build (or reuse) the dependency image for a requirements.txt text.

        With ``base`` (a published function's image) the image starts FROM it, pinned
        by digest, and the key hashes that digest in place of the site's base image.
        """
        start = time.perf_counter()
        client = self.client
        if base is None:
            from_ref, derived_from = self.images.base_image, ""
            base_id = engine.require_base_image(client, from_ref)
        else:
            from_ref, derived_from = self.ensure_base(base, progress), base.ref
            base_id = base.digest
        key = image.dependency_key(base_id, requirements, runtime.RUNTIME_VERSION)
        ref = self.images.local_ref(key)
        based = asdict(base) if base is not None else None
        try:
            found = client.images.get(ref)
            progress(
                {"step": "build", "message": f"Reusing dependency image {ref}", "progress": 1.0}
            )
            return BuiltImage(ref, key, found.id, True, time.perf_counter() - start, based)
        except docker.errors.ImageNotFound:
            pass
        progress({"step": "build", "message": f"Building dependency image {ref}", "progress": 0.0})
        context = image.build_context(from_ref, key, requirements, self.site, derived_from)
        engine.build_image(
            client,
            context,
            ref,
            lambda line: progress({"step": "build", "message": line, "progress": None}),
            lambda log: _build_error(ref, log),
            buildargs=self.site.proxy_env(),
            labels=self.extra_labels or None,
        )
        found = client.images.get(ref)
        progress({"step": "build", "message": f"Built {ref}", "progress": 1.0})
        return BuiltImage(ref, key, found.id, False, time.perf_counter() - start, based)

    def ensure_base(self, base: BaseImage, progress: Progress = no_progress) -> str:
        """``base`` on this engine, pulled from its registry by digest when missing.

        Returns:
            Its pinned reference (``repository@digest``), for FROM.

        Raises:
            BaseUnusable: not pinned by a digest, not pullable, or not a dependency image
                of jupyter-faas (no virtualenv and runtime to build on).
        """
        if not _DIGEST.match(base.digest or ""):
            raise BaseUnusable(
                f"{base.ref} runs on {base.image}, which has no registry digest "
                f"({base.digest or 'none recorded'}), so it cannot be pinned as a base.",
                hint=f"Ask {base.owner} to deploy and publish it again from a notebook with a "
                "container engine (container-less functions have no image).",
            )
        pinned = base.pinned
        client = self.client
        try:
            found = client.images.get(pinned)
        except docker.errors.ImageNotFound:
            found = None
        except docker.errors.APIError as err:
            raise BaseUnusable(f"The engine cannot look up {pinned}: {err}") from err
        if found is None:
            progress({"step": "build", "message": f"Pulling the base {pinned}", "progress": None})
            auth = (
                self.registry.auth_config() if pinned.startswith(f"{self.registry.url}/") else None
            )
            try:
                found = client.images.pull(base.repository, tag=base.digest, auth_config=auth)
            except docker.errors.APIError as err:
                raise BaseUnusable(
                    f"The image of {base.ref} ({pinned}) cannot be pulled: "
                    f"{getattr(err, 'explanation', None) or err}",
                    hint="Its registry must be reachable from this builder with "
                    "c.FaaSRegistry's credentials; if its owner removed the image, ask "
                    f"{base.owner} to deploy and publish it again.",
                ) from err
        # The key label, not the role: a site's extra labels may set the role, never the key.
        if not (found.labels or {}).get(image.KEY_LABEL):
            raise BaseUnusable(
                f"The image of {base.ref} ({base.image}) is not a jupyter-faas dependency "
                "image, so there is no virtualenv and runtime to add requirements to.",
                hint="Only functions deployed by jupyter-faas can be a base. Invoke this "
                f"one, or use it in a sequence: %faas sequence NAME {base.ref} …",
            )
        return pinned

    def ensure_runtime_image(self, progress: Progress = no_progress) -> str:
        """The runtime image with no extra requirements, tagged ``protocol.RUNTIME_IMAGE``."""
        built = self.build_requirements("", progress)
        repo, tag = protocol.RUNTIME_IMAGE.rsplit(":", 1)
        self.client.images.get(built.ref).tag(repo, tag)
        return protocol.RUNTIME_IMAGE

    # -- test --------------------------------------------------------------------------------

    def _start_sandbox(self, bundle: Bundle, built: BuiltImage, memory: int, progress: Progress):
        self.remove_stale_containers()
        progress(
            {
                "step": "test",
                "message": f"Starting a test container of {built.ref}",
                "progress": None,
            }
        )
        # Confined as the server's action containers (the same code runs there); imported
        # here so a kernel that never tests pays nothing for the server's modules.
        from ..server.pool.containers import Hardening

        self._ensure_network()
        container = self.client.containers.run(
            built.ref,
            detach=True,
            network=self.network,
            mem_limit=f"{memory}m",
            memswap_limit=f"{memory}m",
            **Hardening().run_options(),
            environment={
                protocol.ALLOW_REINIT_ENV: "1",
                protocol.SECRET_ENV: (secret := protocol.new_secret()),  # only we /init, /run it
                "__OW_API_HOST": self.api_host,
                **self.site.container_env(),
            },
            volumes=self.site.container_volumes(),
            labels=engine.labels(
                "test",
                **{_OWNER_LABEL: self._owner, _FUNCTION_LABEL: bundle.name},
                **self.extra_labels,
            ),
        )
        try:
            sandbox = _TestContainer(container, self.log_wait, secret)
            sandbox.action.wait_ready(self.start_timeout)
        except Exception:
            engine.remove_container(container)
            raise
        return sandbox

    def _ensure_network(self) -> None:
        """Make our test network (and its firewall, as root) once per builder."""
        if self._network_ready or self.network != TEST_NETWORK:
            return
        from ..server.pool import firewall

        allowed = None
        if not firewall.unavailable():
            try:
                allowed = [d for e in self.allowed_egress for d in firewall.parse_destination(e)]
            except ValueError as err:
                raise ConfigError(f"c.DockerBuilder.allowed_egress: {err}") from None
        firewall.confined_network(
            self.client,
            self.network,
            engine.labels("test", **self.extra_labels),
            allowed,
            "c.DockerBuilder.network",
        )
        self._network_ready = True

    def remove_stale_containers(self) -> None:
        """Remove test containers of kernels on this host that are no longer running."""
        host = socket.gethostname()
        for container in engine.containers_with_label(self.client, **{engine.ROLE_LABEL: "test"}):
            owner = container.labels.get(_OWNER_LABEL, "")
            name, _, pid = owner.rpartition("-")
            if name == host and pid.isdigit() and not _pid_alive(int(pid)):
                engine.remove_container(container)

    # -- push --------------------------------------------------------------------------------

    def published(self, image: BuiltImage) -> PushedImage | None:
        ref = self.registry.image_ref(image.key)
        digest = self.registry.manifest_digest(ref)
        return PushedImage(ref, digest) if digest else None

    def push(self, image: BuiltImage, progress: Progress = no_progress) -> PushedImage:
        """Push with one progress message per layer state change (not per byte count).

        The fraction still moves with the bytes; only messages that say something new
        ("Preparing", "Pushing", "Pushed", "Layer already exists") are sent.
        """
        start = time.perf_counter()
        self.registry.check()
        target = self.registry.image_ref(image.key)
        repository, tag = target.rsplit(":", 1)
        self.client.images.get(image.ref).tag(repository, tag)
        progress({"step": "push", "message": f"Pushing {target}", "progress": 0.0})
        layers: dict[str, tuple[int, int]] = {}
        states: dict[str, str] = {}
        digest = ""
        try:
            events = self.client.api.push(
                repository, tag, stream=True, decode=True, auth_config=self.registry.auth_config()
            )
            for event in events:
                if "error" in event:
                    raise _push_error(self.registry, event["error"])
                layer, status = event.get("id", ""), event.get("status", "")
                detail = event.get("progressDetail") or {}
                if layer and detail.get("total"):
                    layers[layer] = (detail.get("current", 0), detail["total"])
                elif layer and status in ("Pushed", "Layer already exists"):
                    done = layers.get(layer, (1, 1))[1]
                    layers[layer] = (done, done)
                digest = (event.get("aux") or {}).get("Digest", digest)
                fraction = None
                if layers:
                    fraction = sum(c for c, _ in layers.values()) / max(
                        sum(t for _, t in layers.values()), 1
                    )
                if not status or (layer and states.get(layer) == status):
                    if fraction is not None:
                        progress({"step": "push", "message": "", "progress": fraction})
                    continue
                if layer:
                    states[layer] = status
                message = f"{layer} {status}".strip()
                progress({"step": "push", "message": message, "progress": fraction})
        except docker.errors.APIError as err:
            raise _push_error(self.registry, str(err)) from err
        progress({"step": "push", "message": f"Pushed {target} {digest}", "progress": 1.0})
        return PushedImage(target, digest, time.perf_counter() - start)


class _TestContainer:
    """A warm test container as a ``Sandbox``: its runtime's client and its logs."""

    def __init__(self, container, log_wait: float, secret: str | None = None):
        self.container = container
        self.action = ActionClient(engine.container_address(container), secret=secret)
        self._log_wait = log_wait
        self._since = time.time()

    def mark(self) -> None:
        self._since = time.time()

    def alive(self) -> bool:
        # A container that died is found by its run (ContainerGone) and discarded then.
        return True

    def logs(self, wait: bool, token: str | None = None) -> list[str]:
        deadline = time.monotonic() + (self._log_wait if wait else 0)
        end = protocol.marker(token)
        while True:
            try:
                raw = self.container.logs(stdout=True, stderr=True, since=self._since)
            except docker.errors.NotFound:
                return []
            lines = raw.decode("utf-8", errors="replace").splitlines()
            if lines.count(end) >= 2 or time.monotonic() >= deadline:
                return [line for line in lines if line != end]
            time.sleep(0.005)

    def exit_state(self) -> tuple[bool, object]:
        try:
            self.container.reload()
            state = self.container.attrs["State"]
        except docker.errors.NotFound:
            state = {}
        return bool(state.get("OOMKilled")), state.get("ExitCode", "unknown")

    def remove(self) -> None:
        self.action.close()
        engine.remove_container(self.container)


_CA_PROBLEM = re.compile(r"CERTIFICATE_VERIFY_FAILED|SSLError|certificate verify failed", re.I)
_NETWORK_PROBLEM = re.compile(
    r"Failed to establish a new connection|Name or service not known|ProxyError", re.I
)
_NO_DISTRIBUTION = re.compile(r"No matching distribution found for (\S+)")


def _build_error(ref: str, log: list[str]) -> BuildError:
    text = "\n".join(log)
    tail = "\n".join(log[-15:])
    if _CA_PROBLEM.search(text):
        hint = (
            "pip inside the build does not trust the HTTPS certificate it was shown: set "
            "c.FaaSSite.ca_bundle (or $FAAS_CA_BUNDLE) to your site's CA bundle, e.g. "
            "/etc/ssl/certs/ca-certificates.crt."
        )
    elif missing := _NO_DISTRIBUTION.search(text):
        hint = (
            f"pip found no release of {missing.group(1)} for the image's Python: check the "
            "version pin in requirements.txt, c.FaaSImages.base_image, or c.FaaSSite.pip_index_url."
        )
    elif _NETWORK_PROBLEM.search(text):
        hint = "pip could not reach the package index: set c.FaaSSite.https_proxy or c.FaaSSite.pip_index_url."
    else:
        hint = "Read the build log above; the bundle is kept, fix requirements.txt or the settings and build again."
    return BuildError(
        f"Building the dependency image {ref} failed:\n{tail}", hint=hint, detail=text
    )


def _push_error(registry: FaaSRegistry, message: str) -> RegistryError:
    lowered = message.lower()
    if (
        "unauthorized" in lowered
        or "authentication required" in lowered
        or "no basic auth" in lowered
    ):
        hint = (
            "The registry refused the credentials: set c.FaaSRegistry.username and "
            "$FAAS_REGISTRY_PASSWORD."
        )
    elif "connection refused" in lowered or "no such host" in lowered or "timeout" in lowered:
        hint = f"The registry {registry.url} is not reachable: start it or fix c.FaaSRegistry.url."
    else:
        hint = "Check the registry's log and c.FaaSRegistry settings."
    return RegistryError(f"Pushing to {registry.url} failed: {message.strip()}", hint=hint)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
