"""The lab plan: names and subnets as frozen data, validated before anything touches the kernel."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, replace
from ipaddress import IPv4Interface, IPv4Network
from pathlib import Path
from typing import Any

from cnilab.errors import ConfigError

IFNAMSIZ = 16  # the kernel's buffer for an interface name, NUL included: 15 bytes usable


@dataclass(frozen=True)
class Container:
    """One 'container': a namespace joined to the bridge by a veth pair."""

    name: str
    address: IPv4Interface
    veth: str
    peer: str


@dataclass(frozen=True)
class Topology:
    """Every name and address of the eight-step lab; `prefix` goes before each namespace name."""

    containers: tuple[Container, ...]
    prefix: str = ""
    in_place: bool = False
    node_name: str = "cnilab-host"
    internet_name: str = "cnilab-internet"
    bridge: str = "v-net-0"
    bridge_address: IPv4Interface = IPv4Interface("192.168.15.5/24")
    uplink: str = "eth0"
    uplink_address: IPv4Interface = IPv4Interface("203.0.113.2/24")
    internet_address: IPv4Interface = IPv4Interface("203.0.113.1/24")

    @property
    def node(self) -> str | None:
        """The node's namespace; None means the namespace cnilab runs in (--in-place)."""
        return None if self.in_place else self.prefix + self.node_name

    @property
    def internet(self) -> str | None:
        """The outside world's namespace; there is none in --in-place mode."""
        return None if self.in_place else self.prefix + self.internet_name

    @property
    def subnet(self) -> IPv4Network:
        """The containers' subnet, the one the bridge sits on."""
        return self.bridge_address.network

    def netns(self, container: Container) -> str:
        """The namespace name of a container."""
        return self.prefix + container.name

    def container(self, role: str) -> Container:
        """Find a container by its (unprefixed) name."""
        for c in self.containers:
            if c.name == role:
                return c
        raise ConfigError(f"no container named {role!r} in this lab")

    def namespaces(self) -> tuple[str, ...]:
        """Every named namespace the lab may own, outer ones first."""
        outer = () if self.in_place else (self.node or "", self.internet or "")
        return outer + tuple(self.netns(c) for c in self.containers)

    @property
    def lab_id(self) -> str:
        """The name of this lab's ledger and lock."""
        return self.prefix.rstrip("-_.") or "default"


def default_containers() -> tuple[Container, ...]:
    """The course's red and blue."""
    return (
        Container("red", IPv4Interface("192.168.15.1/24"), "veth-red", "veth-red-br"),
        Container("blue", IPv4Interface("192.168.15.2/24"), "veth-blue", "veth-blue-br"),
    )


def default_topology(prefix: str = "", in_place: bool = False) -> Topology:
    """The course's lab, exactly."""
    return validate(Topology(default_containers(), prefix=prefix, in_place=in_place))


def load(path: Path | None, prefix: str | None = None, in_place: bool = False) -> Topology:
    """Read a TOML lab file (or the defaults) and validate it."""
    data: dict[str, Any] = {}
    if path is not None:
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError as e:
            raise ConfigError(f"config file {path} does not exist") from e
        except tomllib.TOMLDecodeError as e:
            raise ConfigError(f"config file {path} is not valid TOML: {e}") from e
    return validate(from_dict(data, prefix=prefix, in_place=in_place))


_TOP_KEYS = {
    "prefix", "node", "internet", "bridge", "bridge_address", "uplink",
    "uplink_address", "internet_address", "containers",
}


def from_dict(data: dict[str, Any], prefix: str | None = None, in_place: bool = False) -> Topology:
    """Build a topology from config data (keys as in the TOML file); not yet validated."""
    unknown = set(data) - _TOP_KEYS
    if unknown:
        raise ConfigError(f"unknown config key {sorted(unknown)[0]!r}",
                          hint="keys: " + ", ".join(sorted(_TOP_KEYS)))
    base = Topology(default_containers())
    containers = base.containers
    if "containers" in data:
        containers = tuple(_container(i, c) for i, c in enumerate(data["containers"]))
    return replace(
        base,
        containers=containers,
        prefix=_str(data, "prefix", "") if prefix is None else prefix,
        in_place=in_place,
        node_name=_str(data, "node", base.node_name),
        internet_name=_str(data, "internet", base.internet_name),
        bridge=_str(data, "bridge", base.bridge),
        bridge_address=_iface(data, "bridge_address", base.bridge_address),
        uplink=_str(data, "uplink", base.uplink),
        uplink_address=_iface(data, "uplink_address", base.uplink_address),
        internet_address=_iface(data, "internet_address", base.internet_address),
    )


