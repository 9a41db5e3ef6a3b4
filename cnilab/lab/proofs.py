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
from collections.abc import Callable
from typing import Any

from cnilab.compat import valueclass
from cnilab.errors import KernelError
from cnilab.kernel import run_in_netns
from cnilab.lab import BONUS_STEP
from cnilab.lab.steps import PUBLISHED_PORT, web_server
from cnilab.lab.topology import Container, Topology
from cnilab.trace.packets import echo_request

TIMEOUT = 1.0


@valueclass(frozen=True)
class Proof:
    """One check with packets: what was expected (a sentence key), whether it held, what was seen.

    Sentences live in lessons/ui (section [proof]); a parameter value "@key" is itself a sentence.
    """

    key: str
    params: dict[str, Any]
    ok: bool
    seen: tuple[str, dict[str, Any]]  # (sentence key, params), or ("", {"text": raw})
    command: str

    def claim(self, lang: str = "en") -> str:
        """What the proof claims, in `lang`."""
        return _sentence(self.key, self.params, lang)

    def observed(self, lang: str = "en") -> str:
        """What was seen, in `lang`."""
        key, params = self.seen
        return _sentence(key, params, lang) if key else str(params["text"])


def _sentence(key: str, params: dict[str, Any], lang: str) -> str:
    from cnilab.i18n import t

    filled = {k: t(f"proof.{v[1:]}", lang) if isinstance(v, str) and v.startswith("@") else v
              for k, v in params.items()}
    return t(f"proof.{key}", lang, **filled)


def _socket_in(netns: str | None, make: Callable[[], socket.socket]
               ) -> tuple[socket.socket | None, str]:
    """A socket made inside `netns`; (None, why) when the namespace or the address is gone (a
    student removed it): a failed probe, not a traceback."""
    try:
        return run_in_netns(netns, make), ""
    except (KernelError, OSError) as e:
        return None, getattr(e, "message", None) or getattr(e, "strerror", None) or str(e)


def ping(netns: str | None, address: str, timeout: float = TIMEOUT, tries: int = 2,
         ident: int | None = None) -> str | None:
    """ICMP echo from `netns` to `address`; None on a reply, else why not (in English)."""
    ident = os.getpid() & 0xFFFF if ident is None else ident
    sock, why = _socket_in(netns, lambda: socket.socket(socket.AF_INET, socket.SOCK_RAW,
                                                        socket.IPPROTO_ICMP))
    if sock is None:
        return why
    with sock:
        for seq in range(1, tries + 1):
            packet = echo_request(ident, seq, b"cnilab-probe")
            try:
                sock.sendto(packet, (address, 0))
            except OSError as e:
                return e.strerror or str(e)  # e.g. "Network is unreachable": no route at all
            deadline = time.monotonic() + timeout / tries
            while (left := deadline - time.monotonic()) > 0:
                sock.settimeout(left)
                try:
                    data, (src, _) = sock.recvfrom(2048)
                except socket.timeout:  # TimeoutError from 3.10 on; not below
                    break
                icmp = data[(data[0] & 0x0F) * 4:]
                if src == address and icmp[0] == 0 and struct.unpack("!H", icmp[4:6])[0] == ident:
                    return None
    return no_reply(timeout)


def no_reply(timeout: float) -> str:
    """ping()'s reason when nothing came back (in English; a Proof shows it in its language)."""
    return f"no reply within {timeout:g} s"


def seen_source(client_ns: str | None, server_ns: str | None, server_ip: str,
                timeout: float = TIMEOUT) -> tuple[str | None, tuple[str, dict[str, Any]]]:
    """TCP connect from client_ns to a listener in server_ns; the source address it saw."""

    def listen() -> socket.socket:
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.bind((server_ip, 0))
        s.listen(1)
        return s

    listener, why = _socket_in(server_ns, listen)
    if listener is None:
        return None, ("", {"text": why})
    client, why = _socket_in(client_ns, lambda: socket.socket(socket.AF_INET, socket.SOCK_STREAM))
    if client is None:
        listener.close()
        return None, ("", {"text": why})
    with listener, client:
        client.settimeout(timeout)
        try:
            client.connect((server_ip, listener.getsockname()[1]))
        except socket.timeout:  # nothing answered the SYN: said in the reader's language
            return None, ("no_reply", {"seconds": f"{timeout:g}"})
        except OSError as e:
            return None, ("", {"text": e.strerror or str(e)})  # the OS's own reason
        listener.settimeout(timeout)
        conn, (src, _) = listener.accept()
        with contextlib.suppress(OSError):
            conn.close()
        return src, ("listener_saw", {"source": src})


def ping_seen_by(src_ns: str | None, dst_ns: str | None, address: str, ident: int,
                 timeout: float = TIMEOUT) -> tuple[str | None, str | None]:
    """Ping `address` from src_ns while dst_ns watches: (the source dst_ns saw, why no reply)."""
    # A raw ICMP socket gets a copy of every ICMP packet its namespace receives, echo requests
    # included: the outside host's view of the packet, whether or not its reply can go back.
    watcher, why = _socket_in(dst_ns, lambda: socket.socket(socket.AF_INET, socket.SOCK_RAW,
                                                            socket.IPPROTO_ICMP))
    if watcher is None:
        return None, why
    with watcher:
        why_not = ping(src_ns, address, timeout, ident=ident)
        watcher.setblocking(False)
        while True:
            try:
                data, (src, _) = watcher.recvfrom(2048)
            except OSError:  # nothing left to read
                return None, why_not
            icmp = data[(data[0] & 0x0F) * 4:]
            if icmp[0] == 8 and struct.unpack("!H", icmp[4:6])[0] == ident:
                return src, why_not


