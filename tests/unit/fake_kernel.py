"""A recording fake kernel for root-free unit tests (never used by the kernel tests).

It implements the same protocol as cnilab.ops.Kernel (what ops call) plus what Lab and the
ledger's teardown use (observe, close, require_iptables), keeps a tiny state (namespaces with
an inode and a cookie, links with alias, master, addresses, sysctls, NAT rules, servers) and
records every call, so a test can assert what was, and what was not, touched.
"""

from __future__ import annotations

import itertools
import shlex
from collections.abc import Callable, Iterable
from typing import Any

from cnilab.compat import field, replace, valueclass
from cnilab.errors import KernelError
from cnilab.names import TAG
from cnilab.state import Link, Namespace, Route, Snapshot

NetnsId = dict[str, Any]
Where = Any  # str | None: a namespace name, None for the namespace cnilab runs in


@valueclass
class FakeNetns:
    """One namespace of the fake: its id and what is in it."""

    ident: NetnsId
    links: dict[str, Link] = field(default_factory=dict)
    routes: list[Route] = field(default_factory=list)
    sysctls: dict[str, str] = field(default_factory=lambda: {"net.ipv4.ip_forward": "0"})
    rules: list[str] = field(default_factory=list)
    listening: set[int] = field(default_factory=set)


class FakeKernel:
    """The kernel as a dict; `calls` lists (method, args) in order."""

    def __init__(self, has_iptables: bool = True) -> None:
        self.calls: list[tuple[str, tuple[Any, ...]]] = []
        self.has_iptables = has_iptables
        self.refuse: set[str] = set()  # methods that raise KernelError, as a refusing kernel
        self._inodes = itertools.count(4026532000)
        self._cookies = itertools.count(100)
        self._indexes = itertools.count(2)
        self.spaces: dict[Where, FakeNetns] = {None: self._new_space()}

    # -- bookkeeping ---------------------------------------------------------------------------

    def _new_space(self) -> FakeNetns:
        space = FakeNetns({"ino": next(self._inodes), "dev": 4, "cookie": next(self._cookies)})
        space.links["lo"] = Link("lo", "loopback", 1)
        return space

    def _space(self, netns: Where) -> FakeNetns:
        if netns not in self.spaces:
            raise KernelError(f"namespace {netns!r} does not exist")
        return self.spaces[netns]

    def _log(self, name: str, *args: Any) -> None:
        self.calls.append((name, args))
        if name in self.refuse:
            raise KernelError(f"the kernel refused to {name}: Operation not permitted")

    def touched(self) -> list[str]:
        """The names of the methods that changed something, in order."""
        looks = {"netns_id", "get_link", "read_sysctl", "observe", "close", "close_netns",
                 "require_iptables"}
        return [name for name, _ in self.calls if name not in looks
                and not (name == "iptables" and "-S" in _[1][1])]

    # -- what someone else does (not recorded as ours) -----------------------------------------

    def someone_makes_netns(self, name: str) -> None:
        """A namespace made by hand (ip netns add), not by cnilab."""
        self.spaces[name] = self._new_space()

    def someone_makes_link(self, netns: Where, name: str, kind: str = "bridge") -> None:
        """A link made by hand: no alias."""
        self._space(netns).links[name] = Link(name, kind, next(self._indexes))

    # -- namespaces ----------------------------------------------------------------------------

    def add_netns(self, name: str, on_made: Callable[[NetnsId], None] | None = None) -> None:
        """As the real one: the new namespace's id goes to on_made before it is named."""
        self._log("add_netns", name)
        space = self._new_space()
        if on_made is not None:
            on_made(dict(space.ident))
        if name in self.spaces:
            raise KernelError(f"namespace {name!r} already exists")
        self.spaces[name] = space

    def netns_id(self, name: str) -> NetnsId | None:
        self._log("netns_id", name)
        space = self.spaces.get(name)
        return None if space is None or name is None else dict(space.ident)

    def remove_netns(self, name: str) -> None:
        self._log("remove_netns", name)
        space = self.spaces.pop(name, None)
        for link in space.links.values() if space else ():
            self._drop_peer(name, link)

    def list_netns(self) -> frozenset[str]:
        return frozenset(n for n in self.spaces if n is not None)

    # -- links ---------------------------------------------------------------------------------

    def _drop_peer(self, netns: Where, link: Link) -> None:
        if link.kind == "veth" and link.peer:
            where, _, name = link.peer.rpartition(":") if ":" in link.peer else ("", "", link.peer)
            other = netns if not where else (None if where == "." else where)
            if other in self.spaces:
                self.spaces[other].links.pop(name, None)

    def get_link(self, netns: Where, name: str) -> Link | None:
        self._log("get_link", netns, name)
        return self._space(netns).links.get(name)

    def add_link(self, netns: Where, name: str, kind: str, peer: str | None = None,
                 peer_netns: str | None = None, alias: str = TAG) -> None:
        self._log("add_link", netns, name, kind, peer, peer_netns)
        space = self._space(netns)
        other = self._space(peer_netns) if peer_netns else space
        if name in space.links or (peer and peer in other.links):
            raise KernelError(f"the kernel refused to add link {name}: File exists")
        if kind == "veth":
            assert peer is not None
            space.links[name] = Link(name, kind, next(self._indexes), alias=alias,
                                     peer=f"{peer_netns}:{peer}" if peer_netns else peer)
            back = f"{netns or '.'}:{name}" if peer_netns else name
            other.links[peer] = Link(peer, kind, next(self._indexes), alias=alias, peer=back)
        else:
            space.links[name] = Link(name, kind, next(self._indexes), alias=alias)

    def delete_link(self, netns: Where, name: str) -> bool:
        self._log("delete_link", netns, name)
        space = self.spaces.get(netns)
        link = space.links.pop(name, None) if space else None
        if link is None:
            return False
        self._drop_peer(netns, link)
        return True

    def _change(self, netns: Where, name: str, **changes: Any) -> None:
        space = self._space(netns)
        if name not in space.links:
            raise KernelError(f"there is no link {name!r}")
        space.links[name] = replace(space.links[name], **changes)

    def move_link(self, netns: Where, name: str, target: str) -> None:
        self._log("move_link", netns, name, target)
        link = self._space(netns).links.pop(name)
        self._space(target).links[name] = link

    def set_master(self, netns: Where, name: str, master: str) -> None:
        self._log("set_master", netns, name, master)
        self._change(netns, name, master=master)

    def add_address(self, netns: Where, dev: str, cidr: str, broadcast: bool = False) -> None:
        self._log("add_address", netns, dev, cidr, *(("brd",) if broadcast else ()))
        link = self._space(netns).links.get(dev)
        if link is None:
            raise KernelError(f"there is no link {dev!r}")
        self._change(netns, dev, addresses=(*link.addresses, cidr))

    def set_up(self, netns: Where, name: str) -> None:
        self._log("set_up", netns, name)
        self._change(netns, name, up=True)

    def set_mac(self, netns: Where, name: str, mac: str) -> None:
        self._log("set_mac", netns, name, mac)
        self._change(netns, name, mac=mac)

    def add_route(self, netns: Where, dst: str, gateway: str) -> None:
        self._log("add_route", netns, dst, gateway)
        self._space(netns).routes.append(Route(dst, gateway))

    # -- sysctls, iptables, processes --------------------------------------------------------

    def read_sysctl(self, netns: Where, key: str) -> str:
        self._log("read_sysctl", netns, key)
        return self._space(netns).sysctls.get(key, "0")

    def write_sysctl(self, netns: Where, key: str, value: str) -> None:
        self._log("write_sysctl", netns, key, value)
        self._space(netns).sysctls[key] = value

    def require_iptables(self) -> str:
        from cnilab.kernel.iptables import require  # the real error and its install hint

        return require("/usr/sbin/iptables" if self.has_iptables else None)

    def iptables(self, netns: Where, args: list[str], missing_ok: bool = False) -> str:
        self._log("iptables", netns, list(args))
        if missing_ok and netns not in self.spaces:
            return ""
        rules = self._space(netns).rules
        action = args[2]
        rule = shlex.join(["-A", *args[3:]])
        if action == "-S":
            return "".join(r + "\n" for r in rules)
        if action == "-A":
            rules.append(rule)
        elif action == "-D":
            if rule in rules:
                rules.remove(rule)
            elif not missing_ok:
                raise KernelError("iptables: Bad rule (does a matching rule exist in that chain?)")
        return ""

    def iptables_restore(self, netns: Where, table: str, lines: list[list[str]]) -> None:
        self._log("iptables_restore", netns, table, [list(ln) for ln in lines])
        rules = self._space(netns).rules
        after = list(rules)
        for line in lines:
            rule = shlex.join(["-A", *line[1:]])
            if line[0] == "-A":
                after.append(rule)
            elif rule in after:
                after.remove(rule)
            else:  # one transaction: a missing rule fails it all, and nothing changes
                raise KernelError("iptables-restore: Bad rule (does a matching rule exist?)")
        rules[:] = after

    def start_server(self, netns: Where, port: int, body: str) -> None:
        self._log("start_server", netns, port)
        self._space(netns).listening.add(port)

    def stop_server(self, netns: Where, port: int) -> None:
        self._log("stop_server", netns, port)
        if netns in self.spaces:
            self.spaces[netns].listening.discard(port)

    # -- observation ---------------------------------------------------------------------------

    def observe(self, namespaces: Iterable[Where], nat_in: Iterable[Where] = (),
                listen_in: Iterable[Where] | None = None, reuse: bool = False) -> Snapshot:
        self._log("observe", tuple(namespaces))
        nat_in = set(nat_in)
        listen = None if listen_in is None else set(listen_in)
        spaces = {}
        for name in dict.fromkeys(namespaces):
            if name not in self.spaces:
                continue
            s = self.spaces[name]
            nat = tuple(s.rules) if name in nat_in and self.has_iptables else None
            ports = tuple(sorted(s.listening)) if listen is None or name in listen else ()
            spaces[name] = Namespace(name, tuple(s.links.values()), tuple(s.routes),
                                     dict(s.sysctls), nat, ports)
        return Snapshot(self.list_netns(), spaces)

    def close(self) -> None:
        self._log("close")

    def close_netns(self, netns: Where) -> None:
        self._log("close_netns", netns)
