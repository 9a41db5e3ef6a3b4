"""The lab plan: names and subnets as frozen data, validated before anything touches the kernel."""

from __future__ import annotations

import errno
from ipaddress import IPv4Interface, IPv4Network
from pathlib import Path
from typing import Any

from cnilab.compat import replace, tomllib, valueclass
from cnilab.errors import ConfigError
from cnilab.names import (
    IFNAME_MAX,
    Identity,
    check_netns_name,
    check_prefix,
    ifname_problem,
)
from cnilab.runfiles import read_small

LESSON = "eight-steps"


@valueclass(frozen=True)
class Container:
    """One 'container': a namespace joined to the bridge by a veth pair."""

    name: str
    address: IPv4Interface
    veth: str
    peer: str


@valueclass(frozen=True)
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
        raise ConfigError.of("cfg_no_container", role=role)

    def namespaces(self) -> tuple[str, ...]:
        """Every named namespace the lab may own, outer ones first."""
        outer = () if self.in_place else (self.node or "", self.internet or "")
        return outer + tuple(self.netns(c) for c in self.containers)

    @property
    def identity(self) -> Identity:
        """This lab: the eight-step lesson under its exact prefix (names, mark, ledger)."""
        return Identity(LESSON, self.prefix)

    @property
    def lab_id(self) -> str:
        """The name of this lab's ledger and lock: the lesson and the exact prefix."""
        return self.identity.lab_id


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
            data = tomllib.loads(read_config(path).decode("utf-8"))
        except UnicodeDecodeError as e:
            raise ConfigError.of("cfg_not_utf8", path=path, offset=e.start + 1) from e
        except tomllib.TOMLDecodeError as e:
            raise ConfigError.of("cfg_bad_toml", path=path, detail=e) from e
        except (ValueError, RecursionError) as e:  # a 5000-digit integer, 5000 nested arrays
            raise ConfigError.of("cfg_bad_toml", path=path, detail=_shown(e)) from None
    return validate(from_dict(data, prefix=prefix, in_place=in_place))


CONFIG_MAX = 1 << 20  # bytes: a lab file is a few hundred


def read_config(path: Path) -> bytes:
    """A config file's bytes (runfiles.read_small: a plain file, CONFIG_MAX bytes at most)."""
    try:
        return read_small(path, CONFIG_MAX)
    except FileNotFoundError as e:
        raise ConfigError.of("cfg_no_file", path=path) from e
    except IsADirectoryError as e:
        raise ConfigError.of("cfg_is_dir", path=path) from e
    except OSError as e:
        if e.errno == errno.ENODEV:
            raise ConfigError.of("cfg_not_file", path=path) from None
        if e.errno == errno.EFBIG:
            raise ConfigError.of("cfg_too_big", path=path, limit=CONFIG_MAX) from None
        raise ConfigError.of("cfg_unreadable", path=path, detail=e.strerror or e) from e


class _Cut(str):
    """Text shown as is by {value!r} too: an error line's cut-down value."""

    def __repr__(self) -> str:
        return str(self)


def _shown(value: Any, limit: int = 60) -> Any:
    """`value` for an error line: itself, or when long its repr cut to `limit` characters
    (a huge integer by its size: Python refuses to print more than 4300 digits)."""
    if isinstance(value, int) and value.bit_length() > 200:
        return _Cut(f"<an integer of {value.bit_length()} bits>")
    text = str(value) if isinstance(value, BaseException) else repr(value)
    if len(text) <= limit:
        return str(value) if isinstance(value, BaseException) else value
    return _Cut(text[:limit - 3] + "...")


_TOP_KEYS = {
    "prefix", "node", "internet", "bridge", "bridge_address", "uplink",
    "uplink_address", "internet_address", "containers",
}


def from_dict(data: dict[str, Any], prefix: str | None = None, in_place: bool = False) -> Topology:
    """Build a topology from config data (keys as in the TOML file); not yet validated."""
    unknown = set(data) - _TOP_KEYS
    if unknown:
        raise ConfigError.of("cfg_unknown_key", key=sorted(unknown)[0],
                             keys=", ".join(sorted(_TOP_KEYS)))
    base = Topology(default_containers())
    containers = base.containers
    if "containers" in data:
        if not isinstance(data["containers"], list):
            raise ConfigError.of("cfg_containers_list", value=_shown(data["containers"]))
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
        raise ConfigError.of("cfg_container_fields", i=i)
    unknown = set(c) - {"name", "address", "veth", "peer"}
    if unknown:
        raise ConfigError.of("cfg_unknown_container_key", key=sorted(unknown)[0], i=i)
    name = _str(c, "name", "")
    return Container(name, _iface(c, "address", None), _str(c, "veth", f"veth-{name}"),
                     _str(c, "peer", f"veth-{name}-br"))


