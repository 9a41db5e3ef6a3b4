"""Ops on namespaces, links, addresses and routes: `ip netns`, `ip link`, `ip addr`, `ip route`."""

from __future__ import annotations

from cnilab.compat import valueclass
from cnilab.names import TAG
from cnilab.ops.base import (
    BadEntry,
    Evidence,
    KernelApi,
    Key,
    Note,
    Op,
    ns_of,
    same_netns,
    shell_join,
    tagged,
)
from cnilab.state import Snapshot


@valueclass(frozen=True)
class AddNetns(Op):
    """ip netns add NAME"""

    name: str = ""

    def apply(self, kernel: KernelApi) -> None:
        kernel.add_netns(self.name)

    def apply_noting(self, kernel: KernelApi, note: Note) -> None:
        # The namespace's inode is noted before it gets its name under /run/netns, so a crash
        # between the two still leaves the proof that the name, if it exists, is ours.
        kernel.add_netns(self.name, on_made=note)

    def undo(self, kernel: KernelApi) -> None:
        kernel.remove_netns(self.name)

    def owned(self, kernel: KernelApi, done: bool, proof: Evidence | None) -> bool:
        # The namespace we made, still there: the same inode (and cookie, never reused) as noted.
        return proof is not None and same_netns(kernel.netns_id(self.name), proof)

    def satisfied(self, snap: Snapshot) -> bool:
        return self.name in snap.netns

    def argv(self) -> list[str]:
        return ["ip", "netns", "add", self.name]

    def undo_argv(self) -> list[str] | None:
        return ["ip", "netns", "del", self.name]

    def _typed(self, argv: list[str], here: str | None) -> str:
        return shell_join(argv)  # /run/netns is shared: the same wherever it is typed

    def claims(self) -> tuple[Key, ...]:
        return (("netns", self.name),)

    def check(self) -> None:
        # The name becomes a file under /run/netns: never a path out of it.
        if not self.name or "/" in self.name or self.name in (".", ".."):
            raise BadEntry("bad_name", field="name")


@valueclass(frozen=True)
class AddBridge(Op):
    """ip link add NAME type bridge"""

    name: str = ""
    mark: str = TAG  # the alias that proves the bridge ours: the lab's (names.Identity.mark)

    def apply(self, kernel: KernelApi) -> None:
        kernel.add_link(self.netns, self.name, "bridge", alias=self.mark)

    def undo(self, kernel: KernelApi) -> None:
        kernel.delete_link(self.netns, self.name)

    def owned(self, kernel: KernelApi, done: bool, proof: Evidence | None) -> bool:
        return tagged(kernel, self.netns, self.name, self.mark) is True

    def satisfied(self, snap: Snapshot) -> bool:
        link = ns_of(snap, self.netns).link(self.name)
        return link is not None and link.kind == "bridge"

    def argv(self) -> list[str]:
        return ["ip", "link", "add", self.name, "type", "bridge"]

    def undo_argv(self) -> list[str] | None:
        return ["ip", "link", "del", self.name]

    def claims(self) -> tuple[Key, ...]:
        return (("link", self.netns or "", self.name),)


@valueclass(frozen=True)
class AddVeth(Op):
    """ip link add NAME type veth peer name PEER [netns PEER_NETNS]"""

    name: str = ""
    peer: str = ""
    peer_netns: str | None = None
    mark: str = TAG  # the alias both ends carry: the lab's (names.Identity.mark)

    def apply(self, kernel: KernelApi) -> None:
        kernel.add_link(self.netns, self.name, "veth", peer=self.peer, peer_netns=self.peer_netns,
                        alias=self.mark)

    def undo(self, kernel: KernelApi) -> None:
        # Either end may have moved away; deleting the end still here takes the pair with it.
        if not kernel.delete_link(self.netns, self.name):
            kernel.delete_link(self.peer_netns or self.netns, self.peer)

    def owned(self, kernel: KernelApi, done: bool, proof: Evidence | None) -> bool:
        # The end undo deletes (this one, else the peer) carries our alias.
        here = tagged(kernel, self.netns, self.name, self.mark)
        return here if here is not None else tagged(
            kernel, self.peer_netns or self.netns, self.peer, self.mark) is True

    def satisfied(self, snap: Snapshot) -> bool:
        found = [snap.find_link(n) for n in (self.name, self.peer)]
        return all(f is not None and f[1].kind == "veth" for f in found)

    def argv(self) -> list[str]:
        argv = ["ip", "link", "add", self.name, "type", "veth", "peer", "name", self.peer]
        return argv + (["netns", self.peer_netns] if self.peer_netns else [])

    def undo_argv(self) -> list[str] | None:
        # The end that stays here: the peer, unless the peer was made in another namespace.
        return ["ip", "link", "del", self.name if self.peer_netns else self.peer]

    def claims(self) -> tuple[Key, ...]:
        return (("link", self.netns or "", self.name),
                ("link", self.peer_netns or self.netns or "", self.peer))


