"""Raw rtnetlink with the standard library: the messages a CNI plugin call sends, and no more.

A runtime starts the plugin for every ADD and DEL, so its imports are latency: pyroute2 0.9
brings asyncio, multiprocessing, unittest.mock, ssl and the tc modules (100 to 250 ms). The
plugin needs a dozen rtnetlink messages (link get/add/del/set, address add and dump, route add,
bridge port mode, one dump of links and routes), built here with struct, the same requests
pyroute2 sends. `RawNetlink` has the link, address and route methods of `netlink.Netlink`;
`PluginKernel` is the Kernel with them, used by the plugin executable (reading the FDB or the
neighbours, which only CHECK's observation does, still goes through pyroute2). The in-process
API keeps pyroute2.
"""

from __future__ import annotations

import errno
import os
import socket
import struct
from collections.abc import Iterator
from ipaddress import IPv4Address, IPv4Interface
from typing import Any

from cnilab.errors import KernelError
from cnilab.kernel import Kernel
from cnilab.kernel.messages import IFF_LOOPBACK, IFF_LOWER_UP, IFF_UP, RawLinks
from cnilab.kernel.netlink import GONE, NETLINK_BUFFER
from cnilab.kernel.netns import netns_path, run_in_netns
from cnilab.state import TAG, Link, Route

NETLINK_ROUTE = 0
RTM_NEWLINK, RTM_DELLINK, RTM_GETLINK, RTM_SETLINK = 16, 17, 18, 19
RTM_NEWADDR, RTM_GETADDR, RTM_NEWROUTE, RTM_GETROUTE = 20, 22, 24, 26
NLMSG_ERROR, NLMSG_DONE = 2, 3
NLM_F_REQUEST, NLM_F_MULTI, NLM_F_ACK, NLM_F_DUMP = 0x1, 0x2, 0x4, 0x300
NLM_F_EXCL, NLM_F_CREATE = 0x200, 0x400
NLA_F_NESTED = 0x8000
IFLA_ADDRESS, IFLA_IFNAME, IFLA_MTU, IFLA_LINK, IFLA_MASTER = 1, 3, 4, 5, 10
IFLA_PROTINFO, IFLA_LINKINFO, IFLA_IFALIAS, IFLA_NET_NS_FD, IFLA_LINK_NETNSID = 12, 18, 20, 28, 37
IFLA_INFO_KIND, IFLA_INFO_DATA, VETH_INFO_PEER, IFLA_BRPORT_MODE = 1, 2, 1, 4
IFA_ADDRESS, IFA_LOCAL = 1, 2
RTA_DST, RTA_OIF, RTA_GATEWAY, RTA_TABLE = 1, 4, 5, 15
RT_TABLE_MAIN, RTPROT_BOOT, RTN_UNICAST = 254, 3, 1

HEADER = struct.Struct("=LHHLL")  # nlmsghdr: length, type, flags, sequence, port id
IFINFO = struct.Struct("=BxHiII")  # ifinfomsg: family, type, index, flags, change
IFADDR = struct.Struct("=BBBBI")  # ifaddrmsg: family, prefix length, flags, scope, index
RTMSG = struct.Struct("=BBBBBBBBI")  # rtmsg: family, dst/src len, tos, table, proto, scope...


def _key(netns: str | None) -> str | None:
    """One key per namespace, named or given as its path (CNI_NETNS is a path)."""
    return None if netns is None else netns_path(netns)


def attr(kind: int, value: bytes) -> bytes:
    """One netlink attribute, padded to 4 bytes."""
    data = struct.pack("=HH", 4 + len(value), kind) + value
    return data + b"\0" * (-len(data) % 4)


def nested(kind: int, *attrs: bytes) -> bytes:
    """An attribute holding attributes."""
    return attr(kind | NLA_F_NESTED, b"".join(attrs))


def text(value: str) -> bytes:
    """A NUL-terminated string attribute value."""
    return value.encode() + b"\0"


def u32(value: int) -> bytes:
    """A 32-bit attribute value."""
    return struct.pack("=I", value)


