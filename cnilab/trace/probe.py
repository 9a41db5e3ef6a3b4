"""The one real packet a trace sends: an ICMP echo, a TCP SYN or a UDP datagram, from FROM.

The socket is opened (and, for TCP/UDP, bound to its source port) before the trace tables are
made, so they can match that port; it is made by a thread inside FROM's namespace.
"""

from __future__ import annotations

import contextlib
import errno
import os
import select
import socket
import struct
import time

from cnilab.compat import valueclass
from cnilab.kernel import run_in_netns
from cnilab.trace.packets import DEST_UNREACH, ECHO_REPLY, TIME_EXCEEDED, echo_request
from cnilab.trace.plan import TracePlan

TIMEOUT = 1.0  # long enough for a lab round trip with ARP; a dead path is decided after it
PAYLOAD = b"cnilab-trace"


@valueclass(frozen=True)
class ProbeResult:
    """How the probe ended, as FROM's socket saw it."""

    answer: str  # reply, refused (RST / port unreachable), icmp (an error), none, error
    detail: str | None = None  # the system's words: "Network is unreachable", ...
    icmp_from: str | None = None  # who sent the ICMP error
    seconds: float = 0.0


class Probe:
    """A socket in FROM's namespace, ready to send the trace's one packet."""

    def __init__(self, plan: TracePlan) -> None:
        self.plan = plan
        self.sock = run_in_netns(plan.netns, self._open)

    def _open(self) -> socket.socket:
        if self.plan.proto == "icmp":
            return socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
        kind = socket.SOCK_STREAM if self.plan.proto == "tcp" else socket.SOCK_DGRAM
        sock = socket.socket(socket.AF_INET, kind)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(("0.0.0.0", self.plan.ident))
        except OSError:
            sock.close()
            raise
        return sock

    def close(self) -> None:
        """Close the socket; a TCP connection that was made is reset, not left half open."""
        with contextlib.suppress(OSError):
            if self.plan.proto == "tcp":
                self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                     struct.pack("ii", 1, 0))
        self.sock.close()

    def send(self, timeout: float = TIMEOUT) -> ProbeResult:
        """Send the packet; wait for its answer at most `timeout` seconds."""
        start = time.monotonic()
        result = {"icmp": self._icmp, "tcp": self._tcp, "udp": self._udp}[self.plan.proto](
            start + timeout)
        return ProbeResult(result.answer, result.detail, result.icmp_from,
                           round(time.monotonic() - start, 4))

    def _icmp(self, deadline: float) -> ProbeResult:
        ident = self.plan.ident
        packet = echo_request(ident, 1, PAYLOAD)
        try:
            self.sock.sendto(packet, (self.plan.dst, 0))
        except OSError as e:
            return ProbeResult("error", e.strerror)
        while (left := deadline - time.monotonic()) > 0:
            if not select.select([self.sock], [], [], left)[0]:
                break
            data, (src, _) = self.sock.recvfrom(2048)
            icmp = data[(data[0] & 0x0F) * 4:]
            if len(icmp) < 8:
                continue
            if icmp[0] == ECHO_REPLY and struct.unpack("!H", icmp[4:6])[0] == ident:
                return ProbeResult("reply")
            if icmp[0] in (DEST_UNREACH, TIME_EXCEEDED) and len(icmp) >= 8 + 20 + 6:
                inner = icmp[8:]
                quoted = inner[(inner[0] & 0x0F) * 4:]
                if len(quoted) >= 6 and struct.unpack("!H", quoted[4:6])[0] == ident:
                    return ProbeResult("icmp", _icmp_words(icmp[0], icmp[1]), src)
        return ProbeResult("none")

    def _tcp(self, deadline: float) -> ProbeResult:
        self.sock.setblocking(False)
        code = self.sock.connect_ex((self.plan.dst, self.plan.port or 0))
        if code not in (0, errno.EINPROGRESS):
            return ProbeResult("error", os.strerror(code))
        left = max(0.0, deadline - time.monotonic())
        if not select.select([], [self.sock], [], left)[1]:
            return ProbeResult("none")
        code = self.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if code == 0:
            return ProbeResult("reply")
        if code == errno.ECONNREFUSED:
            return ProbeResult("refused", os.strerror(code))
        return ProbeResult("icmp", os.strerror(code))

    def _udp(self, deadline: float) -> ProbeResult:
        try:
            self.sock.connect((self.plan.dst, self.plan.port or 0))  # to hear ICMP errors
            self.sock.send(PAYLOAD)
        except OSError as e:
            return ProbeResult("error", e.strerror)
        while (left := deadline - time.monotonic()) > 0:
            if not select.select([self.sock], [], [], left)[0]:
                break
            try:
                self.sock.recv(2048)
            except ConnectionRefusedError as e:
                return ProbeResult("refused", e.strerror)
            except OSError as e:
                return ProbeResult("icmp", e.strerror)
            return ProbeResult("reply")
        return ProbeResult("none")


def _icmp_words(icmp_type: int, code: int) -> str:
    if icmp_type == TIME_EXCEEDED:
        return "Time to live exceeded"
    return {0: "Network is unreachable", 1: "No route to host", 3: "Connection refused",
            13: "Communication administratively prohibited"}.get(code, f"Unreachable (code {code})")
