"""pyroute2's IPRoute calls as netlink.py makes them, on a plain socket, with no event loop.

pyroute2 0.9's IPRoute runs every call through an asyncio loop (1.5 to 3 ms a dump) and its
import brings asyncio, multiprocessing, ssl, NDB and IPDB (~0.13 s of CPU, more than all of
`cnilab status` may take). What knows the kernel's formats is its message classes (ifinfmsg,
ifaddrmsg, rtmsg, ndmsg): alone they load in ~0.02 s and a request is one send() and one
recv(). This class takes the same keywords as IPRoute for the requests cnilab sends, builds the
same messages, and answers with the same decoded message objects.
"""

from __future__ import annotations

import importlib.util
import os
import socket
import struct
import sys
import types
from collections.abc import Callable
from ipaddress import IPv4Network
from typing import Any

from cnilab.kernel.messages import (
    HEADER,
    RTM_DELADDR,
    RTM_DELLINK,
    RTM_DELROUTE,
    RTM_GETADDR,
    RTM_GETLINK,
    RTM_GETNEIGH,
    RTM_GETNSID,
    RTM_GETROUTE,
    RTM_NEWADDR,
    RTM_NEWLINK,
    RTM_NEWNEIGH,
    RTM_NEWNSID,
    RTM_NEWROUTE,
    headers,
)
from cnilab.kernel.netns import netns_path


def _bare_package() -> None:
    """pyroute2 as a bare package: its submodules load alone, its __init__ only if asked.

    pyroute2/__init__.py imports every pyroute2 module; a package object with the same
    __path__ lets `pyroute2.netlink.rtnl.ifinfmsg` load without it. Whoever asks for a name of
    the package itself (`from pyroute2 import IPRoute`) gets the real __init__ run then, once.
    """
    if "pyroute2" in sys.modules:
        return
    spec = importlib.util.find_spec("pyroute2")
    if spec is None or not spec.origin or not spec.submodule_search_locations:
        return  # let the imports below fail as they would
    origin = spec.origin
    package = types.ModuleType("pyroute2")
    package.__path__ = list(spec.submodule_search_locations)
    package.__spec__, package.__file__ = spec, origin

    def complete(name: str) -> Any:
        if name.startswith("__") or any(os.path.exists(os.path.join(p, name + end))
                                        for p in package.__path__ for end in ("", ".py")):
            raise AttributeError(name)  # a submodule: the import system loads it
        del package.__getattr__
        with open(origin, encoding="utf-8") as f:
            exec(compile(f.read(), origin, "exec"), package.__dict__)
        return getattr(package, name)

    package.__getattr__ = complete  # type: ignore[method-assign]
    sys.modules["pyroute2"] = package


_bare_package()

from pyroute2.netlink.exceptions import NetlinkError  # noqa: E402
from pyroute2.netlink.rtnl.ifaddrmsg import ifaddrmsg  # noqa: E402
from pyroute2.netlink.rtnl.ifinfmsg import ifinfmsg  # noqa: E402
from pyroute2.netlink.rtnl.ndmsg import ndmsg  # noqa: E402
from pyroute2.netlink.rtnl.nsidmsg import nsidmsg  # noqa: E402
from pyroute2.netlink.rtnl.rtmsg import rtmsg  # noqa: E402


class ifinfhdr(ifinfmsg):
    """An RTM_NEWLINK answer read to its fixed fields (index, flags) only: a link's ~40
    attributes left unread, as a lookup of an index by name needs none of them."""

    nla_map = ()