def _container(i: int, c: Any) -> Container:
    if not isinstance(c, dict) or "name" not in c or "address" not in c:
        raise ConfigError(f"containers[{i}] needs a name and an address")
    unknown = set(c) - {"name", "address", "veth", "peer"}
    if unknown:
        raise ConfigError(f"unknown key {sorted(unknown)[0]!r} in containers[{i}]")
    name = _str(c, "name", "")
    return Container(name, _iface(c, "address", None), _str(c, "veth", f"veth-{name}"),
                     _str(c, "peer", f"veth-{name}-br"))


def _str(data: dict[str, Any], key: str, default: str) -> str:
    value = data.get(key, default)
    if not isinstance(value, str):
        raise ConfigError(f"{key} must be a string, not {value!r}")
    return value


def _iface(data: dict[str, Any], key: str, default: IPv4Interface | None) -> IPv4Interface:
    value = data.get(key)
    if value is None:
        if default is None:
            raise ConfigError(f"{key} is missing")
        return default
    if not isinstance(value, str) or "/" not in value:
        raise ConfigError(f"{key} {value!r} is not an address with a prefix (like 192.168.15.1/24)")
    try:
        return IPv4Interface(value)
    except ValueError as e:
        raise ConfigError(f"{key} {value!r} is not a valid IPv4 CIDR: {e}") from e


def check_ifname(name: str, what: str) -> None:
    """Refuse a name the kernel would refuse as an interface name (iproute2's rules)."""
    if not name:
        raise ConfigError(f"{what} name is empty")
    if len(name.encode()) >= IFNAMSIZ:
        raise ConfigError(f"{what} name {name!r} is {len(name.encode())} bytes; "
                          f"the kernel allows at most {IFNAMSIZ - 1}")
    if "/" in name or any(ch.isspace() for ch in name) or name in (".", ".."):
        raise ConfigError(f"{what} name {name!r} may not contain '/' or spaces")


def check_netns_name(name: str, what: str) -> None:
    """Refuse a namespace name that cannot be a file under /run/netns."""
    if not name or "/" in name or name in (".", "..") or any(ch.isspace() for ch in name):
        raise ConfigError(f"{what} namespace name {name!r} must be non-empty, "
                          "without '/' or spaces")
    if len(name) > 64:
        raise ConfigError(f"{what} namespace name {name!r} is longer than 64 characters")


def _check_host_address(addr: IPv4Interface, what: str) -> None:
    net = addr.network
    if net.prefixlen < 31 and addr.ip in (net.network_address, net.broadcast_address):
        raise ConfigError(f"{what} {addr} is the network or broadcast address of {net}")


def validate(topo: Topology) -> Topology:
    """Return the topology if every name and address is usable, else raise ConfigError."""
    if topo.prefix:
        check_netns_name(topo.prefix, "prefix")
    if not topo.containers:
        raise ConfigError("the lab needs at least one container")
    names = [topo.netns(c) for c in topo.containers]
    if not topo.in_place:
        names += [topo.node or "", topo.internet or ""]
    for n in names:
        check_netns_name(n, "the")
    if len(set(names)) != len(names):
        raise ConfigError("namespace names must all differ")

    links = [topo.bridge, topo.uplink]
    check_ifname(topo.bridge, "bridge")
    check_ifname(topo.uplink, "uplink")
    for c in topo.containers:
        check_ifname(c.veth, f"{c.name}'s veth")
        check_ifname(c.peer, f"{c.name}'s bridge-side veth")
        links += [c.peer]
        if c.veth in (topo.bridge, topo.uplink) or c.veth == c.peer:
            raise ConfigError(f"{c.name}'s veth name {c.veth!r} is already used in the lab")
    if len(set(links)) != len(links):
        raise ConfigError("link names on the node must all differ")

    subnet = topo.subnet
    _check_host_address(topo.bridge_address, "bridge_address")
    seen = {topo.bridge_address.ip: "bridge_address"}
    for c in topo.containers:
        if c.address.network != subnet:
            raise ConfigError(f"{c.name}'s address {c.address} is outside the bridge's "
                              f"subnet {subnet}")
        _check_host_address(c.address, f"{c.name}'s address")
        if c.address.ip in seen:
            raise ConfigError(f"{c.name}'s address {c.address.ip} is also {seen[c.address.ip]}")
        seen[c.address.ip] = f"{c.name}'s address"
    if not topo.in_place:
        outside = topo.uplink_address.network
        if topo.internet_address.network != outside:
            raise ConfigError(f"internet_address {topo.internet_address} is not in the uplink's "
                              f"subnet {outside}")
        if topo.internet_address.ip == topo.uplink_address.ip:
            raise ConfigError("internet_address and uplink_address must differ")
        _check_host_address(topo.uplink_address, "uplink_address")
        _check_host_address(topo.internet_address, "internet_address")
        if outside.overlaps(subnet):
            raise ConfigError(f"the bridge subnet {subnet} overlaps the uplink subnet {outside}")
    return topo
