"""nfnetlink, the netlink family of netfilter: sockets in a namespace and attribute parsing.

nftables' trace events and conntrack's table both speak it. pyroute2 would fork a helper per
namespace for these sockets (and its trace support is partial); the wire format is small: a
netlink header, a 4-byte nfgenmsg, then type-length-value attributes, some nested.
"""

from __future__ import annotations

import errno
import os
import socket
import struct
from collections.abc import Iterator

from cnilab.errors import KernelError
from cnilab.kernel.messages import HEADER, headers
from cnilab.kernel.netns import run_in_netns

NETLINK_NETFILTER = 12
SOL_NETLINK, NETLINK_ADD_MEMBERSHIP = 270, 1
NLMSG_ERROR, NLMSG_DONE = 2, 3
NLM_F_REQUEST, NLM_F_ACK, NLM_F_DUMP = 0x1, 0x4, 0x300
NLA_F_NESTED, NLA_TYPE_MASK = 0x8000, 0x3FFF
RCVBUF = 4 << 20  # trace events of a whole path arrive at once: never lose one to ENOBUFS

Attrs = dict[int, bytes]


def open_socket(netns: str | None, groups: tuple[int, ...] = ()) -> socket.socket:
    """A NETLINK_NETFILTER socket that belongs to `netns`, joined to multicast `groups`."""

    def make() -> socket.socket:
        sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RCVBUF)
            sock.bind((0, 0))
            for group in groups:
                sock.setsockopt(SOL_NETLINK, NETLINK_ADD_MEMBERSHIP, group)
        except OSError:
            sock.close()
            raise
        return sock

    try:
        return run_in_netns(netns, make)
    except OSError as e:
        raise KernelError(f"cannot open a netfilter socket in {netns or 'this namespace'}: "
                          f"{e.strerror}") from e


def messages(data: bytes) -> Iterator[tuple[int, int, bytes]]:
    """(type, flags, payload after the nlmsghdr) for each netlink message in `data`."""
    for mtype, flags, offset, length in headers(data):
        yield mtype, flags, data[offset + HEADER.size:offset + length]


def attrs(data: bytes) -> Attrs:
    """Type -> value of each attribute (the nested flag dropped from the type)."""
    found: Attrs = {}
    offset = 0
    while offset + 4 <= len(data):
        length, atype = struct.unpack_from("=HH", data, offset)
        if length < 4:
            break
        found[atype & NLA_TYPE_MASK] = data[offset + 4:offset + length]
        offset += (length + 3) & ~3
    return found


def be16(value: bytes | None) -> int | None:
    """A big-endian u16 attribute."""
    return None if value is None else struct.unpack("!H", value[:2])[0]


def be32(value: bytes | None) -> int | None:
    """A big-endian u32 attribute."""
    return None if value is None else struct.unpack("!I", value[:4])[0]


def text(value: bytes | None) -> str | None:
    """A NUL-terminated string attribute."""
    return None if value is None else value.split(b"\0", 1)[0].decode(errors="replace")


def attr(atype: int, payload: bytes, nested: bool = False) -> bytes:
    """One attribute, padded to 4 bytes."""
    head = struct.pack("=HH", 4 + len(payload), atype | (NLA_F_NESTED if nested else 0))
    return head + payload + b"\0" * (-len(payload) % 4)


def dump(sock: socket.socket, mtype: int, family: int, payload: bytes = b"") -> list[bytes]:
    """Send one dump request; the payloads (after nfgenmsg) of every answer until DONE."""
    body = struct.pack("=BBH", family, 0, 0) + payload
    sock.send(struct.pack("=IHHII", 16 + len(body), mtype, NLM_F_REQUEST | NLM_F_DUMP, 1, 0)
              + body)
    found: list[bytes] = []
    while True:
        for rtype, _flags, data in messages(sock.recv(1 << 16)):
            if rtype == NLMSG_DONE:
                return found
            if rtype == NLMSG_ERROR:
                code = -struct.unpack_from("=i", data)[0]
                if code in (0, errno.ENOENT):
                    return found
                raise KernelError(f"netfilter refused a dump: {os.strerror(code)}")
            found.append(data[4:])
