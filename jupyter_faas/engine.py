"""The one place that talks to the Docker engine's API.

Everything else asks this module for a client, for labels and for the small
idempotent operations (remove a container, look up an image) so that errors
from docker-py turn into messages a scientist can act on, in one place.
"""

from __future__ import annotations

import io
import ipaddress
import os
from collections.abc import Callable, Iterator

import docker
import docker.errors
import requests.exceptions

from .errors import BaseImageMissing, EngineUnavailable

#: Label put on every container, image, network and volume jupyter-faas creates.
LABEL = "org.jupyter-faas"
#: Label naming the component that created a container (``test``, ``server``, ``build``).
ROLE_LABEL = "org.jupyter-faas.role"

_clients: dict[str, docker.DockerClient] = {}


def docker_client(base_url: str = "") -> docker.DockerClient:
    """A cached docker-py client for ``base_url`` (default: ``DOCKER_HOST`` or the local socket).

    Raises:
        EngineUnavailable: the engine does not answer; the message says how to start it.
    """
    key = base_url or os.environ.get("DOCKER_HOST", "")
    client = _clients.get(key)
    if client is not None:
        return client
    try:
        if key:
            client = docker.DockerClient(base_url=key, timeout=300)
        else:
            client = docker.from_env(timeout=300)
        client.ping()
    except (docker.errors.DockerException, requests.exceptions.RequestException) as err:
        where = key or "unix:///var/run/docker.sock"
        raise EngineUnavailable(
            f"The Docker engine at {where} is not reachable ({_short(err)}).",
            hint="Start it (as root: `dockerd &`, or `bash scripts/setup.sh`), or point "
            "DOCKER_HOST / c.DockerBuilder.docker_url at a running engine.",
        ) from err
    _clients[key] = client
    return client


def unavailable(base_url: str = "") -> str:
    """Why the engine at ``base_url`` (default: ``DOCKER_HOST``) cannot be used (one short
    line), or "" when it answers."""
    try:
        docker_client(base_url)
    except EngineUnavailable:
        where = base_url or os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"
        return f"No Docker engine answers at {where}"
    return ""


def labels(role: str, **extra: str) -> dict[str, str]:
    """The labels for an object jupyter-faas creates, so cleanup touches only ours."""
    return {LABEL: "1", ROLE_LABEL: role, **extra}


def has_image(client: docker.DockerClient, ref: str) -> bool:
    """Whether the engine holds an image called ``ref``."""
    try:
        client.images.get(ref)
    except docker.errors.ImageNotFound:
        return False
    return True


def require_base_image(client: docker.DockerClient, ref: str) -> str:
    """Return the id of base image ``ref``, pulling it if absent.

    Raises:
        BaseImageMissing: neither local nor pullable; names the command that makes one.
    """
    try:
        return client.images.get(ref).id
    except docker.errors.ImageNotFound:
        pass
    try:
        return client.images.pull(ref).id
    except docker.errors.APIError as err:
        raise BaseImageMissing(
            f"The base image {ref!r} is not on this Docker engine and could not be pulled "
            f"({_short(err)}).",
            hint="Make one offline from Debian packages with `jupyter faas base build`, "
            "or set c.FaaSImages.base_image to an image you can pull (e.g. python:3.11-slim).",
        ) from err


def build_image(
    client: docker.DockerClient,
    context: io.BytesIO,
    tag: str,
    on_line: Callable[[str], None],
    failed: Callable[[list[str]], Exception],
    **options,
) -> None:
    """Build ``tag`` from an in-memory build context (``image.tar_context``).

    Each line the build prints goes to ``on_line``; when the build or the engine fails,
    raises ``failed(lines)`` with what the build printed so far (its error last).
    ``options``: more arguments of the engine's build call (``buildargs``, ``labels``).
    """
    log: list[str] = []
    try:
        stream = client.api.build(
            fileobj=context,
            custom_context=True,
            tag=tag,
            rm=True,
            forcerm=True,
            decode=True,
            **options,
        )
        for chunk in stream:
            if "error" in chunk:
                log.append(chunk["error"])
                raise failed(log)
            for line in chunk.get("stream", "").splitlines():
                if line.strip():
                    log.append(line)
                    on_line(line)
    except docker.errors.APIError as err:
        log.append(str(err))
        raise failed(log) from err


