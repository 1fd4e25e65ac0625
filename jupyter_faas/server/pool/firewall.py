"""What action containers may reach: iptables rules on the bridge of each of our networks.

Docker's own rules let a container on a bridge network reach the whole internet and
every service listening on the host's addresses (the gateway IP of its bridge
included: the Docker API on TCP, the registry, Jupyter, the function server itself,
the hub). For each network the invoker owns, :class:`EgressFirewall` adds two chains:

* ``FAAS-I-<network id>``, jumped to from ``INPUT`` for packets coming in on the
  bridge (to the host itself): answers to connections the host opened (the invoker
  talking to its containers) and the allowed destinations pass, the rest is dropped;
* ``FAAS-F-<network id>``, jumped to from ``DOCKER-USER`` (``FORWARD`` when Docker
  manages no iptables) for packets leaving the bridge: answers and allowed
  destinations go on to Docker's own rules, the rest is dropped.

Changing iptables needs root (CAP_NET_ADMIN in the host's network namespace), so the
server must run as root for it; :func:`unavailable` says why it cannot.
IPv6 is not filtered: Docker networks have none unless a site enables it.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import re
import shutil
import socket
import subprocess
from dataclasses import dataclass

import docker.errors

from ...errors import ConfigError

log = logging.getLogger(__name__)

_ENTRY_RE = re.compile(r"^(?P<host>[A-Za-z0-9_.:/-]+?)(?::(?P<port>\d{1,5}))?$")
IPTABLES_TIMEOUT_S = 20


#: The host part of an allowed destination that means "this Docker host, any of its addresses".
THIS_HOST = "host"


@dataclass(frozen=True)
class Destination:
    """An allowed destination: a network (CIDR) or this host (None), and maybe one port.

    A port allows TCP and UDP to it; no port allows everything to the network.
    """

    network: str | None
    port: int | None = None

    def matches(self, to_host: bool) -> list[list[str]]:
        """iptables match arguments, one list per rule, for traffic to the host itself
        (``to_host``, the INPUT chain) or leaving through the host (forwarded)."""
        if self.network is None and not to_host:
            return []
        where = ["-d", self.network] if self.network else []
        if self.port is None:
            return [where]
        return [[*where, "-p", p, "--dport", str(self.port)] for p in ("tcp", "udp")]


def parse_destination(entry: str) -> list[Destination]:
    """An allowed destination as written in the settings, as :class:`Destination` s.

    Forms: a CIDR (``10.1.0.0/16``), an address (``10.1.2.3``), a host name (resolved
    now, to every IPv4 address it has) or ``host`` (this Docker host: its services on
    any of its addresses), each with an optional ``:port``.

    Raises:
        ValueError: the entry is none of these; the message names it and the forms.
    """
    found = _ENTRY_RE.match(entry.strip())
    port = int(found["port"]) if found and found["port"] else None
    if not found or (port is not None and not 0 < port < 65536):
        raise ValueError(
            f"{entry!r} is not an allowed destination: write a CIDR, an address, a host "
            f"name or {THIS_HOST!r} (this Docker host), each with an optional :port, e.g. "
            f"'10.0.0.0/8', '10.1.2.3:443', 'pypi.example.org:443', '{THIS_HOST}:3233'."
        )
    host = found["host"]
    if host == THIS_HOST:
        return [Destination(None, port)]
    try:
        return [Destination(str(ipaddress.IPv4Network(host, strict=False)), port)]
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None, socket.AF_INET, socket.SOCK_STREAM)
    except OSError as err:
        raise ValueError(f"the allowed destination {entry!r} does not resolve: {err}") from None
    return [Destination(f"{addr}/32", port) for addr in sorted({i[4][0] for i in infos})]


def unavailable() -> str:
    """Why this process cannot change iptables ("" when it can)."""
    if shutil.which("iptables") is None:
        return "the iptables command is not installed"
    if os.geteuid() != 0:
        return "the function server does not run as root"
    return ""


def _iptables(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run(
        ["iptables", "-w", "10", *args],
        capture_output=True,
        text=True,
        timeout=IPTABLES_TIMEOUT_S,
        check=False,
    )
    if check and result.returncode != 0:
        raise RuntimeError(f"iptables {' '.join(args)}: {result.stderr.strip()[:300]}")
    return result


class EgressFirewall:
    """The rules confining one Docker bridge network.

    Args:
        network_id: The Docker network's id (names the chains).
        bridge: Its bridge interface on the host, e.g. ``br-0ae8e5401e32``.
        allowed: Destinations its containers may reach.
    """

    def __init__(self, network_id: str, bridge: str, allowed: list[Destination]):
        self.bridge = bridge
        self.allowed = allowed
        self.in_chain = f"FAAS-I-{network_id[:12]}"
        self.out_chain = f"FAAS-F-{network_id[:12]}"

    def _hooks(self) -> list[tuple[str, str]]:
        """(built-in chain, our chain) pairs: INPUT, and DOCKER-USER or FORWARD."""
        forward = (
            "DOCKER-USER"
            if _iptables("-S", "DOCKER-USER", check=False).returncode == 0
            else "FORWARD"
        )
        return [("INPUT", self.in_chain), (forward, self.out_chain)]

    def install(self) -> None:
        """Create or refill both chains and hook them in once; safe to repeat."""
        for hook, chain in self._hooks():
            if _iptables("-S", chain, check=False).returncode != 0:
                _iptables("-N", chain)
            _iptables("-F", chain)
            passed = "ACCEPT" if hook == "INPUT" else "RETURN"
            _iptables(
                "-A", chain, "-m", "conntrack", "--ctstate", "ESTABLISHED,RELATED", "-j", passed
            )
            for destination in self.allowed:
                for match in destination.matches(to_host=hook == "INPUT"):
                    _iptables("-A", chain, *match, "-j", passed)
            _iptables("-A", chain, "-j", "DROP")
            jump = ("-i", self.bridge, "-j", chain)
            if _iptables("-C", hook, *jump, check=False).returncode != 0:
                _iptables("-I", hook, "1", *jump)

    def remove(self) -> None:
        """Unhook and delete both chains; what is already gone is skipped."""
        for hook, chain in self._hooks():
            while (
                _iptables("-D", hook, "-i", self.bridge, "-j", chain, check=False).returncode == 0
            ):
                pass
            _iptables("-F", chain, check=False)
            _iptables("-X", chain, check=False)


def confined_network(
    client, name: str, labels: dict, allowed: list[Destination] | None, setting: str
) -> tuple[str, EgressFirewall | None]:
    """The bridge network ``name`` without inter-container traffic (made when missing; one
    made meanwhile by another process is taken), and its firewall confining it to
    ``allowed`` (None: no firewall).

    Raises:
        ConfigError: the network or its rules could not be made; ``setting`` names the
            setting that picks another network.
    """
    found = [n for n in client.networks.list(names=[name]) if n.name == name]
    try:
        network = (
            found[0]
            if found
            else client.networks.create(
                name,
                driver="bridge",
                options={"com.docker.network.bridge.enable_icc": "false"},
                labels=labels,
            )
        )
    except docker.errors.APIError as err:
        if err.status_code != 409:  # 409: made meanwhile by another start
            raise ConfigError(
                f"The Docker network {name} could not be created "
                f"({str(err.explanation or err).strip()[:300]}).",
                hint=f"Remove unused networks (`docker network prune`), or set {setting} to an "
                'existing network, e.g. "bridge".',
            ) from err
        network = client.networks.get(name)
    if allowed is None:
        return name, None
    network.reload()
    wall = EgressFirewall(network.id, bridge_of(network.attrs), allowed)
    try:
        wall.install()
    except (RuntimeError, OSError, subprocess.SubprocessError) as err:
        raise ConfigError(
            f"The egress firewall of network {name} could not be set up: {err}",
            hint=f"Check that iptables works here, or set {setting} to an existing network.",
        ) from err
    return name, wall


def bridge_of(network_attrs: dict) -> str:
    """The host interface of a Docker bridge network (its inspect data)."""
    name = (network_attrs.get("Options") or {}).get("com.docker.network.bridge.name")
    return name or f"br-{network_attrs['Id'][:12]}"
