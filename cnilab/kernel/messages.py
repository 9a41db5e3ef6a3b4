"""From rtnetlink messages to cnilab.state: the flags, states and kinds the kernel reports.

Pure functions and tables: the recorded netlink messages of the unit tests go through them too.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterator
from typing import Any

from cnilab.state import Link

HEADER = struct.Struct("=IHHII")  # nlmsghdr: length, type, flags, sequence, port
RTM_NEWLINK, RTM_DELLINK, RTM_GETLINK = 16, 17, 18
RTM_NEWADDR, RTM_DELADDR, RTM_GETADDR = 20, 21, 22
RTM_NEWROUTE, RTM_DELROUTE, RTM_GETROUTE = 24, 25, 26
RTM_NEWNEIGH, RTM_DELNEIGH, RTM_GETNEIGH = 28, 29, 30
RTM_NEWNETCONF, RTM_DELNETCONF = 80, 81
RTM_NEWNSID, RTM_GETNSID = 88, 90

# The ids namespace `netns` knows `others` by (RTM_GETNSID): nsid -> name.
NsidMap = Callable[["str | None", "list[str | None]"], "dict[int, str | None]"]

IFF_UP, IFF_LOOPBACK, IFF_LOWER_UP = 0x1, 0x8, 0x10000
NUD = {0x01: "INCOMPLETE", 0x02: "REACHABLE", 0x04: "STALE", 0x08: "DELAY", 0x10: "PROBE",
       0x20: "FAILED", 0x40: "NOARP", 0x80: "PERMANENT"}
NUD_NOARP, NUD_PERMANENT = 0x40, 0x80
RTN = {1: "unicast", 2: "local", 3: "broadcast", 4: "anycast", 5: "multicast",
       6: "blackhole", 7: "unreachable", 8: "prohibit"}

# A link, its IFLA_LINK (a veth's peer index), its IFLA_LINK_NETNSID (None: peer in this netns).
RawLinks = list[tuple[Link, "int | None", "int | None"]]


def attrs_of(m: Any) -> dict[str, Any]:
    """A decoded message's attributes by name, the first of each name (as pyroute2's get()).

    One pass over the ~40 attributes of a link instead of one per get(): an attribute's value
    is decoded only when read (pyroute2's slots are lazy).
    """
    return {slot[0]: slot for slot in reversed(m["attrs"])}


def attr(attrs: dict[str, Any], name: str) -> Any:
    """The value of one attribute of attrs_of(), or None."""
    slot = attrs.get(name)
    return None if slot is None else slot[1]


def to_link(m: Any, names: dict[int, str], addrs: dict[int, list[str]],
            a: dict[str, Any] | None = None) -> Link:
    """A Link from an RTM_NEWLINK message (peer left for observe() to resolve); `a`: its
    attrs_of() if already made."""
    a = attrs_of(m) if a is None else a
    info = attr(a, "IFLA_LINKINFO")
    kind = None if info is None else info.get_attr("IFLA_INFO_KIND")
    if kind is None:
        kind = "loopback" if m["flags"] & IFF_LOOPBACK else "device"
    master = attr(a, "IFLA_MASTER")
    return Link(name=attr(a, "IFLA_IFNAME"), kind=kind, index=m["index"],
                up=bool(m["flags"] & IFF_UP), master=names.get(master) if master else None,
                addresses=tuple(addrs.get(m["index"], ())), alias=attr(a, "IFLA_IFALIAS"),
                mac=attr(a, "IFLA_ADDRESS"), carrier=bool(m["flags"] & IFF_LOWER_UP))


def with_peer(netns: str | None, link: Link, peer: int | None, nsid: int | None,
              raw: dict[str | None, RawLinks], nsids: dict[int, str | None] | None = None
              ) -> Link:
    """The link with its veth peer named: 'name' here, 'netns:name' in another namespace.

    `nsids` maps the peer's IFLA_LINK_NETNSID (an id only meaningful inside `netns`) to the
    observed namespace it names: interface indexes repeat across namespaces, so the index pair
    alone can point at the wrong namespace.
    """
    if link.kind != "veth" or not peer:
        return link
    if nsid is None:
        name = next((ln.name for ln, _, _ in raw[netns] if ln.index == peer), None)
        return Link(**{**link.__dict__, "peer": name})
    nsids = nsids or {}  # without them, a peer is found by its index pair alone
    candidates = [nsids[nsid]] if nsid in nsids else [o for o in raw if o != netns]
    for other in candidates:
        for ln, back, _ in raw.get(other, ()):
            if ln.kind == "veth" and ln.index == peer and (back == link.index or nsid in nsids):
                return Link(**{**link.__dict__, "peer": f"{other or '.'}:{ln.name}"})
    return link


def resolve_peers(raw: dict[str | None, RawLinks], nsid_map: NsidMap | None
                  ) -> dict[str | None, tuple[Link, ...]]:
    """Every namespace's links with their veth peers named (with_peer).

    Only the namespaces holding a veth whose index and peer index mirror one are asked for
    their id (a node of a hundred pods would otherwise ask each pod about every other pod: a
    million questions for a cluster); without `nsid_map` (a recording) the pair alone decides.
    """
    ends: dict[tuple[int, int | None], list[str | None]] = {}
    for name, links in raw.items():
        for ln, peer, _ in links:
            if ln.kind == "veth":
                ends.setdefault((ln.index, peer), []).append(name)
    resolved = {}
    for name, links in raw.items():
        maybe = dict.fromkeys(other for ln, peer, nsid in links
                              if ln.kind == "veth" and nsid is not None
                              for other in ends.get((peer or 0, ln.index), ()) if other != name)
        nsids = nsid_map(name, list(maybe)) if maybe and nsid_map else {}
        resolved[name] = tuple(with_peer(name, link, peer, nsid, raw, nsids)
                               for link, peer, nsid in links)
    return resolved


def headers(data: bytes) -> Iterator[tuple[int, int, int, int]]:
    """(type, flags, offset, length) of each netlink message in one datagram."""
    offset = 0
    while offset + HEADER.size <= len(data):
        length, kind, flags, _, _ = HEADER.unpack_from(data, offset)
        if length < HEADER.size:
            return
        yield kind, flags, offset, length
        offset += (length + 3) & ~3
