"""What the kernel holds, as observed: namespaces, links, addresses, routes, NAT rules, sysctls.

A Snapshot is plain data: kernel.observe() makes one, tests record and replay them as JSON. The
parsers of what the kernel prints (/proc/net/tcp) live here too, so tests replay recorded text.
"""

from __future__ import annotations

import json
import socket
import struct
from typing import Any

from cnilab.compat import asdict, field, valueclass

LISTEN, ESTABLISHED = 0x0A, 0x01


@valueclass(frozen=True)
class TcpSocket:
    """One TCP socket: addresses, state, and the process holding it (if any)."""

    local: str
    local_port: int
    remote: str
    remote_port: int
    state: int
    inode: int
    process: str | None = None
    pid: int | None = None

    @property
    def listening(self) -> bool:
        """In LISTEN state."""
        return self.state == LISTEN

    @property
    def established(self) -> bool:
        """In ESTABLISHED state."""
        return self.state == ESTABLISHED


def _address(field: str) -> tuple[str, int]:
    host, port = field.split(":")
    # The kernel prints the address as native-endian 32-bit words in hex: one for IPv4, four
    # for IPv6 (/proc/net/tcp6).
    packed = b"".join(struct.pack("=I", int(host[i:i + 8], 16)) for i in range(0, len(host), 8))
    ip = socket.inet_ntop(socket.AF_INET6 if len(packed) == 16 else socket.AF_INET, packed)
    return ip, int(port, 16)


def parse_proc_tcp(text: str) -> list[TcpSocket]:
    """Parse the text of /proc/net/tcp or /proc/net/tcp6 (`::` is IPv6's any address)."""
    found = []
    for line in text.splitlines()[1:]:
        cols = line.split()
        if len(cols) < 10:
            continue
        (lip, lport), (rip, rport) = _address(cols[1]), _address(cols[2])
        found.append(TcpSocket(lip, lport, rip, rport, int(cols[3], 16), int(cols[9])))
    return found


def listening_ports(text: str) -> tuple[int, ...]:
    """TCP ports something listens on, from the text of /proc/net/tcp."""
    return tuple(sorted({s.local_port for s in parse_proc_tcp(text) if s.state == LISTEN}))


@valueclass(frozen=True)
class Link:
    """A network interface as the kernel reports it."""

    name: str
    kind: str
    index: int
    up: bool = False
    master: str | None = None
    peer: str | None = None  # veth peer: "name" in the same namespace, "netns:name" elsewhere
    addresses: tuple[str, ...] = ()
    alias: str | None = None
    mac: str | None = None
    carrier: bool | None = None  # IFF_LOWER_UP: a veth has it only while both ends are up


def first_ip(link: Link | None) -> str | None:
    """A link's first address without its prefix length; None without a link or an address."""
    return link.addresses[0].split("/")[0] if link is not None and link.addresses else None


@valueclass(frozen=True)
class Neighbour:
    """One entry of a namespace's neighbour (ARP) table, as `ip neigh` shows it."""

    ip: str
    mac: str | None
    dev: str | None
    state: str  # REACHABLE, STALE, DELAY, PROBE, INCOMPLETE, FAILED, PERMANENT


@valueclass(frozen=True)
class FdbEntry:
    """One entry of a bridge's forwarding database: which port a MAC address is behind."""

    mac: str
    port: str | None
    bridge: str | None
    local: bool = False  # the port's own address (permanent), not learned from traffic


@valueclass(frozen=True)
class RouteDecision:
    """What the routing table decides for one packet, as `ip route get` prints it."""

    dst: str
    kind: str = "unicast"  # unicast, local, broadcast, ...; "" when there is no route
    dev: str | None = None
    gateway: str | None = None
    src: str | None = None  # the preferred source address
    error: str | None = None  # the kernel's answer when there is no route ("No route to host")


@valueclass(frozen=True)
class Route:
    """An IPv4 route of the main table."""

    dst: str  # "default" or a CIDR
    gateway: str | None = None
    dev: str | None = None


@valueclass(frozen=True)
class Namespace:
    """One network namespace; name None is the namespace cnilab runs in."""

    name: str | None
    links: tuple[Link, ...] = ()
    routes: tuple[Route, ...] = ()
    sysctls: dict[str, str] = field(default_factory=dict)
    nat: tuple[str, ...] | None = None  # `iptables -t nat -S` rules; None: not observed
    listening: tuple[int, ...] = ()  # TCP ports something listens on
    neigh: tuple[Neighbour, ...] = ()  # the ARP table (`ip neigh`)
    fdb: tuple[FdbEntry, ...] = ()  # bridges' forwarding databases (`bridge fdb`)

    def link(self, name: str) -> Link | None:
        """The link called `name`, if present."""
        return next((ln for ln in self.links if ln.name == name), None)

    def has_address(self, address: str) -> Link | None:
        """The link holding `address` (CIDR form), if any."""
        return next((ln for ln in self.links if address in ln.addresses), None)


@valueclass(frozen=True)
class Snapshot:
    """Every namespace cnilab looked at, plus the names under /run/netns."""

    netns: frozenset[str]
    spaces: dict[str | None, Namespace]

    def ns(self, name: str | None) -> Namespace | None:
        """The observed namespace `name` (None: cnilab's own), if it exists."""
        return self.spaces.get(name)

    def find_link(self, name: str) -> tuple[str | None, Link] | None:
        """Find a link by name in any observed namespace."""
        for ns_name, ns in self.spaces.items():
            link = ns.link(name)
            if link is not None:
                return ns_name, link
        return None

    def to_json(self) -> str:
        """Serialise (recorded states for tests and `status --json`)."""
        return json.dumps(self.to_dict(), indent=1, sort_keys=True)

    def to_dict(self) -> dict[str, Any]:
        """Plain data: the namespace cnilab runs in is keyed by the empty string."""
        return {
            "netns": sorted(self.netns),
            "spaces": {(k or ""): asdict(v) for k, v in self.spaces.items()},
        }

    @classmethod
    def from_json(cls, text: str) -> Snapshot:
        """Load a recorded snapshot."""
        data = json.loads(text)
        spaces: dict[str | None, Namespace] = {}
        for key, ns in data["spaces"].items():
            links = tuple(Link(**{**ln, "addresses": tuple(ln["addresses"])})
                          for ln in ns["links"])
            routes = tuple(Route(**r) for r in ns["routes"])
            nat = None if ns["nat"] is None else tuple(ns["nat"])
            neigh = tuple(Neighbour(**n) for n in ns.get("neigh", ()))
            fdb = tuple(FdbEntry(**f) for f in ns.get("fdb", ()))
            spaces[key or None] = Namespace(key or None, links, routes, ns["sysctls"], nat,
                                            tuple(ns.get("listening", ())), neigh, fdb)
        return cls(frozenset(data["netns"]), spaces)