NLMSG_ERROR, NLMSG_DONE = 2, 3
NLM_F_REQUEST, NLM_F_MULTI, NLM_F_ACK, NLM_F_DUMP_INTR, NLM_F_DUMP = 0x1, 0x2, 0x4, 0x10, 0x300
NLM_F_REPLACE, NLM_F_EXCL, NLM_F_CREATE = 0x100, 0x200, 0x400
CREATE = NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL  # a new object; EEXIST if it is there
NSID_NOT_ASSIGNED = 0xFFFFFFFF  # (u32)-1: the namespace has given the other one no id
IFF_UP, RT_TABLE_MAIN, RT_SCOPE_UNIVERSE, RT_SCOPE_NOWHERE, RTN_UNICAST = 0x1, 254, 0, 255, 1
ANSWERS: dict[int, type] = {RTM_NEWLINK: ifinfmsg, RTM_NEWADDR: ifaddrmsg, RTM_NEWROUTE: rtmsg,
                            RTM_NEWNEIGH: ndmsg, RTM_NEWNSID: nsidmsg}
_DUMPS: dict[tuple[type, int, int], bytes] = {}  # dump requests, encoded once
# IPRoute's keywords for `link set` and the attribute each one is.
LINK_ATTRS = {"ifname": "IFLA_IFNAME", "ifalias": "IFLA_IFALIAS", "master": "IFLA_MASTER",
              "mtu": "IFLA_MTU", "address": "IFLA_ADDRESS"}

__all__ = ["IPRoute", "NetlinkError"]


