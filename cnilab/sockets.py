"""TCP sockets of a namespace with their processes, read as `ss -tanp` reads them, from /proc.

/proc/thread-self/net/tcp lists the sockets of the namespace the reading thread is in, so a thread
that entered the node's namespace sees the node's sockets. The owning process is found the way
ss does: the socket's inode among the links in /proc/PID/fd.
"""

from __future__ import annotations

import os
import socket
import struct
from collections.abc import Iterable
from dataclasses import dataclass

from cnilab.kernel import run_in_netns

LISTEN, ESTABLISHED = 0x0A, 0x01


@dataclass(frozen=True)
class TcpSocket:
    """One TCP socket: addresses, state, and the process holding it (if any)."""

    local: str
    local_port: int
    remote: str
    remote_port: int
    state: int
    inode: int
    process: str | None = None
    pid: int | None = None

    @property
    def listening(self) -> bool:
        """In LISTEN state."""
        return self.state == LISTEN

    @property
    def established(self) -> bool:
        """In ESTABLISHED state."""
        return self.state == ESTABLISHED


def _address(field: str) -> tuple[str, int]:
    host, port = field.split(":")
    # The kernel prints the address as a native-endian 32-bit word in hex.
    ip = socket.inet_ntoa(struct.pack("=I", int(host, 16)))
    return ip, int(port, 16)


def parse_proc_tcp(text: str) -> list[TcpSocket]:
    """Parse the text of /proc/net/tcp (IPv4 only, as the lab uses)."""
    found = []
    for line in text.splitlines()[1:]:
        cols = line.split()
        if len(cols) < 10:
            continue
        (lip, lport), (rip, rport) = _address(cols[1]), _address(cols[2])
        found.append(TcpSocket(lip, lport, rip, rport, int(cols[3], 16), int(cols[9])))
    return found


def owners(inodes: Iterable[int]) -> dict[int, tuple[int, str]]:
    """For each socket inode, the (pid, comm) of a process holding it."""
    wanted = {f"socket:[{i}]": i for i in inodes if i}
    found: dict[int, tuple[int, str]] = {}
    if not wanted:
        return found
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            fds = os.listdir(f"/proc/{entry.name}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                target = os.readlink(f"/proc/{entry.name}/fd/{fd}")
            except OSError:
                continue
            inode = wanted.get(target)
            if inode is not None and inode not in found:
                try:
                    with open(f"/proc/{entry.name}/comm", encoding="utf-8") as f:
                        comm = f.read().strip()
                except OSError:
                    continue
                found[inode] = (int(entry.name), comm)
    return found


def tcp_sockets(netns: str | None) -> list[TcpSocket]:
    """Every IPv4 TCP socket in `netns`, with its owning process (like `ss -tanp`)."""

    def read() -> str:
        with open("/proc/thread-self/net/tcp", encoding="ascii") as f:
            return f.read()

    socks = parse_proc_tcp(run_in_netns(netns, read))
    who = owners(s.inode for s in socks)
    return [TcpSocket(**{**s.__dict__, "pid": who[s.inode][0], "process": who[s.inode][1]})
            if s.inode in who else s for s in socks]
