"""Proofs with real packets, sent only between the lab's own namespaces, with short timeouts.

Sockets are created by a thread that entered the source namespace (kernel.run_in_netns), so
nothing is forked and nothing keeps running after a probe.
"""

from __future__ import annotations

import contextlib
import os
import socket
import struct
import time
from dataclasses import dataclass

from cnilab.kernel import run_in_netns
from cnilab.topology import Topology

TIMEOUT = 1.0


@dataclass(frozen=True)
class Proof:
    """One check with packets: what was expected, whether it held, and what was seen."""

    claim: str
    ok: bool
    seen: str
    command: str


def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    total = (total >> 16) + (total & 0xFFFF)
    total += total >> 16
    return ~total & 0xFFFF


def ping(netns: str | None, address: str, timeout: float = TIMEOUT, tries: int = 2) -> str | None:
    """ICMP echo from `netns` to `address`; None on a reply, else why not."""
    ident = os.getpid() & 0xFFFF
    sock = run_in_netns(netns, lambda: socket.socket(socket.AF_INET, socket.SOCK_RAW,
                                                     socket.IPPROTO_ICMP))
    with sock:
        for seq in range(1, tries + 1):
            header = struct.pack("!BBHHH", 8, 0, 0, ident, seq)
            payload = b"cnilab-probe"
            packet = struct.pack("!BBHHH", 8, 0, _checksum(header + payload), ident, seq) + payload
            try:
                sock.sendto(packet, (address, 0))
            except OSError as e:
                return e.strerror or str(e)  # e.g. "Network is unreachable": no route at all
            deadline = time.monotonic() + timeout / tries
            while (left := deadline - time.monotonic()) > 0:
                sock.settimeout(left)
                try:
                    data, (src, _) = sock.recvfrom(2048)
                except TimeoutError:
                    break
                icmp = data[(data[0] & 0x0F) * 4:]
                if src == address and icmp[0] == 0 and struct.unpack("!H", icmp[4:6])[0] == ident:
                    return None
    return f"no reply within {timeout:g} s"


def seen_source(client_ns: str | None, server_ns: str | None, server_ip: str,
                timeout: float = TIMEOUT) -> tuple[str | None, str]:
    """TCP connect from client_ns to a listener in server_ns; the source address it saw."""

    def listen() -> socket.socket:
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.bind((server_ip, 0))
        s.listen(1)
        return s

    listener = run_in_netns(server_ns, listen)
    client = run_in_netns(client_ns, lambda: socket.socket(socket.AF_INET, socket.SOCK_STREAM))
    with listener, client:
        client.settimeout(timeout)
        try:
            client.connect((server_ip, listener.getsockname()[1]))
        except OSError as e:
            return None, e.strerror or "timed out"
        listener.settimeout(timeout)
        conn, (src, _) = listener.accept()
        with contextlib.suppress(OSError):
            conn.close()
        return src, f"the listener saw {src}"


def _ping_proof(topo: Topology, src_ns: str | None, who: str, dst: str, to: str,
                expect: bool) -> Proof:
    why_not = ping(src_ns, dst)
    verb = "reaches" if expect else "cannot reach"
    seen = "reply received" if why_not is None else why_not
    return Proof(f"{who} {verb} {to} ({dst})", (why_not is None) == expect, seen,
                 f"ip netns exec {src_ns} ping -c 1 -W 1 {dst}")


def connectivity(topo: Topology) -> list[Proof]:
    """After step 7: every container pings every other one and the bridge."""
    proofs = []
    for c in topo.containers:
        ns = topo.netns(c)
        proofs.append(_ping_proof(topo, ns, c.name, str(topo.bridge_address.ip), "the bridge",
                                  True))
        for other in topo.containers:
            if other != c:
                proofs.append(_ping_proof(topo, ns, c.name, str(other.address.ip), other.name,
                                          True))
    return proofs


def outside(topo: Topology, expect: bool) -> list[Proof]:
    """Step 8: can the first container reach the outside host? (isolated mode only)"""
    if topo.internet is None:
        return []
    c = topo.containers[0]
    return [_ping_proof(topo, topo.netns(c), c.name, str(topo.internet_address.ip),
                        "the outside host", expect)]


def nat_sources(topo: Topology) -> list[Proof]:
    """After step 8: outside sees the node's address; a neighbour sees the container's own."""
    c = topo.containers[0]
    proofs = []
    if topo.internet is not None:
        want = str(topo.uplink_address.ip)
        src, seen = seen_source(topo.netns(c), topo.internet, str(topo.internet_address.ip))
        proofs.append(Proof(f"the outside host sees {c.name} as the node ({want}), "
                            f"not as {c.address.ip}", src == want, seen,
                            f"ip netns exec {topo.internet} tcpdump -ni {topo.uplink} tcp"))
    for other in topo.containers[1:2]:
        want = str(c.address.ip)
        src, seen = seen_source(topo.netns(c), topo.netns(other), str(other.address.ip))
        proofs.append(Proof(f"{other.name} sees {c.name} as itself ({want}): no NAT inside "
                            "the bridge", src == want, seen,
                            f"ip netns exec {topo.netns(other)} tcpdump -ni {other.veth} tcp"))
    return proofs