def _str(data: dict[str, Any], key: str, default: str) -> str:
    value = data.get(key, default)
    if not isinstance(value, str):
        raise ConfigError.of("cfg_not_string", key=key, value=_shown(value))
    return value


def _iface(data: dict[str, Any], key: str, default: IPv4Interface | None) -> IPv4Interface:
    value = data.get(key)
    if value is None:
        if default is None:
            raise ConfigError.of("cfg_missing", key=key)
        return default
    if not isinstance(value, str) or "/" not in value:
        raise ConfigError.of("cfg_no_prefix", key=key, value=_shown(value))
    try:
        return IPv4Interface(value)
    except ValueError as e:
        raise ConfigError.of("cfg_bad_cidr", key=key, value=value, detail=e) from e


def check_ifname(name: str, what: str) -> None:
    """Refuse a name the kernel would refuse as an interface name (names.ifname_problem)."""
    why = ifname_problem(name)
    if why == "empty":
        raise ConfigError.of("cfg_empty_name", what=what)
    if why == "chars":
        raise ConfigError.of("cfg_bad_chars", what=what, name=name)
    if why == "long":
        raise ConfigError.of("cfg_long_name", what=what, name=name, size=len(name.encode()),
                             limit=IFNAME_MAX)


def _check_host_address(addr: IPv4Interface, what: str) -> None:
    net = addr.network
    if net.prefixlen < 31 and addr.ip in (net.network_address, net.broadcast_address):
        raise ConfigError.of("cfg_net_or_broadcast", what=what, addr=addr, net=net)


def validate(topo: Topology) -> Topology:
    """Return the topology if every name and address is usable, else raise ConfigError."""
    check_prefix(topo.prefix)
    if not topo.containers:
        raise ConfigError.of("cfg_no_containers")
    names = [topo.netns(c) for c in topo.containers]
    if not topo.in_place:
        names += [topo.node or "", topo.internet or ""]
    for n in names:
        check_netns_name(n, "the")
    if len(set(names)) != len(names):
        raise ConfigError.of("cfg_netns_clash")

    check_ifname(topo.bridge, "bridge")
    check_ifname(topo.uplink, "uplink")
    for c in topo.containers:
        check_ifname(c.veth, f"{c.name}'s veth")
        check_ifname(c.peer, f"{c.name}'s bridge-side veth")
    # Every veth is made on the node before it moves: all names meet there once (with lo).
    links = ["lo"]
    for name in (topo.bridge, *([] if topo.in_place else [topo.uplink]),
                 *(n for c in topo.containers for n in (c.veth, c.peer))):
        if name in links:
            raise ConfigError.of("cfg_link_clash", name=name)
        links.append(name)

    subnet = topo.subnet
    _check_host_address(topo.bridge_address, "bridge_address")
    seen = {topo.bridge_address.ip: "bridge_address"}
    for c in topo.containers:
        if c.address.network != subnet:
            raise ConfigError.of("cfg_outside_subnet", who=c.name, address=c.address,
                                     subnet=subnet)
        _check_host_address(c.address, f"{c.name}'s address")
        if c.address.ip in seen:
            raise ConfigError.of("cfg_same_address", who=c.name, ip=c.address.ip,
                                     other=seen[c.address.ip])
        seen[c.address.ip] = f"{c.name}'s address"
    if not topo.in_place:
        outside = topo.uplink_address.network
        if topo.internet_address.network != outside:
            raise ConfigError.of("cfg_internet_subnet", address=topo.internet_address,
                                     subnet=outside)
        if topo.internet_address.ip == topo.uplink_address.ip:
            raise ConfigError.of("cfg_internet_same")
        _check_host_address(topo.uplink_address, "uplink_address")
        _check_host_address(topo.internet_address, "internet_address")
        if outside.overlaps(subnet):
            raise ConfigError.of("cfg_overlap", subnet=subnet, outside=outside)
    return topo
