"""A network of its own for every local sandbox and image build (docs/threat-model.md).

Each sandbox gets a user and network namespace from pasta (Debian's `passt` package), a user-mode network
stack: the namespace has its own loopback, and its outbound connections leave through ordinary sockets of
the host. So a sandbox cannot reach the host's loopback services (Postgres, Redis, the web processes, other
sandboxes' ports) except the one address the platform forwards to it, the control plane's. nftables rules
applied inside the namespace before anything else runs (local_walls.py) refuse the private ranges too (the
cloud metadata address, the office network), except the DNS resolvers the host uses.

The control plane reaches a sandbox's services through host ports pasta forwards into the namespace, on
127.0.0.1 only; other sandboxes cannot reach them, as they cannot reach the host's loopback at all.
"""

import ipaddress
import socket
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")
# Addresses a sandbox never reaches: the host's private networks, link-local (cloud metadata at
# 169.254.169.254), carrier-grade NAT and "this network".
PRIVATE_V4 = ("0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "169.254.0.0/16", "172.16.0.0/12", "192.168.0.0/16")
PRIVATE_V6 = ("fc00::/7", "fe80::/10")
WALLS_TABLE = "inspect_walls"
WALLS_SCRIPT = Path(__file__).with_name("local_walls.py")


@dataclass(frozen=True)
class Allowed:
    """A private address a sandbox may still reach, on one port (a DNS resolver, a control plane on the LAN)."""
    address: str
    port: int
    protocols: tuple[str, ...] = ("tcp",)


@dataclass(frozen=True)
class NetworkPlan:
    control_plane_port: int | None = None  # the namespace's 127.0.0.1:<port> reaches the host's 127.0.0.1:<port>
    inbound: dict[int, int] = field(default_factory=dict)  # sandbox port -> host port on 127.0.0.1
    allowed: tuple[Allowed, ...] = ()


def resolvers(resolv_conf: str) -> list[str]:
    """The nameserver addresses of a resolv.conf."""
    found = []
    for line in resolv_conf.splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0] == "nameserver":
            try:
                found.append(str(ipaddress.ip_address(parts[1].split("%")[0])))
            except ValueError:
                continue
    return found


def control_plane_route(url: str) -> tuple[int | None, tuple[Allowed, ...]]:
    """How a sandbox reaches the control plane at `url`: on loopback, a port pasta forwards to the host's
    same port; on a private address, that address and port let through the walls; anything else goes out
    as any outbound connection does."""
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    host = (parts.hostname or "").lower()
    if host in LOOPBACK_NAMES:
        return port, ()
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return None, ()
    return None, ((Allowed(str(address), port),) if address.is_private else ())


def nft_rules(allowed: tuple[Allowed, ...]) -> str:
    """The namespace's firewall as one `nft` command line: its own loopback and the allowed addresses pass,
    the private ranges are refused at once (a reject, so tools fail fast instead of timing out)."""
    lines = [
        f"add table inet {WALLS_TABLE}",
        f"add chain inet {WALLS_TABLE} out {{ type filter hook output priority 0 ; policy accept ; }}",
        f"add rule inet {WALLS_TABLE} out oifname lo accept",
    ]
    for rule in allowed:
        family = "ip6" if ipaddress.ip_address(rule.address).version == 6 else "ip"
        for protocol in rule.protocols:
            lines.append(f"add rule inet {WALLS_TABLE} out {family} daddr {rule.address} {protocol} dport {rule.port} "
                         "accept")
    lines.append(f"add rule inet {WALLS_TABLE} out ip daddr {{ {', '.join(PRIVATE_V4)} }} reject")
    lines.append(f"add rule inet {WALLS_TABLE} out ip6 daddr {{ {', '.join(PRIVATE_V6)} }} reject")
    return " ; ".join(lines)


def pasta_argv(plan: NetworkPlan) -> list[str]:
    """pasta with nothing forwarded but what the plan says. Its defaults forward every port bound on
    either side ("auto"), so each direction is given explicitly."""
    # One option per port: an address given in a list applies to all of its ports.
    inbound = [arg for inside, host in sorted(plan.inbound.items())
               for arg in ("--tcp-ports", f"127.0.0.1/{host}:{inside}")]
    return [
        "pasta", "--quiet", "--foreground", "--config-net", "--no-map-gw",
        *(inbound or ["--tcp-ports", "none"]), "--udp-ports", "none",
        "--tcp-ns", str(plan.control_plane_port) if plan.control_plane_port else "none", "--udp-ns", "none",
        "--",
    ]


def walls_argv(plan: NetworkPlan) -> list[str]:
    """Run first inside the namespace: apply the firewall, close what pasta left open, then exec the rest."""
    return ["/usr/bin/python3", "-I", "-c", WALLS_SCRIPT.read_text(), nft_rules(plan.allowed), "--"]


def host_resolvers() -> tuple[Allowed, ...]:
    try:
        text = Path("/etc/resolv.conf").read_text()
    except OSError:
        return ()
    return tuple(Allowed(address, 53, ("udp", "tcp")) for address in resolvers(text)
                 if ipaddress.ip_address(address).is_private and not ipaddress.ip_address(address).is_loopback)


def free_host_ports(count: int) -> list[int]:
    """Ports free on the host's loopback now. pasta binds them a moment later; a port taken in between
    makes the start fail and be retried with others (LocalBackend.start)."""
    sockets = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def plan_for(control_plane_url: str, service_ports: list[int]) -> NetworkPlan:
    """The network of a sandbox whose control plane is at `control_plane_url` and whose services listen on
    `service_ports` inside it (VS Code, the desktop, the repo's dev servers)."""
    port, allowed = control_plane_route(control_plane_url)
    ports = sorted(set(service_ports))
    inbound = dict(zip(ports, free_host_ports(len(ports)), strict=True))
    return NetworkPlan(control_plane_port=port, inbound=inbound, allowed=host_resolvers() + allowed)