@valueclass(frozen=True)
class MoveToNetns(Op):
    """ip link set NAME netns TARGET"""

    name: str = ""
    target: str = ""

    def apply(self, kernel: KernelApi) -> None:
        kernel.move_link(self.netns, self.name, self.target)

    def rewind(self, kernel: KernelApi) -> None:
        if self.netns is not None and kernel.get_link(self.target, self.name) is not None:
            kernel.move_link(self.target, self.name, self.netns)  # (in place: it stays)

    def satisfied(self, snap: Snapshot) -> bool:
        return ns_of(snap, self.target).link(self.name) is not None

    def argv(self) -> list[str]:
        return ["ip", "link", "set", self.name, "netns", self.target]

    def highlights(self) -> tuple[Key, ...]:
        return (("link", self.target, self.name),)


@valueclass(frozen=True)
class SetMaster(Op):
    """ip link set NAME master BRIDGE"""

    name: str = ""
    master: str = ""

    def apply(self, kernel: KernelApi) -> None:
        kernel.set_master(self.netns, self.name, self.master)

    def rewind(self, kernel: KernelApi) -> None:
        if kernel.get_link(self.netns, self.name) is not None:
            kernel.set_nomaster(self.netns, self.name)

    def satisfied(self, snap: Snapshot) -> bool:
        link = ns_of(snap, self.netns).link(self.name)
        return link is not None and link.master == self.master

    def argv(self) -> list[str]:
        return ["ip", "link", "set", self.name, "master", self.master]

    def highlights(self) -> tuple[Key, ...]:
        return (("link", self.netns or "", self.name),)


@valueclass(frozen=True)
class SetMac(Op):
    """ip link set NAME address MAC"""

    name: str = ""
    mac: str = ""

    def apply(self, kernel: KernelApi) -> None:
        kernel.set_mac(self.netns, self.name, self.mac)

    def satisfied(self, snap: Snapshot) -> bool:
        link = ns_of(snap, self.netns).link(self.name)
        return link is not None and link.mac == self.mac

    def argv(self) -> list[str]:
        return ["ip", "link", "set", self.name, "address", self.mac]


@valueclass(frozen=True)
class AddAddress(Op):
    """ip addr add CIDR [brd +] dev DEV"""

    dev: str = ""
    cidr: str = ""
    # `brd +`: the address carries its network's broadcast (ifconfig's `broadcast`), as DHCP,
    # Docker and the reference plugins give one; `ip addr add` alone leaves it 0.0.0.0.
    broadcast: bool = False

    def apply(self, kernel: KernelApi) -> None:
        if self.broadcast:
            kernel.add_address(self.netns, self.dev, self.cidr, broadcast=True)
        else:
            kernel.add_address(self.netns, self.dev, self.cidr)

    def rewind(self, kernel: KernelApi) -> None:
        kernel.delete_address(self.netns, self.dev, self.cidr)

    def satisfied(self, snap: Snapshot) -> bool:
        link = ns_of(snap, self.netns).link(self.dev)
        return link is not None and self.cidr in link.addresses

    def argv(self) -> list[str]:
        brd = ["brd", "+"] if self.broadcast else []
        return ["ip", "addr", "add", self.cidr, *brd, "dev", self.dev]

    def highlights(self) -> tuple[Key, ...]:
        return (("link", self.netns or "", self.dev),)


@valueclass(frozen=True)
class LinkUp(Op):
    """ip link set NAME up"""

    name: str = ""

    def apply(self, kernel: KernelApi) -> None:
        kernel.set_up(self.netns, self.name)

    def rewind(self, kernel: KernelApi) -> None:
        if kernel.get_link(self.netns, self.name) is not None:
            kernel.set_down(self.netns, self.name)

    def satisfied(self, snap: Snapshot) -> bool:
        link = ns_of(snap, self.netns).link(self.name)
        return link is not None and link.up

    def argv(self) -> list[str]:
        return ["ip", "link", "set", self.name, "up"]

    def highlights(self) -> tuple[Key, ...]:
        return (("link", self.netns or "", self.name),)


@valueclass(frozen=True)
class AddRoute(Op):
    """ip route add DST via GATEWAY"""

    dst: str = "default"
    gateway: str = ""

    def apply(self, kernel: KernelApi) -> None:
        kernel.add_route(self.netns, self.dst, self.gateway)

    def rewind(self, kernel: KernelApi) -> None:
        kernel.delete_route(self.netns, self.dst, self.gateway)

    def satisfied(self, snap: Snapshot) -> bool:
        return any(r.dst == self.dst and r.gateway == self.gateway
                   for r in ns_of(snap, self.netns).routes)

    def argv(self) -> list[str]:
        return ["ip", "route", "add", self.dst, "via", self.gateway]

    def highlights(self) -> tuple[Key, ...]:
        return (("route", self.netns or "", self.dst),)