def remove_container(container) -> None:
    """Force-remove ``container``; a container that is already gone counts as removed."""
    try:
        container.remove(force=True)
    except docker.errors.NotFound:
        pass
    except docker.errors.APIError as err:
        # "removal already in progress" is a conflict that also ends in removal.
        if err.status_code != 409:
            raise


def container_address(container, network: str = "bridge") -> str:
    """The IP address of a running ``container`` on ``network`` (reachable from the host)."""
    container.reload()
    networks = container.attrs["NetworkSettings"]["Networks"]
    net = networks.get(network) or next(iter(networks.values()))
    return net["IPAddress"]


def gateway_of(network) -> str:
    """The gateway address of a Docker ``network`` (the host's side of its bridge). Docker
    leaves it out of the default bridge's IPAM config; there it is the subnet's first host."""
    ipam = network.attrs["IPAM"]["Config"][0]
    return ipam.get("Gateway") or str(ipaddress.ip_network(ipam["Subnet"])[1])


def containers_with_label(client: docker.DockerClient, **label_values: str) -> Iterator:
    """All containers (running or not) carrying our label and the given label values."""
    filters = [LABEL] + [f"{k}={v}" for k, v in label_values.items()]
    return iter(client.containers.list(all=True, filters={"label": filters}))


def remove_labelled(client: docker.DockerClient, **label_values: str) -> dict[str, int]:
    """Remove every container, network, volume and image carrying our label and these values.

    Containers go first (forced), so the networks, volumes and images they hold are free.
    Objects that vanish meanwhile count as removed. Used by test teardown and clean-up
    commands; pass a run or owner label so nothing else is touched.

    Args:
        **label_values: Label keys and values that all must match, e.g.
            ``{"org.jupyter-faas.run": "abc"}``; at least one is required.

    Returns:
        How many objects of each kind were removed.

    Raises:
        ValueError: no label value was given (that would remove everything of ours).
    """
    if not label_values:
        raise ValueError("remove_labelled needs at least one label value to narrow the removal")
    filters = {"label": [LABEL] + [f"{k}={v}" for k, v in label_values.items()]}
    removed = {"containers": 0, "networks": 0, "volumes": 0, "images": 0}
    for container in client.containers.list(all=True, filters=filters):
        remove_container(container)
        removed["containers"] += 1
    for network in client.networks.list(filters=filters):
        try:
            network.remove()
        except docker.errors.NotFound:
            pass
        removed["networks"] += 1
    for volume in client.volumes.list(filters=filters):
        try:
            volume.remove(force=True)
        except docker.errors.NotFound:
            pass
        removed["volumes"] += 1
    pending = [image.id for image in client.images.list(all=True, filters=filters)]
    # An image built FROM another of ours must go first (409 otherwise): a few passes suffice.
    for _ in range(len(pending) + 1):
        conflicts = []
        for image_id in pending:
            try:
                client.images.remove(image_id, force=True)
            except docker.errors.NotFound:
                pass
            except docker.errors.APIError as err:
                if err.status_code != 409:
                    raise
                conflicts.append(image_id)
                continue
            removed["images"] += 1
        if not conflicts or len(conflicts) == len(pending):
            pending = conflicts
            break
        pending = conflicts
    if pending:
        raise docker.errors.APIError(f"images still in use after removal: {', '.join(pending)}")
    return removed


def _short(err: Exception) -> str:
    text = str(getattr(err, "explanation", None) or err)
    return text.strip().splitlines()[0][:300] if text.strip() else type(err).__name__