class IPRoute:
    """The IPRoute calls cnilab makes, on one rtnetlink socket (one caller at a time)."""

    def __init__(self, use_socket: socket.socket,
                 on_change: Callable[[bool], None] | None = None) -> None:
        self.sock = use_socket
        self._seq = 0
        # Told after each change the kernel accepted: True when it may show in another
        # namespace too (a link moved or deleted, a veth's peer made elsewhere).
        self._on_change = on_change

    def close(self) -> None:
        """Close the socket."""
        self.sock.close()

    # -- requests ------------------------------------------------------------------------------

    def request(self, msg: Any, kind: int, flags: int = 0, elsewhere: bool = False,
                answer: type | None = None) -> list[Any]:
        """Send `msg` as message type `kind`; the answers decoded (as `answer` if given).
        NetlinkError if refused."""
        msg["header"].update(type=kind, flags=NLM_F_REQUEST | flags)
        msg.reset()
        msg.encode()
        found = self._exchange(bytearray(msg.data), bool(flags & NLM_F_DUMP), answer)
        if kind & 3 != 2 and self._on_change is not None:  # not an RTM_GET*: a change
            self._on_change(elsewhere or kind == RTM_DELLINK)
        return found

    def dump(self, cls: type, kind: int, family: int) -> list[Any]:
        """Every object of a kind (RTM_GETLINK, ...): the same request each time, so encoded
        once by pyroute2 and sent again with only its sequence number changed."""
        key = (cls, kind, family)
        if key not in _DUMPS:
            msg = _msg(cls, family=family)
            msg["header"].update(type=kind, flags=NLM_F_REQUEST | NLM_F_DUMP)
            msg.encode()
            _DUMPS[key] = bytes(msg.data)
        return self._exchange(bytearray(_DUMPS[key]), True, None)

    def _exchange(self, data: bytearray, dump: bool, answer: type | None) -> list[Any]:
        """Send an encoded request under a new sequence number; its answers."""
        found: list[Any] = []
        for _ in range(3):  # a dump the kernel marks interrupted (changed meanwhile) is redone
            self._seq += 1
            struct.pack_into("=I", data, 8, self._seq)  # nlmsghdr's sequence number
            self.sock.send(data)
            found, interrupted = self._answers(self._seq, dump, answer)
            if not interrupted:
                break
        return found

    def _answers(self, seq: int, dump: bool, answer: type | None) -> tuple[list[Any], bool]:
        found: list[Any] = []
        interrupted = False
        while True:
            data = self.sock.recv(1 << 16)
            for kind, flags, offset, length in headers(data):
                if HEADER.unpack_from(data, offset)[3] != seq:
                    continue  # the answer to an earlier request that was given up on
                interrupted |= bool(flags & NLM_F_DUMP_INTR)
                if kind == NLMSG_ERROR:
                    code = -struct.unpack_from("=i", data, offset + HEADER.size)[0]
                    if code:
                        raise NetlinkError(code)
                    return found, interrupted  # the ACK
                if kind == NLMSG_DONE:
                    return found, interrupted
                cls = answer or ANSWERS.get(kind)
                if cls is not None:
                    msg = cls(data[offset:offset + length])
                    msg.decode()
                    found.append(msg)
                if not dump and not flags & NLM_F_MULTI:
                    return found, interrupted

    # -- IPRoute's calls -----------------------------------------------------------------------

    def link(self, command: str, **kw: Any) -> list[Any]:
        """link('get'|'add'|'set'|'del', ...) with IPRoute's keywords (and answer=ifinfhdr for
        a 'get' that needs only the index and flags)."""
        msg = _msg(ifinfmsg, index=kw.pop("index", 0))
        if command == "get":
            if "ifname" in kw:
                msg["attrs"].append(("IFLA_IFNAME", kw["ifname"]))
            return self.request(msg, RTM_GETLINK, answer=kw.get("answer"))
        if command == "del":
            if "ifname" in kw:
                msg["attrs"].append(("IFLA_IFNAME", kw["ifname"]))
            return self.request(msg, RTM_DELLINK, NLM_F_ACK)
        fds = []
        try:
            if command == "add":
                msg["attrs"].append(("IFLA_IFNAME", kw["ifname"]))
                info: list[Any] = [("IFLA_INFO_KIND", kw["kind"])]
                if "peer" in kw:
                    peer = _msg(ifinfmsg)
                    peer["attrs"].append(("IFLA_IFNAME", kw["peer"]["ifname"]))
                    if kw["peer"].get("net_ns_fd") is not None:
                        fds.append(_netns_fd(kw["peer"]["net_ns_fd"]))
                        peer["attrs"].append(("IFLA_NET_NS_FD", fds[-1]))
                    info.append(("IFLA_INFO_DATA", {"attrs": [
                        ("VETH_INFO_PEER", {"attrs": peer["attrs"]})]}))
                msg["attrs"].append(("IFLA_LINKINFO", {"attrs": info}))
                return self.request(msg, RTM_NEWLINK, CREATE, elsewhere=bool(fds))
            # set: RTM_NEWLINK without NLM_F_CREATE changes a link, as `ip link set` sends it.
            state = kw.pop("state", None)
            if state is not None:
                msg["flags"], msg["change"] = (IFF_UP if state == "up" else 0), IFF_UP
            if "net_ns_fd" in kw:
                fds.append(_netns_fd(kw.pop("net_ns_fd")))
                msg["attrs"].append(("IFLA_NET_NS_FD", fds[-1]))
            if kw.get("kind") == "bridge_slave":  # brport set: the port's options as a slave
                data = [(f"IFLA_BRPORT_{k.upper()}", v) for k, v in kw.items() if k != "kind"]
                msg["attrs"].append(("IFLA_LINKINFO", {"attrs": [
                    ("IFLA_INFO_SLAVE_KIND", "bridge"),
                    ("IFLA_INFO_SLAVE_DATA", {"attrs": data})]}))
            else:
                msg["attrs"] += [(LINK_ATTRS[k], v) for k, v in kw.items()]
            return self.request(msg, RTM_NEWLINK, NLM_F_ACK, elsewhere=bool(fds))
        finally:
            for fd in fds:
                os.close(fd)

    def brport(self, command: str, **kw: Any) -> list[Any]:
        """brport('set', index=..., mode=...): a bridge port's options."""
        return self.link(command, kind="bridge_slave", **kw)

    def addr(self, command: str, index: int, address: str, prefixlen: int,
             broadcast: str | None = None) -> list[Any]:
        """addr('add'|'del', index, address, prefixlen[, broadcast]): IFA_LOCAL and IFA_ADDRESS
        (and IFA_BROADCAST), as `ip`."""
        msg = _msg(ifaddrmsg, family=socket.AF_INET, prefixlen=prefixlen, index=index)
        msg["attrs"] += [("IFA_LOCAL", address), ("IFA_ADDRESS", address)]
        if broadcast is not None:
            msg["attrs"].append(("IFA_BROADCAST", broadcast))
        if command == "add":
            return self.request(msg, RTM_NEWADDR, CREATE)
        return self.request(msg, RTM_DELADDR, NLM_F_ACK)

    def route(self, command: Any, **kw: Any) -> list[Any]:
        """route('add'|'del'|'replace'|'get'|(type, flags), dst=..., gateway=..., ...)."""
        msg = _msg(rtmsg, family=socket.AF_INET, table=RT_TABLE_MAIN)
        dst = kw.get("dst", "default")
        if dst != "default":
            net = IPv4Network(dst, strict=False)
            msg["dst_len"] = 32 if command == "get" else net.prefixlen
            msg["attrs"].append(("RTA_DST", str(net.network_address)))
        for key in ("gateway", "oif", "src", "iif"):
            if kw.get(key) is not None:
                msg["attrs"].append((f"RTA_{key.upper()}", kw[key]))
        if command == "get":
            if kw.get("src"):
                msg["src_len"] = 32
            msg["table"] = 0
            return self.request(msg, RTM_GETROUTE)
        if command == "del":
            # As `ip route del`: scope "nowhere", no type, no protocol match any route so far.
            msg["scope"] = RT_SCOPE_NOWHERE
            return self.request(msg, RTM_DELROUTE, NLM_F_ACK)
        msg["proto"] = kw.get("proto", 3)
        msg["scope"], msg["type"] = RT_SCOPE_UNIVERSE, kw.get("type", RTN_UNICAST)
        if command == "replace":
            return self.request(msg, RTM_NEWROUTE, NLM_F_ACK | NLM_F_CREATE | NLM_F_REPLACE)
        if command == "add":
            return self.request(msg, RTM_NEWROUTE, CREATE)
        kind, flags = command
        return self.request(msg, kind, flags & ~NLM_F_REQUEST)

    def get_nsid(self, fd: int) -> int | None:
        """RTM_GETNSID: the id this socket's namespace gives the namespace open as `fd`, or
        None (no id given; an old kernel without RTM_GETNSID)."""
        msg = _msg(nsidmsg, rtgen_family=socket.AF_UNSPEC)
        msg["attrs"].append(("NETNSA_FD", fd))
        try:
            found = self.request(msg, RTM_GETNSID)
        except NetlinkError:
            return None
        nsid = found[0].get_attr("NETNSA_NSID") if found else None
        return None if nsid is None or nsid == NSID_NOT_ASSIGNED else nsid

    # -- dumps ---------------------------------------------------------------------------------

    def get_links(self) -> list[Any]:
        """Every link (ip link)."""
        return self.dump(ifinfmsg, RTM_GETLINK, socket.AF_UNSPEC)

    def get_addr(self, family: int = socket.AF_INET, index: int | None = None) -> list[Any]:
        """Every address of `family` (ip addr), or only those of link `index`."""
        found = self.dump(ifaddrmsg, RTM_GETADDR, family)
        return found if index is None else [a for a in found if a["index"] == index]

    def get_routes(self, family: int = socket.AF_INET, table: int | None = None) -> list[Any]:
        """Every route of `family` (ip route show table all), or those of one table."""
        found = self.dump(rtmsg, RTM_GETROUTE, family)
        if table is None:
            return found
        return [r for r in found if (r.get("RTA_TABLE") or r["table"]) == table]

    def get_neighbours(self, family: int = socket.AF_INET) -> list[Any]:
        """The neighbour table (ip neigh), or with AF_BRIDGE the bridges' FDB (bridge fdb)."""
        return self.dump(ndmsg, RTM_GETNEIGH, family)


def _msg(cls: type, **fields: Any) -> Any:
    msg = cls()
    for name, value in fields.items():
        msg[name] = value
    msg["attrs"] = []
    return msg


def _netns_fd(target: str | int) -> int:
    """A namespace for IFLA_NET_NS_FD, which wants an open descriptor (dup'd: closed after)."""
    if isinstance(target, int):
        return os.dup(target)
    return os.open(netns_path(target), os.O_RDONLY | os.O_CLOEXEC)