def parse(data: bytes) -> dict[int, bytes]:
    """Attributes by type (the last wins; the nested flag dropped)."""
    out: dict[int, bytes] = {}
    i = 0
    while i + 4 <= len(data):
        length, kind = struct.unpack_from("=HH", data, i)
        if length < 4 or i + length > len(data):
            break  # a cut message: stop, never read past it
        out[kind & ~NLA_F_NESTED] = data[i + 4:i + length]
        i += (length + 3) & ~3
    return out


def _str(value: bytes | None) -> str | None:
    return None if value is None else value.split(b"\0", 1)[0].decode(errors="replace")


def _mac(value: bytes | None) -> str | None:
    return None if value is None else ":".join(f"{b:02x}" for b in value)


class RawNetlink:
    """Links, addresses and routes of any namespace, one rtnetlink socket per namespace."""

    def __init__(self) -> None:
        self._raw: dict[str | None, socket.socket] = {}
        self._seq = 0

    def close(self) -> None:
        """Close every socket (an open socket keeps a removed namespace's links alive)."""
        for name in list(self._raw):
            self.close_netns(name)

    def close_netns(self, netns: str | None) -> None:
        """Close the socket into one namespace, if open."""
        sock = self._raw.pop(_key(netns), None)
        if sock is not None:
            sock.close()

    def has_socket(self, netns: str | None) -> bool:
        """Whether a socket into `netns` is open."""
        return _key(netns) in self._raw

    def adopt_socket(self, netns: str | None, sock: socket.socket) -> None:
        """Use this socket (made by a thread inside `netns`) for `netns` from now on."""
        old = self._raw.pop(_key(netns), None)
        if old is not None:
            old.close()
        self._raw[_key(netns)] = sock

    def _sock(self, netns: str | None) -> socket.socket:
        key = _key(netns)
        if key not in self._raw:
            # A socket belongs for good to the namespace of the thread that made it.
            sock = run_in_netns(netns, lambda: socket.socket(
                socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_ROUTE))
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, NETLINK_BUFFER)
            sock.bind((0, 0))
            self._raw[key] = sock
        return self._raw[key]

    def _request(self, netns: str | None, kind: int, flags: int, body: bytes
                 ) -> Iterator[tuple[int, bytes]]:
        """Send one request; yield (type, payload) of each answer; OSError(errno) on refusal."""
        sock = self._sock(netns)
        self._seq += 1
        seq = self._seq
        sock.send(HEADER.pack(HEADER.size + len(body), kind, flags | NLM_F_REQUEST, seq, 0) + body)
        while True:
            data = sock.recv(NETLINK_BUFFER)
            i = 0
            while i + HEADER.size <= len(data):
                length, mtype, mflags, mseq, _ = HEADER.unpack_from(data, i)
                payload = data[i + HEADER.size:i + length]
                i += (length + 3) & ~3
                if mseq != seq:
                    continue  # an answer to an earlier request we stopped reading
                if mtype == NLMSG_ERROR:
                    code = -struct.unpack_from("=i", payload)[0]
                    if code:
                        raise OSError(code, os.strerror(code))
                    return  # the ACK
                if mtype == NLMSG_DONE:
                    return
                yield mtype, payload
                if not mflags & NLM_F_MULTI and not flags & NLM_F_ACK:
                    return

    def _do(self, netns: str | None, what: str, kind: int, flags: int, body: bytes) -> None:
        try:
            for _ in self._request(netns, kind, flags | NLM_F_ACK, body):
                pass
        except OSError as e:
            raise KernelError(f"the kernel refused to {what}: {os.strerror(e.errno or 0)}") from e

    # -- looking up ------------------------------------------------------------------------

    def _link_raw(self, netns: str | None, name: str | None = None, index: int = 0
                  ) -> tuple[tuple[int, ...], dict[int, bytes]] | None:
        """One RTM_GETLINK by name or index: (ifinfomsg fields, attributes), None if absent."""
        body = IFINFO.pack(socket.AF_UNSPEC, 0, index, 0, 0)
        body += attr(IFLA_IFNAME, text(name)) if name else b""
        try:
            for _, payload in self._request(netns, RTM_GETLINK, 0, body):
                return IFINFO.unpack_from(payload), parse(payload[IFINFO.size:])
        except OSError as e:
            if e.errno in GONE:
                return None
            raise KernelError(f"cannot look up {name or index}: {os.strerror(e.errno or 0)}") from e
        return None

    def _index(self, netns: str | None, name: str) -> int | None:
        found = self._link_raw(netns, name)
        return None if found is None else found[0][2]

    def _need_index(self, netns: str | None, name: str) -> int:
        index = self._index(netns, name)
        if index is None:
            where = f"namespace {netns}" if netns else "this namespace"
            raise KernelError(f"there is no link {name!r} in {where}")
        return index

    def _addresses(self, netns: str | None) -> dict[int, list[str]]:
        out: dict[int, list[str]] = {}
        body = IFADDR.pack(socket.AF_INET, 0, 0, 0, 0)
        for _, payload in self._request(netns, RTM_GETADDR, NLM_F_DUMP, body):
            _, prefix, _, _, index = IFADDR.unpack_from(payload)
            attrs = parse(payload[IFADDR.size:])
            raw = attrs.get(IFA_LOCAL) or attrs.get(IFA_ADDRESS)
            if raw:
                out.setdefault(index, []).append(f"{IPv4Address(raw)}/{prefix}")
        return out

    @staticmethod
    def _to_link(fields: tuple[int, ...], attrs: dict[int, bytes], names: dict[int, str],
                 addrs: dict[int, list[str]]) -> Link:
        _, _, index, flags, _ = fields
        info = parse(attrs.get(IFLA_LINKINFO, b""))
        kind = _str(info.get(IFLA_INFO_KIND)) or ("loopback" if flags & IFF_LOOPBACK
                                                  else "device")
        master = struct.unpack("=I", attrs[IFLA_MASTER])[0] if IFLA_MASTER in attrs else 0
        return Link(name=_str(attrs.get(IFLA_IFNAME)) or "", kind=kind, index=index,
                    up=bool(flags & IFF_UP), master=names.get(master) if master else None,
                    addresses=tuple(addrs.get(index, ())), alias=_str(attrs.get(IFLA_IFALIAS)),
                    mac=_mac(attrs.get(IFLA_ADDRESS)), carrier=bool(flags & IFF_LOWER_UP))

    def get_link(self, netns: str | None, name: str) -> Link | None:
        """One link as observed (kind, master, addresses, MAC), or None when there is none."""
        found = self._link_raw(netns, name)
        if found is None:
            return None
        fields, attrs = found
        names = {fields[2]: name}
        if IFLA_MASTER in attrs:
            master = self._link_raw(netns, index=struct.unpack("=I", attrs[IFLA_MASTER])[0])
            if master is not None:
                names[master[0][2]] = _str(master[1].get(IFLA_IFNAME)) or ""
        addrs = {fields[2]: self._addresses(netns).get(fields[2], [])}
        return self._to_link(fields, attrs, names, addrs)

    def mac_of(self, netns: str | None, name: str) -> str | None:
        """A link's MAC address (one RTM_GETLINK), or None when there is no such link."""
        found = self._link_raw(netns, name)
        return None if found is None else _mac(found[1].get(IFLA_ADDRESS))

    def read_links_routes(self, netns: str | None) -> tuple[RawLinks, tuple[Route, ...]]:
        """Every link (with its raw peer index) and the main table's unicast routes."""
        body = IFINFO.pack(socket.AF_UNSPEC, 0, 0, 0, 0)
        msgs = [(IFINFO.unpack_from(p), parse(p[IFINFO.size:]))
                for _, p in self._request(netns, RTM_GETLINK, NLM_F_DUMP, body)]
        names = {f[2]: _str(a.get(IFLA_IFNAME)) or "" for f, a in msgs}
        addrs = self._addresses(netns)
        # As netlink.Netlink: the peer's index, and the id of the namespace it is in (None: here).
        links: RawLinks = [(self._to_link(f, a, names, addrs),
                            struct.unpack("=I", a[IFLA_LINK])[0] if IFLA_LINK in a else None,
                            struct.unpack("=i", a[IFLA_LINK_NETNSID])[0]
                            if IFLA_LINK_NETNSID in a else None) for f, a in msgs]
        routes = []
        body = RTMSG.pack(socket.AF_INET, 0, 0, 0, 0, 0, 0, 0, 0)
        for _, payload in self._request(netns, RTM_GETROUTE, NLM_F_DUMP, body):
            _, dst_len, _, _, table, _, _, rtype, _ = RTMSG.unpack_from(payload)
            a = parse(payload[RTMSG.size:])
            table = struct.unpack("=I", a[RTA_TABLE])[0] if RTA_TABLE in a else table
            if table != RT_TABLE_MAIN or rtype != RTN_UNICAST:
                continue
            dst = f"{IPv4Address(a[RTA_DST])}/{dst_len}" if RTA_DST in a else "default"
            gw = str(IPv4Address(a[RTA_GATEWAY])) if RTA_GATEWAY in a else None
            oif = struct.unpack("=I", a[RTA_OIF])[0] if RTA_OIF in a else 0
            routes.append(Route(dst, gw, names.get(oif)))
        return links, tuple(routes)

    # -- changing ----------------------------------------------------------------------------

    def _set(self, netns: str | None, name: str, what: str, *attrs: bytes, flags: int = 0,
             change: int = 0) -> None:
        """`ip link set NAME ...`: one RTM_SETLINK naming the link."""
        body = IFINFO.pack(socket.AF_UNSPEC, 0, 0, flags, change)
        body += attr(IFLA_IFNAME, text(name)) + b"".join(attrs)
        try:
            for _ in self._request(netns, RTM_SETLINK, NLM_F_ACK, body):
                pass
        except OSError as e:
            if e.errno == errno.ENODEV:
                where = f"namespace {netns}" if netns else "this namespace"
                raise KernelError(f"there is no link {name!r} in {where}") from e
            raise KernelError(f"the kernel refused to {what}: {os.strerror(e.errno or 0)}") from e

    def add_link(self, netns: str | None, name: str, kind: str,
                 peer: str | None = None, peer_netns: str | None = None) -> None:
        """Create a bridge or a veth pair, both ends tagged with the alias 'cnilab'."""
        data = b""
        fd = None
        if kind == "veth":
            peer_attrs = attr(IFLA_IFNAME, text(peer or ""))
            if peer_netns:
                fd = os.open(netns_path(peer_netns), os.O_RDONLY | os.O_CLOEXEC)
                peer_attrs += attr(IFLA_NET_NS_FD, u32(fd))
            data = nested(IFLA_INFO_DATA, attr(VETH_INFO_PEER, IFINFO.pack(0, 0, 0, 0, 0)
                                               + peer_attrs))
        body = IFINFO.pack(socket.AF_UNSPEC, 0, 0, 0, 0) + attr(IFLA_IFNAME, text(name))
        body += nested(IFLA_LINKINFO, attr(IFLA_INFO_KIND, text(kind)), data)
        try:
            self._do(netns, f"add link {name}", RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, body)
        finally:
            if fd is not None:
                os.close(fd)
        # The alias is the kernel-side ownership tag; RTM_NEWLINK ignores it, so set it after.
        self.tag_link(netns, name)
        if peer:
            self.tag_link(peer_netns or netns, peer)

    def tag_link(self, netns: str | None, name: str) -> None:
        """Mark a link as cnilab's (ip link set NAME alias cnilab)."""
        self._set(netns, name, f"tag {name}", attr(IFLA_IFALIAS, TAG.encode()))  # as `ip`

    def delete_link(self, netns: str | None, name: str) -> bool:
        """Delete a link; False when it (or its namespace) is already gone."""
        if netns is not None and not os.path.exists(netns_path(netns)):
            return False
        body = IFINFO.pack(socket.AF_UNSPEC, 0, 0, 0, 0) + attr(IFLA_IFNAME, text(name))
        try:
            for _ in self._request(netns, RTM_DELLINK, NLM_F_ACK, body):
                pass
        except OSError as e:
            if e.errno in GONE:
                return False
            raise KernelError(f"the kernel refused to delete {name}: "
                              f"{os.strerror(e.errno or 0)}") from e
        return True

    def move_link(self, netns: str | None, name: str, target: str) -> None:
        """Move a link into another namespace (ip link set NAME netns TARGET)."""
        fd = os.open(netns_path(target), os.O_RDONLY | os.O_CLOEXEC)
        try:
            self._set(netns, name, f"move {name} to {target}", attr(IFLA_NET_NS_FD, u32(fd)))
        finally:
            os.close(fd)

    def set_master(self, netns: str | None, name: str, master: str) -> None:
        """Attach a link to a bridge; the kernel wants the bridge's index, not its name."""
        index = self._need_index(netns, master)
        self._set(netns, name, f"attach {name} to {master}", attr(IFLA_MASTER, u32(index)))

    def set_up(self, netns: str | None, name: str) -> None:
        """Bring a link up."""
        self._set(netns, name, f"bring {name} up", flags=IFF_UP, change=IFF_UP)

    def set_mac(self, netns: str | None, name: str, mac: str) -> None:
        """Set a link's MAC address (ip link set NAME address MAC)."""
        self._set(netns, name, f"set the MAC of {name}",
                  attr(IFLA_ADDRESS, bytes.fromhex(mac.replace(":", ""))))

    def set_mtu(self, netns: str | None, name: str, mtu: int) -> None:
        """Set a link's MTU (ip link set NAME mtu MTU)."""
        self._set(netns, name, f"set the mtu of {name} to {mtu}", attr(IFLA_MTU, u32(mtu)))

    def set_hairpin(self, netns: str | None, name: str, on: bool = True) -> None:
        """Let a bridge port send frames back out of the port they came in on (hairpin)."""
        index = self._need_index(netns, name)
        body = IFINFO.pack(socket.AF_BRIDGE, 0, index, 0, 0)
        body += nested(IFLA_PROTINFO, attr(IFLA_BRPORT_MODE, bytes([int(on)])))
        self._do(netns, f"set hairpin mode on {name}", RTM_SETLINK, 0, body)

    def add_address(self, netns: str | None, dev: str, cidr: str) -> None:
        """Add an IPv4 address with its prefix to a link."""
        iface, index = IPv4Interface(cidr), self._need_index(netns, dev)
        packed = iface.ip.packed
        body = IFADDR.pack(socket.AF_INET, iface.network.prefixlen, 0, 0, index)
        body += attr(IFA_LOCAL, packed) + attr(IFA_ADDRESS, packed)
        self._do(netns, f"add {cidr} to {dev}", RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL, body)

    def add_route(self, netns: str | None, dst: str, gateway: str, dev: str | None = None,
                  prepend: bool = False) -> None:
        """Add a route via a gateway (dst 'default' or a CIDR), out of `dev` if given;
        prepend: no NLM_F_EXCL, as `ip route prepend` (see netlink.Netlink.add_route)."""
        net = None if dst == "default" else IPv4Interface(dst).network
        body = RTMSG.pack(socket.AF_INET, net.prefixlen if net else 0, 0, 0, RT_TABLE_MAIN,
                          RTPROT_BOOT, 0, RTN_UNICAST, 0)
        body += attr(RTA_DST, net.network_address.packed) if net else b""
        body += attr(RTA_GATEWAY, IPv4Address(gateway).packed)
        body += attr(RTA_OIF, u32(self._need_index(netns, dev))) if dev else b""
        flags = NLM_F_CREATE | (0 if prepend else NLM_F_EXCL)
        self._do(netns, f"add route {dst} via {gateway}", RTM_NEWROUTE, flags, body)


class PluginKernel(RawNetlink, Kernel):
    """The Kernel of the plugin executable: raw rtnetlink instead of pyroute2's IPRoute."""

    def __init__(self, run_dir: Any = None) -> None:
        Kernel.__init__(self, run_dir)
        RawNetlink.__init__(self)

    def close(self) -> None:
        """Close every socket (ours and, if any was opened, pyroute2's)."""
        RawNetlink.close(self)
        Kernel.close(self)

    def close_netns(self, netns: str | None) -> None:
        """Close the sockets into one namespace."""
        RawNetlink.close_netns(self, netns)
        Kernel.close_netns(self, netns)
