"""A network of its own for every local sandbox and image build (docs/threat-model.md).

Each sandbox gets a user and network namespace from pasta (Debian's `passt` package), a user-mode network
stack: the namespace has its own loopback, and its outbound connections leave through ordinary sockets of
the host. So a sandbox cannot reach the host's loopback services (Postgres, Redis, the web processes, other
sandboxes' ports) except the one address the platform forwards to it, the control plane's. nftables rules
applied inside the namespace before anything else runs (local_walls.py) refuse the private ranges too (the
cloud metadata address, the office network) and the host's own networks, except the DNS resolvers the host
uses.

The control plane reaches a sandbox's services through host ports pasta forwards into the namespace, on
127.0.0.1 only; other sandboxes cannot reach them, as they cannot reach the host's loopback at all.
"""

import ipaddress
import json
import socket
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")
# Addresses a sandbox never reaches: the host's private networks, link-local (cloud metadata at
# 169.254.169.254), carrier-grade NAT and "this network".
PRIVATE_V4 = ("0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "169.254.0.0/16", "172.16.0.0/12", "192.168.0.0/16")
# IPv6: unique-local and link-local, IPv4-mapped, and the translators back into IPv4 (NAT64, 6to4).
PRIVATE_V6 = ("fc00::/7", "fe80::/10", "::ffff:0:0/96", "64:ff9b::/96", "64:ff9b:1::/48", "2002::/16")
WALLS_TABLE = "inspect_walls"
WALLS_SCRIPT = Path(__file__).with_name("local_walls.py")
CONTROL_PLANE_SPARE_PORTS = 40100  # the first port tried inside when a service needs the control plane's


@dataclass(frozen=True)
class Allowed:
    """A private address a sandbox may still reach, on one port (a DNS resolver, a control plane on the LAN)."""
    address: str
    port: int
    protocols: tuple[str, ...] = ("tcp",)


@dataclass(frozen=True)
class NetworkPlan:
    control_plane_port: int | None = None  # the host's 127.0.0.1:<port>, reached from the namespace's loopback
    control_plane_inside: int | None = None  # at this port of the namespace (the same unless a service needs it)
    inbound: dict[int, int] = field(default_factory=dict)  # sandbox port -> host port on 127.0.0.1
    allowed: tuple[Allowed, ...] = ()
    host_networks: tuple[str, ...] = ()  # the host's own subnets, refused (see nft_rules)


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


def nft_rules(allowed: tuple[Allowed, ...], host_networks: tuple[str, ...] = ()) -> str:
    """The namespace's firewall as one `nft` command line: its own loopback and the allowed addresses pass;
    the private ranges and the host's own networks (its other addresses, its neighbours on a public subnet or
    a global IPv6 prefix) are refused at once (a reject, so tools fail fast instead of timing out)."""
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
    v4 = [*PRIVATE_V4, *(n for n in host_networks if ipaddress.ip_network(n).version == 4)]
    v6 = [*PRIVATE_V6, *(n for n in host_networks if ipaddress.ip_network(n).version == 6)]
    lines.append(f"add rule inet {WALLS_TABLE} out ip daddr {{ {', '.join(v4)} }} reject")
    lines.append(f"add rule inet {WALLS_TABLE} out ip6 daddr {{ {', '.join(v6)} }} reject")
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
        "--tcp-ns", f"{plan.control_plane_inside or plan.control_plane_port}:{plan.control_plane_port}"
        if plan.control_plane_port else "none", "--udp-ns", "none",
        "--",
    ]


def walls_argv(plan: NetworkPlan) -> list[str]:
    """Run first inside the namespace: apply the firewall, close what pasta left open, then exec the rest."""
    return ["/usr/bin/python3", "-I", "-c", WALLS_SCRIPT.read_text(), nft_rules(plan.allowed, plan.host_networks), "--"]


def host_resolvers() -> tuple[Allowed, ...]:
    try:
        text = Path("/etc/resolv.conf").read_text()
    except OSError:
        return ()
    return tuple(Allowed(address, 53, ("udp", "tcp")) for address in resolvers(text)
                 if ipaddress.ip_address(address).is_private and not ipaddress.ip_address(address).is_loopback)


def networks_of(addresses: list[dict]) -> tuple[str, ...]:
    """The subnets of the host's addresses as `ip -j addr` lists them, but its loopback."""
    found = []
    for interface in addresses:
        for address in interface.get("addr_info") or []:
            try:
                network = ipaddress.ip_interface(f"{address['local']}/{address['prefixlen']}").network
            except (KeyError, ValueError):
                continue
            if not network.is_loopback and str(network) not in found:
                found.append(str(network))
    return tuple(found)


def host_networks() -> tuple[str, ...]:
    try:
        listed = subprocess.run(["ip", "-j", "addr", "show"], capture_output=True, text=True, timeout=5, check=True)
        return networks_of(json.loads(listed.stdout))
    except (OSError, subprocess.SubprocessError, ValueError):
        return ()


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


def port_inside(control_plane_port: int | None, service_ports: list[int]) -> int | None:
    """Where the control plane is forwarded inside the namespace: its own port, unless one of the sandbox's
    services listens there (a Django repo's dev server on 8000, the platform's own default port)."""
    if control_plane_port is None or control_plane_port not in service_ports:
        return control_plane_port
    return next(port for port in range(CONTROL_PLANE_SPARE_PORTS, 65536) if port not in service_ports)


def url_inside(control_plane_url: str, plan: NetworkPlan) -> str:
    """`control_plane_url` as the sandbox reaches it (the port moved where port_inside moved it)."""
    if not plan.control_plane_port or plan.control_plane_inside == plan.control_plane_port:
        return control_plane_url
    parts = urlsplit(control_plane_url)
    return parts._replace(netloc=f"127.0.0.1:{plan.control_plane_inside}").geturl()


def plan_for(control_plane_url: str, service_ports: list[int]) -> NetworkPlan:
    """The network of a sandbox whose control plane is at `control_plane_url` and whose services listen on
    `service_ports` inside it (VS Code, the desktop, the repo's dev servers)."""
    port, allowed = control_plane_route(control_plane_url)
    ports = sorted(set(service_ports))
    inbound = dict(zip(ports, free_host_ports(len(ports)), strict=True))
    return NetworkPlan(control_plane_port=port, control_plane_inside=port_inside(port, ports), inbound=inbound,
                       allowed=host_resolvers() + allowed, host_networks=host_networks())
