"""conntrack's table of a namespace, read over ctnetlink (what `conntrack -L` prints).

A NATed connection is one entry with two tuples: the original direction as the packet arrived,
and the reply direction as the answer must look. Where they differ is the NAT rewrite.
"""

from __future__ import annotations

import socket

from cnilab.compat import valueclass
from cnilab.kernel.nfnetlink import attrs, be16, be32, dump, open_socket

IPCTNL_MSG_CT_GET = (1 << 8) | 1  # NFNL_SUBSYS_CTNETLINK, IPCTNL_MSG_CT_GET
CTA_TUPLE_ORIG, CTA_TUPLE_REPLY, CTA_STATUS = 1, 2, 3
CTA_TUPLE_IP, CTA_TUPLE_PROTO = 1, 2
CTA_IP_V4_SRC, CTA_IP_V4_DST = 1, 2
CTA_PROTO_NUM, CTA_PROTO_SRC_PORT, CTA_PROTO_DST_PORT, CTA_PROTO_ICMP_ID = 1, 2, 3, 4
IPS_SRC_NAT, IPS_DST_NAT = 0x10, 0x20


@valueclass(frozen=True)
class Tuple:
    """One direction of a connection; `sport` is the ICMP id for ICMP."""

    src: str
    dst: str
    sport: int
    dport: int


@valueclass(frozen=True)
class Connection:
    """A conntrack entry: protocol number, both directions, whether source/destination NAT."""

    proto: int
    orig: Tuple
    reply: Tuple
    snat: bool
    dnat: bool


def _tuple(data: bytes) -> tuple[int, Tuple]:
    a = attrs(data)
    ip, proto = attrs(a.get(CTA_TUPLE_IP, b"")), attrs(a.get(CTA_TUPLE_PROTO, b""))
    num = proto.get(CTA_PROTO_NUM, b"\0")[0]
    src = socket.inet_ntoa(ip.get(CTA_IP_V4_SRC, b"\0" * 4))
    dst = socket.inet_ntoa(ip.get(CTA_IP_V4_DST, b"\0" * 4))
    if CTA_PROTO_ICMP_ID in proto:
        ident = be16(proto[CTA_PROTO_ICMP_ID]) or 0
        return num, Tuple(src, dst, ident, ident)
    return num, Tuple(src, dst, be16(proto.get(CTA_PROTO_SRC_PORT)) or 0,
                      be16(proto.get(CTA_PROTO_DST_PORT)) or 0)


def connections(netns: str | None) -> list[Connection]:
    """Every IPv4 conntrack entry of `netns`."""
    sock = open_socket(netns)
    with sock:
        found = []
        for payload in dump(sock, IPCTNL_MSG_CT_GET, socket.AF_INET):
            a = attrs(payload)
            if CTA_TUPLE_ORIG not in a or CTA_TUPLE_REPLY not in a:
                continue
            proto, orig = _tuple(a[CTA_TUPLE_ORIG])
            _, reply = _tuple(a[CTA_TUPLE_REPLY])
            status = be32(a.get(CTA_STATUS)) or 0
            found.append(Connection(proto, orig, reply, bool(status & IPS_SRC_NAT),
                                    bool(status & IPS_DST_NAT)))
        return found
