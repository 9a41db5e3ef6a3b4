"""TCP sockets of a namespace with their processes, read as `ss -tanp` reads them, from /proc.

/proc/thread-self/net/tcp lists the sockets of the namespace the reading thread is in, so a thread
that entered the node's namespace sees the node's sockets. The owning process is found the way
ss does: the socket's inode among the links in /proc/PID/fd.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

from cnilab.kernel.netns import run_in_netns
from cnilab.state import TcpSocket, parse_proc_tcp


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
    """Every TCP socket in `netns`, IPv4 and IPv6, with its owning process (like `ss -tanp`)."""

    def read() -> list[str]:
        texts = []
        for name in ("tcp", "tcp6"):
            try:
                with open(f"/proc/thread-self/net/{name}", encoding="ascii") as f:
                    texts.append(f.read())
            except FileNotFoundError:  # a kernel without IPv6
                continue
        return texts

    socks = [s for text in run_in_netns(netns, read) for s in parse_proc_tcp(text)]
    who = owners(s.inode for s in socks)
    return [TcpSocket(**{**s.__dict__, "pid": who[s.inode][0], "process": who[s.inode][1]})
            if s.inode in who else s for s in socks]
