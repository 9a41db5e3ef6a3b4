"""A container with no network: a process alone in a new network namespace, cnilab-owned.

What `docker run --network none` leaves (a process whose namespace has only lo), for machines
without Docker; `cnilab cni attach --pid PID` then gives it a network with CNI, as Kubernetes
does with the sandboxes its runtime makes. The namespace is unnamed (not under /run/netns), as
Docker's are: it lives as long as the process, reached at /proc/PID/ns/net.

`python -m cnilab.cni.standin --name NAME --pidfile F` is the process; StartStandIn the op.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
import time
from pathlib import Path
from typing import ClassVar

from cnilab.compat import valueclass
from cnilab.errors import CnilabError
from cnilab.ops import Evidence, KernelApi, Key, Op
from cnilab.runfiles import PRIVATE_MODE, open_file, read_file
from cnilab.state import Snapshot

MARKER = "cnilab.cni.standin"  # teardown checks /proc/PID/cmdline for it before a signal
CLONE_NEWNET = 0x40000000


def running_pid(pidfile: str | os.PathLike[str], name: str) -> int | None:
    """The stand-in's PID if it is alive and really ours (the PID not reused by another)."""
    try:
        pid = int(read_file(pidfile) or b"")  # never through a planted link (runfiles)
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except (OSError, ValueError, CnilabError):
        return None
    return pid if MARKER.encode() in cmdline and name.encode() in cmdline else None


@valueclass(frozen=True)
class StartStandIn(Op):
    """unshare --net sleep infinity &: a process in a new, empty network namespace."""

    outlives_netns: ClassVar[bool] = True

    name: str = ""
    pidfile: str = ""

    def apply(self, kernel: KernelApi) -> None:
        from cnilab.kernel.processes import spawn

        Path(self.pidfile).unlink(missing_ok=True)
        spawn([sys.executable, "-m", MARKER, "--name", self.name, "--pidfile", self.pidfile],
              lambda: running_pid(self.pidfile, self.name) is not None,
              f"the stand-in container {self.name}")

    def undo(self, kernel: KernelApi) -> None:
        pid = running_pid(self.pidfile, self.name)
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + 5
            while os.path.exists(f"/proc/{pid}") and time.monotonic() < deadline:
                with contextlib.suppress(ChildProcessError):
                    os.waitpid(pid, os.WNOHANG)  # ours when this process started it
                time.sleep(0.01)
        Path(self.pidfile).unlink(missing_ok=True)

    def owned(self, kernel: KernelApi, done: bool, proof: Evidence | None) -> bool:
        return True  # undo signals only a process whose command line is ours (running_pid)

    def satisfied(self, snap: Snapshot) -> bool:
        return running_pid(self.pidfile, self.name) is not None

    def argv(self) -> list[str]:
        return ["unshare", "--net", "sleep", "infinity"]

    def command(self, here: str | None) -> str:
        return super().command(here) + " &"

    def highlights(self) -> tuple[Key, ...]:
        return (("process", "", self.name),)


def _lo_up() -> None:
    # Docker's none network still has lo up: 127.0.0.1 answers inside the container.
    import fcntl
    import socket
    import struct

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        ifreq = struct.pack("16sH14s", b"lo", 0, b"")
        flags = struct.unpack("16sH14s", fcntl.ioctl(s, 0x8913, ifreq))[1]  # SIOCGIFFLAGS
        fcntl.ioctl(s, 0x8914, struct.pack("16sH14s", b"lo", flags | 1, b""))  # SIOCSIFFLAGS


def main() -> None:
    """The stand-in process: a new network namespace, its PID written, then wait for SIGTERM."""
    import ctypes

    from cnilab.kernel.netns import LIBC as libc

    parser = argparse.ArgumentParser(prog=MARKER)
    parser.add_argument("--name", required=True)
    parser.add_argument("--pidfile", type=Path, required=True)
    args = parser.parse_args()
    if libc.unshare(CLONE_NEWNET) != 0:  # one thread: the whole process moves
        sys.exit(f"{MARKER}: unshare: {os.strerror(ctypes.get_errno())}")
    _lo_up()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    fd = open_file(args.pidfile, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_MODE)
    with os.fdopen(fd, "w") as f:
        f.write(str(os.getpid()))
    try:
        while True:
            signal.pause()
    finally:
        args.pidfile.unlink(missing_ok=True)


if __name__ == "__main__":
    main()
