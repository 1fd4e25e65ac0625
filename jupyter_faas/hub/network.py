"""The network of the hub's user containers, and what they may reach from it.

A bridge network without inter-container traffic (one user's server cannot reach
another's), confined by the function server's own ``EgressFirewall``: from a
user container the host answers only on the ports named (the hub's API and the
faas service); the Docker engine, the registry, the function server and every
other service of the host stay out of reach, and so does everything beyond the
host unless a site allows it (a package mirror, a proxy).
"""

from __future__ import annotations

import docker.errors

from .. import engine
from ..errors import ConfigError
from ..server.pool import firewall


def ensure_user_network(
    name: str,
    host_ports: list[int],
    allowed_egress: list[str] = (),
    labels: dict[str, str] | None = None,
) -> str:
    """Make (or reuse) the user network ``name`` and (re)install its firewall.

    Args:
        name: The Docker network's name.
        host_ports: TCP ports of this host user containers may reach (hub API, service).
        allowed_egress: More destinations, in the firewall's forms ("10.1.0.0/16",
            "mirror.example.org:443").
        labels: Labels for a network made here.

    Returns:
        The network's gateway address: where user containers reach this host.

    Raises:
        ConfigError: the firewall cannot be installed (not root, no iptables) or an
            allowed destination is malformed.
    """
    client = engine.docker_client()
    found = [n for n in client.networks.list(names=[name]) if n.name == name]
    if found:
        network = client.networks.get(found[0].id)
    else:
        network = client.networks.create(
            name,
            driver="bridge",
            labels=engine.labels("hub", **(labels or {})),
            options={"com.docker.network.bridge.enable_icc": "false"},
        )
        network.reload()
    reason = firewall.unavailable()
    if reason:
        raise ConfigError(
            f"The user network {name} cannot be confined: {reason}.",
            hint="Run the hub as root on a host with iptables (`bash scripts/up.sh --hub`).",
        )
    try:
        allowed = [firewall.Destination(None, port) for port in host_ports]
        for entry in allowed_egress:
            allowed += firewall.parse_destination(entry)
    except ValueError as err:
        raise ConfigError(f"FAAS_HUB_ALLOWED_EGRESS: {err}") from None
    firewall.EgressFirewall(network.id, firewall.bridge_of(network.attrs), allowed).install()
    return engine.gateway_of(network)


def remove_user_network(name: str) -> None:
    """Remove the firewall and the network ``name`` (its containers must be gone)."""
    client = engine.docker_client()
    try:
        network = client.networks.get(name)
    except docker.errors.NotFound:
        return
    firewall.EgressFirewall(network.id, firewall.bridge_of(network.attrs), []).remove()
    try:
        network.remove()
    except docker.errors.NotFound:
        pass