def ping_proof(src_ns: str | None, who: str, dst: str, to: str, expect: bool) -> Proof:
    why_not = ping(src_ns, dst)
    seen: tuple[str, dict[str, Any]] = (
        ("reply", {}) if why_not is None
        else ("no_reply", {"seconds": f"{TIMEOUT:g}"}) if why_not == no_reply(TIMEOUT)
        else ("", {"text": why_not}))  # the OS's own reason, as `ping` prints it
    return Proof("ping_ok" if expect else "ping_blocked", {"who": who, "to": to, "address": dst},
                 (why_not is None) == expect, seen, f"ip netns exec {src_ns} ping -c 1 -W 1 {dst}")


def connectivity(topo: Topology) -> list[Proof]:
    """After step 7: every container pings every other one and the bridge."""
    proofs = []
    for c in topo.containers:
        ns = topo.netns(c)
        proofs.append(ping_proof(ns, c.name, str(topo.bridge_address.ip), "@bridge", True))
        for other in topo.containers:
            if other != c:
                proofs.append(ping_proof(ns, c.name, str(other.address.ip), other.name, True))
    return proofs


def outside(topo: Topology, expect: bool) -> list[Proof]:
    """Step 8: can the first container reach the outside host? (isolated mode only)"""
    if topo.internet is None:
        return []
    c = topo.containers[0]
    return [ping_proof(topo.netns(c), c.name, str(topo.internet_address.ip), "@outside_host",
                        expect)]


def unmasqueraded(topo: Topology) -> list[Proof]:
    """Step 8 before its NAT rule: red's packet gets out with its own address; no reply returns.

    The outside world has no route to 192.168.15.0/24, which is why MASQUERADE is needed.
    """
    if topo.internet is None:
        return []
    c = topo.containers[0]
    own, target = str(c.address.ip), str(topo.internet_address.ip)
    # Another ICMP id than the later pings: conntrack would remember this flow un-NATed for 30 s,
    # and a NAT rule applies only to new flows.
    ident = (os.getpid() & 0xFFFF) ^ 0x8000
    src, why_not = ping_seen_by(topo.netns(c), topo.internet, target, ident)
    seen: tuple[str, dict[str, Any]] = (
        ("saw_no_reply", {"source": src}) if src and why_not
        else ("reply", {}) if why_not is None else ("never_arrived", {"why": why_not}))
    return [Proof("outside_sees_private", {"who": c.name, "own": own, "to": "@outside_host",
                                           "address": target},
                  src == own and why_not is not None, seen,
                  f"ip netns exec {topo.internet} tcpdump -ni {topo.uplink} icmp")]


def nat_sources(topo: Topology) -> list[Proof]:
    """After step 8: outside sees the node's address; a neighbour sees the container's own."""
    c = topo.containers[0]
    proofs = []
    if topo.internet is not None:
        want = str(topo.uplink_address.ip)
        src, seen = seen_source(topo.netns(c), topo.internet, str(topo.internet_address.ip))
        proofs.append(Proof("outside_sees_node",
                            {"who": c.name, "want": want, "own": str(c.address.ip)},
                            src == want, seen,
                            f"ip netns exec {topo.internet} tcpdump -ni {topo.uplink} tcp"))
    for other in topo.containers[1:2]:
        want = str(c.address.ip)
        src, seen = seen_source(topo.netns(c), topo.netns(other), str(other.address.ip))
        proofs.append(Proof("neighbour_sees_self",
                            {"other": other.name, "who": c.name, "want": want},
                            src == want, seen,
                            f"ip netns exec {topo.netns(other)} tcpdump -ni {other.veth} tcp"))
    return proofs


def http_get(client_ns: str | None, host: str, port: int, timeout: float = TIMEOUT
             ) -> tuple[str | None, str | None]:
    """A plain HTTP GET from `client_ns`; (body, None) or (None, why not)."""

    sock, why = _socket_in(client_ns, lambda: socket.socket(socket.AF_INET, socket.SOCK_STREAM))
    if sock is None:
        return None, why
    with sock:
        sock.settimeout(timeout)
        try:
            sock.connect((host, port))
            sock.sendall(f"GET / HTTP/1.0\r\nHost: {host}\r\n\r\n".encode())
            data = b""
            while chunk := sock.recv(4096):
                data += chunk
        except OSError as e:
            return None, e.strerror or "timed out"
    head, _, body = data.decode(errors="replace").partition("\r\n\r\n")
    if " 200 " not in head.split("\r\n", 1)[0]:
        return None, head.split("\r\n", 1)[0] or "no answer"
    return body.strip(), None


def port_forward(topo: Topology, server: Container, port: int) -> list[Proof]:
    """After step 9: a request from the outside world to the node's port reaches the server."""
    if topo.internet is None:
        return []
    node_ip = str(topo.uplink_address.ip)
    body, why_not = http_get(topo.internet, node_ip, port)
    ok = body is not None and server.name in body
    seen: tuple[str, dict[str, Any]] = ("", {"text": body if body is not None else why_not})
    return [Proof("http_forwarded", {"node": node_ip, "port": port, "who": server.name}, ok,
                  seen, f"ip netns exec {topo.internet} curl -s http://{node_ip}:{port}/")]


def step_proofs(topo: Topology, number: int) -> list[Proof]:
    """The packet proofs that become possible once step `number` is done."""
    if number == 7:
        return connectivity(topo)
    if number == 8:
        return outside(topo, expect=True) + nat_sources(topo)
    if number == BONUS_STEP:
        return port_forward(topo, web_server(topo), PUBLISHED_PORT)
    return []
