"""Netlink through pyroute2's messages: links, addresses, routes; one socket per namespace.

They are loaded on first use (cnilab.kernel.iproute, ~0.02 s), not at import time: teardown of
an isolated lab or a --help never needs them.
"""

from __future__ import annotations

import errno
import os
import socket
from collections.abc import Callable
from ipaddress import IPv4Interface
from typing import TYPE_CHECKING, Any, TypeVar

from cnilab.errors import KernelError
from cnilab.kernel.messages import (
    NUD,
    NUD_NOARP,
    NUD_PERMANENT,
    RTN,
    RawLinks,
    attr,
    attrs_of,
    to_link,
)
from cnilab.kernel.netns import (
    netns_path,
    open_rtnl_socket,
    run_in_netns,
)
from cnilab.names import TAG
from cnilab.state import FdbEntry, Link, Neighbour, Route, RouteDecision

if TYPE_CHECKING:
    from cnilab.kernel.iproute import IPRoute

T = TypeVar("T")

GONE = (errno.ENODEV, errno.ENOENT, errno.ESRCH, errno.EADDRNOTAVAIL)  # "already gone"


class Netlink:
    """Links, addresses and routes of any namespace; one netlink socket per namespace, reused."""

    def __init__(self) -> None:
        self._sockets: dict[str | None, IPRoute | socket.socket] = {}

    # -- lifecycle -------------------------------------------------------------------------

    def close(self) -> None:
        """Close every netlink socket (an open socket keeps a removed namespace's links alive)."""
        for name in list(self._sockets):
            self.close_netns(name)

    def close_netns(self, netns: str | None) -> None:
        """Close the socket into one namespace, if open (before removing that namespace)."""
        sock = self._sockets.pop(_key(netns), None)
        if sock is not None:
            sock.close()

    def has_socket(self, netns: str | None) -> bool:
        """Whether a netlink socket into `netns` is open."""
        return _key(netns) in self._sockets

    def adopt_socket(self, netns: str | None, sock: socket.socket) -> None:
        """Use this socket (made by a thread inside `netns`) for `netns` from now on."""
        old = self._sockets.pop(_key(netns), None)
        if old is not None:
            old.close()
        self._sockets[_key(netns)] = sock  # wrapped on first use: pyroute2 loads only then

    def changed(self, *namespaces: str | None, anywhere: bool = False) -> None:
        """Told after every change made through this object, where it happened (anywhere: it
        may show in any namespace, as a deleted veth's peer does); see Kernel.observe."""

    def _ipr(self, netns: str | None) -> IPRoute:
        key = _key(netns)
        found = self._sockets.get(key)
        if found is None or isinstance(found, socket.socket):
            from cnilab.kernel.iproute import IPRoute

            # A socket belongs for good to the namespace it was made in: made by a thread that
            # entered the namespace, it needs no helper process (a cluster has one per pod).
            found = IPRoute(found or run_in_netns(netns, open_rtnl_socket),
                            self._change_in(netns))
            self._sockets[key] = found
        return found

    def _change_in(self, netns: str | None) -> Callable[[bool], None]:
        return lambda elsewhere: self.changed(netns, anywhere=elsewhere)

    def _call(self, what: str, fn: Callable[[], T]) -> T:
        from cnilab.kernel.iproute import NetlinkError

        try:
            return fn()
        except NetlinkError as e:
            raise KernelError(f"the kernel refused to {what}: {os.strerror(e.code)}") from e

    def _remove(self, what: str, fn: Callable[[], object]) -> bool:
        """Run a removal; False when the object is already gone (so every undo is idempotent)."""
        from cnilab.kernel.iproute import NetlinkError

        try:
            fn()
        except NetlinkError as e:
            if e.code in GONE:
                return False
            raise KernelError(f"the kernel refused to {what}: {os.strerror(e.code)}") from e
        return True

    def _link_msg(self, netns: str | None, name: str, fields_only: bool = False) -> Any:
        """The kernel's RTM_NEWLINK answer for one link asked by name, or None if absent;
        fields_only: its index and flags only (no attribute read)."""
        from cnilab.kernel.iproute import NetlinkError, ifinfhdr

        try:  # one RTM_GETLINK by name; link_lookup() would dump every link
            return self._ipr(netns).link("get", ifname=name,
                                         answer=ifinfhdr if fields_only else None)[0]
        except NetlinkError as e:
            if e.code in GONE:
                return None
            raise KernelError(f"cannot look up {name}: {os.strerror(e.code)}") from e

    def _index(self, netns: str | None, name: str) -> int | None:
        msg = self._link_msg(netns, name, fields_only=True)
        return None if msg is None else msg["index"]

    def has_link(self, netns: str | None, name: str) -> bool:
        """Whether `netns` has a link of that name (its index asked, no attribute read)."""
        return self._index(netns, name) is not None

    def _need_index(self, netns: str | None, name: str) -> int:
        index = self._index(netns, name)
        if index is None:
            where = f"namespace {netns}" if netns else "this namespace"
            raise KernelError(f"there is no link {name!r} in {where}")
        return index

    # -- links, addresses, routes ---------------------------------------------------------------

    def add_link(self, netns: str | None, name: str, kind: str, peer: str | None = None,
                 peer_netns: str | None = None, alias: str = TAG) -> None:
        """Create a bridge or a veth pair, both ends tagged with `alias` (the lab's mark)."""
        ipr = self._ipr(netns)
        extra: dict[str, Any] = {}
        if kind == "veth":
            extra["peer"] = {"ifname": peer, **({"net_ns_fd": peer_netns} if peer_netns else {})}
        self._call(f"add link {name}", lambda: ipr.link("add", ifname=name, kind=kind, **extra))
        # The alias is the kernel-side ownership tag; RTM_NEWLINK ignores it, so set it after.
        self.tag_link(netns, name, alias)
        if peer:
            self.tag_link(peer_netns or netns, peer, alias)

    def _set_link(self, netns: str | None, name: str, what: str, **attrs: Any) -> None:
        """`ip link set NAME ...`: one RTM_SETLINK that names the link (no index lookup first)."""
        from cnilab.kernel.iproute import NetlinkError

        try:
            self._ipr(netns).link("set", ifname=name, **attrs)
        except NetlinkError as e:
            if e.code == errno.ENODEV:
                where = f"namespace {netns}" if netns else "this namespace"
                raise KernelError(f"there is no link {name!r} in {where}") from e
            raise KernelError(f"the kernel refused to {what}: {os.strerror(e.code)}") from e

    def tag_link(self, netns: str | None, name: str, alias: str = TAG) -> None:
        """Mark a link as a lab's (ip link set NAME alias MARK)."""
        self._set_link(netns, name, f"tag {name}", ifalias=alias)

    def delete_link(self, netns: str | None, name: str) -> bool:
        """Delete a link; False when it (or its namespace) is already gone."""
        if netns is not None and not os.path.exists(netns_path(netns)):
            return False
        index = self._index(netns, name)
        if index is None:
            return False
        return self._remove(f"delete {name}", lambda: self._ipr(netns).link("del", index=index))

    def move_link(self, netns: str | None, name: str, target: str) -> None:
        """Move a link into another namespace (ip link set NAME netns TARGET)."""
        self._set_link(netns, name, f"move {name} to {target}", net_ns_fd=target)

    def set_master(self, netns: str | None, name: str, master: str) -> None:
        """Attach a link to a bridge; the kernel wants the bridge's index, not its name."""
        master_index = self._need_index(netns, master)
        self._set_link(netns, name, f"attach {name} to {master}", master=master_index)

    def add_address(self, netns: str | None, dev: str, cidr: str,
                    broadcast: bool = False) -> None:
        """Add an IPv4 address with its prefix to a link (and its broadcast: `brd +`)."""
        iface, index = IPv4Interface(cidr), self._need_index(netns, dev)
        extra = {"broadcast": str(iface.network.broadcast_address)} if broadcast else {}
        self._call(f"add {cidr} to {dev}", lambda: self._ipr(netns).addr(
            "add", index=index, address=str(iface.ip), prefixlen=iface.network.prefixlen,
            **extra))

    def set_up(self, netns: str | None, name: str) -> None:
        """Bring a link up."""
        self._set_link(netns, name, f"bring {name} up", state="up")

    def add_route(self, netns: str | None, dst: str, gateway: str, dev: str | None = None,
                  prepend: bool = False) -> None:
        """Add a route via a gateway (dst 'default' or a CIDR), out of `dev` if given.

        prepend: `ip route prepend` (NLM_F_CREATE without NLM_F_EXCL), as the reference CNI
        plugins add routes: a second default route (a second network) goes before the first
        instead of failing with EEXIST.
        """
        # proto boot, as `ip route add` does (pyroute2's default, static, shows in `ip route`).
        extra: dict[str, Any] = {"oif": self._need_index(netns, dev)} if dev else {}
        command: Any = "add"
        if prepend:
            from cnilab.kernel.iproute import NLM_F_ACK, NLM_F_CREATE, NLM_F_REQUEST, RTM_NEWROUTE

            command = (RTM_NEWROUTE, NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE)
            extra["type"] = 1  # unicast: pyroute2 fills it in only for its named commands
        self._call(f"add route {dst} via {gateway}", lambda: self._ipr(netns).route(
            command, dst=dst, gateway=gateway, proto=3, **extra))

    def set_down(self, netns: str | None, name: str) -> None:
        """Take a link down (ip link set NAME down)."""
        self._set_link(netns, name, f"take {name} down", state="down")

    def set_nomaster(self, netns: str | None, name: str) -> None:
        """Detach a link from its bridge (ip link set NAME nomaster): master index 0."""
        self._set_link(netns, name, f"detach {name} from its bridge", master=0)

    def delete_address(self, netns: str | None, dev: str, cidr: str) -> bool:
        """Remove an address from a link; False when it (or the link) is already gone."""
        iface, index = IPv4Interface(cidr), self._index(netns, dev)
        if index is None:
            return False
        return self._remove(f"remove {cidr} from {dev}", lambda: self._ipr(netns).addr(
            "del", index=index, address=str(iface.ip), prefixlen=iface.network.prefixlen))

    def delete_route(self, netns: str | None, dst: str, gateway: str) -> bool:
        """Remove a route via a gateway; False when it is already gone."""
        return self._remove(f"remove route {dst} via {gateway}",
                            lambda: self._ipr(netns).route("del", dst=dst, gateway=gateway))

    def replace_route(self, netns: str | None, dst: str, gateway: str) -> None:
        """Add a route via a gateway, or point the one for `dst` at it (ip route replace)."""
        self._call(f"replace route {dst} via {gateway}",
                   lambda: self._ipr(netns).route("replace", dst=dst, gateway=gateway, proto=3))

    def set_mtu(self, netns: str | None, name: str, mtu: int) -> None:
        """Set a link's MTU (ip link set NAME mtu MTU)."""
        self._set_link(netns, name, f"set the mtu of {name} to {mtu}", mtu=mtu)

    def set_hairpin(self, netns: str | None, name: str, on: bool = True) -> None:
        """Let a bridge port send frames back out of the port they came in on (hairpin mode)."""
        index = self._need_index(netns, name)
        self._call(f"set hairpin mode on {name}",
                   lambda: self._ipr(netns).brport("set", index=index, mode=int(on)))

    def get_link(self, netns: str | None, name: str) -> Link | None:
        """One link as observed (kind, master, addresses, MAC), or None when there is none.

        Asked by name (RTM_GETLINK), not found in a dump: a node with a hundred pods has a
        hundred veths, and a CNI ADD asks several times.
        """
        msg = self._link_msg(netns, name)
        if msg is None:
            return None
        a, index = attrs_of(msg), msg["index"]
        names = {index: name}
        master = attr(a, "IFLA_MASTER")
        if master:
            master_name = self._name_of(netns, master)
            if master_name is not None:
                names[master] = master_name
        return to_link(msg, names, self._addresses(netns, index), a)

    def mac_of(self, netns: str | None, name: str) -> str | None:
        """A link's MAC address (one RTM_GETLINK), or None when there is no such link."""
        msg = self._link_msg(netns, name)
        return None if msg is None else attr(attrs_of(msg), "IFLA_ADDRESS")

    def set_mac(self, netns: str | None, name: str, mac: str) -> None:
        """Set a link's MAC address (ip link set NAME address MAC)."""
        self._set_link(netns, name, f"set the MAC of {name}", address=mac)

    def read_links_routes(self, netns: str | None
                           ) -> tuple[RawLinks, tuple[Route, ...]]:
        """Every link (with its raw peer index) and the main table's unicast routes."""
        ipr = self._ipr(netns)
        msgs = [(m, attrs_of(m)) for m in ipr.get_links()]
        names = {m["index"]: attr(a, "IFLA_IFNAME") for m, a in msgs}
        addrs = self._addresses(netns)
        # A veth's peer: IFLA_LINK is its index; IFLA_LINK_NETNSID says it is elsewhere.
        links = [(to_link(m, names, addrs, a), attr(a, "IFLA_LINK"),
                  attr(a, "IFLA_LINK_NETNSID")) for m, a in msgs]
        routes = []
        for r in ipr.get_routes(family=socket.AF_INET, table=254):
            if r["type"] != 1:  # unicast only
                continue
            a = attrs_of(r)
            dst = attr(a, "RTA_DST")
            routes.append(Route(f"{dst}/{r['dst_len']}" if dst else "default",
                                attr(a, "RTA_GATEWAY"), names.get(attr(a, "RTA_OIF"))))
        return links, tuple(routes)

    def _addresses(self, netns: str | None, index: int | None = None) -> dict[int, list[str]]:
        """The IPv4 addresses ("10.0.0.1/24") of every link, or of link `index`, by index."""
        found: dict[int, list[str]] = {}
        for a in self._ipr(netns).get_addr(family=socket.AF_INET, index=index):
            local = attr(attrs_of(a), "IFA_ADDRESS")
            found.setdefault(a["index"], []).append(f"{local}/{a['prefixlen']}")
        return found

    def read_neighbours(self, netns: str | None, names: dict[int, str]
                        ) -> tuple[Neighbour, ...]:
        """The IPv4 neighbour (ARP) table, multicast/no-ARP entries left out (`ip neigh`)."""
        found = []
        for n in self._ipr(netns).get_neighbours(family=socket.AF_INET):
            if n["state"] & NUD_NOARP or not n.get("NDA_DST"):
                continue
            found.append(Neighbour(n.get("NDA_DST"), n.get("NDA_LLADDR"),
                                   names.get(n["ifindex"]), NUD.get(n["state"], "NONE")))
        return tuple(found)

    def read_fdb(self, netns: str | None, names: dict[int, str]) -> tuple[FdbEntry, ...]:
        """The bridges' forwarding databases: MAC -> port (`bridge fdb show`, master entries)."""
        found = []
        for n in self._ipr(netns).get_neighbours(family=socket.AF_BRIDGE):
            master = n.get("NDA_MASTER")
            if master is None or not n.get("NDA_LLADDR"):
                continue  # a port's own multicast list ("self"), not the bridge's table
            found.append(FdbEntry(n.get("NDA_LLADDR"), names.get(n["ifindex"]),
                                  names.get(master), bool(n["state"] & NUD_PERMANENT)))
        return tuple(found)

    def route_get(self, netns: str | None, dst: str, src: str | None = None,
                  iif: str | None = None) -> RouteDecision:
        """The kernel's routing decision for a packet (ip route get DST [from SRC iif DEV]).

        With `iif`, the packet is looked up as one arriving there (the forwarding path),
        which is where ip_forward=0 answers "No route to host".
        """
        from cnilab.kernel.iproute import NetlinkError

        ipr = self._ipr(netns)
        args: dict[str, Any] = {"dst": dst}
        if src:
            args["src"] = src
        if iif:
            index = self._index(netns, iif)
            if index is None:
                return RouteDecision(dst, "", error=f"no link {iif}")
            args["iif"] = index
        try:
            msg = ipr.route("get", **args)[0]
        except NetlinkError as e:
            return RouteDecision(dst, "", error=os.strerror(e.code))
        oif = msg.get("RTA_OIF")
        dev = self._name_of(netns, oif) if oif else None
        return RouteDecision(dst, RTN.get(msg["type"], str(msg["type"])), dev,
                             msg.get("RTA_GATEWAY"), msg.get("RTA_PREFSRC"))

    def nsid_map(self, netns: str | None, others: list[str | None]) -> dict[int, str | None]:
        """The ids `netns` knows the other namespaces by (RTM_GETNSID), for veth peers."""
        found: dict[int, str | None] = {}
        ipr = self._ipr(netns)
        for other in others:
            if other == netns:
                continue
            path = "/proc/self/ns/net" if other is None else netns_path(other)
            try:
                fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
            except OSError:
                continue
            try:
                nsid = ipr.get_nsid(fd)
            finally:
                os.close(fd)
            if nsid is not None:
                found[nsid] = other
        return found

    def _name_of(self, netns: str | None, index: int) -> str | None:
        from cnilab.kernel.iproute import NetlinkError

        try:
            return self._ipr(netns).link("get", index=index)[0].get("ifname")
        except NetlinkError:
            return None


def _key(netns: str | None) -> str | None:
    """One key per namespace, named or given as its path (a CNI runtime passes the path)."""
    return None if netns is None else netns_path(netns)
