"""The headers a trace event carries (hex, as the kernel copied them), read into a Packet."""

from __future__ import annotations

import socket
import struct
from typing import Any

from cnilab.compat import valueclass

ICMP, TCP, UDP = 1, 6, 17
ECHO_REPLY, DEST_UNREACH, ECHO_REQUEST, TIME_EXCEEDED = 0, 3, 8, 11


def echo_request(ident: int, seq: int, payload: bytes) -> bytes:
    """An ICMP echo request, its checksum (RFC 1071) filled in: for a raw socket to send."""
    data = struct.pack("!BBHHH", ECHO_REQUEST, 0, 0, ident, seq) + payload
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    total = (total >> 16) + (total & 0xFFFF)
    total += total >> 16
    return struct.pack("!BBHHH", ECHO_REQUEST, 0, ~total & 0xFFFF, ident, seq) + payload
SYN, RST, ACK = 0x02, 0x04, 0x10
ARP_REQUEST = 1
ETH_ARP = 0x0806
PROTO_NAMES = {ICMP: "icmp", TCP: "tcp", UDP: "udp"}


@valueclass(frozen=True)
class Packet:
    """One packet as a chain saw it: addresses, ports or ICMP fields, or an ARP message."""

    kind: str  # "ip", "arp", or "" when the headers could not be read
    src: str = ""  # ARP: the sender's address
    dst: str = ""  # ARP: the address asked for (request) or answered (reply)
    proto: int = 0
    sport: int | None = None  # ICMP echo: the id
    dport: int | None = None
    icmp_type: int | None = None
    icmp_code: int | None = None
    flags: int = 0  # TCP flags
    arp_op: int = 0
    mac_src: str | None = None
    mac_dst: str | None = None
    inner_proto: int | None = None  # an ICMP error: the protocol of the packet it is about

    @property
    def is_icmp_error(self) -> bool:
        """An ICMP destination-unreachable or time-exceeded."""
        return self.proto == ICMP and self.icmp_type in (DEST_UNREACH, TIME_EXCEEDED)

    def endpoint(self, src: bool) -> str:
        """'192.168.15.1' or, with a TCP/UDP port, '192.168.15.1:80'."""
        addr, port = (self.src, self.sport) if src else (self.dst, self.dport)
        return f"{addr}:{port}" if self.proto in (TCP, UDP) and port is not None else addr


def _mac(data: bytes) -> str:
    return ":".join(f"{b:02x}" for b in data)


def parse(family: str, ll: str, network: str, transport: str) -> Packet:
    """A Packet from a trace event's headers; kind "" when they are not IPv4 or ARP."""
    link, net, tr = bytes.fromhex(ll), bytes.fromhex(network), bytes.fromhex(transport)
    macs: dict[str, Any] = {}  # mac_dst, mac_src: keyword arguments of Packet
    ethertype = None
    if len(link) >= 14:
        macs = {"mac_dst": _mac(link[0:6]), "mac_src": _mac(link[6:12])}
        ethertype = struct.unpack("!H", link[12:14])[0]
    if family == "arp" or ethertype == ETH_ARP:
        if len(net) < 28:
            return Packet("", **macs)
        op = struct.unpack("!H", net[6:8])[0]
        return Packet("arp", socket.inet_ntoa(net[14:18]), socket.inet_ntoa(net[24:28]),
                      arp_op=op, **macs)
    if len(net) < 20 or net[0] >> 4 != 4:
        return Packet("", **macs)
    proto = net[9]
    fields: dict[str, int | None] = {}
    if proto in (TCP, UDP) and len(tr) >= 4:
        fields["sport"], fields["dport"] = struct.unpack("!HH", tr[0:4])
        if proto == TCP and len(tr) >= 14:
            fields["flags"] = tr[13]
    elif proto == ICMP and len(tr) >= 2:
        fields["icmp_type"], fields["icmp_code"] = tr[0], tr[1]
        if tr[0] in (ECHO_REQUEST, ECHO_REPLY) and len(tr) >= 6:
            fields["sport"] = fields["dport"] = struct.unpack("!H", tr[4:6])[0]
        elif len(tr) >= 18:  # an error quotes the header of the packet it is about
            fields["inner_proto"] = tr[17]
    return Packet("ip", socket.inet_ntoa(net[12:16]), socket.inet_ntoa(net[16:20]), proto,
                  **fields, **macs)  # type: ignore[arg-type]


def describe(p: Packet) -> str:
    """A short name of what the packet is: 'icmp echo request', 'tcp SYN', 'ARP reply'."""
    if p.kind == "arp":
        return "ARP request" if p.arp_op == ARP_REQUEST else "ARP reply"
    if p.proto == ICMP:
        return {ECHO_REQUEST: "icmp echo request", ECHO_REPLY: "icmp echo reply",
                DEST_UNREACH: "icmp unreachable", TIME_EXCEEDED: "icmp time exceeded"
                }.get(p.icmp_type or 0, "icmp")
    if p.proto == TCP:
        names = [n for bit, n in ((SYN, "SYN"), (RST, "RST"), (ACK, "ACK")) if p.flags & bit]
        return "tcp " + "-".join(names or ["segment"])
    return PROTO_NAMES.get(p.proto, f"proto {p.proto}")
