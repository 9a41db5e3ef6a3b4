"""Namespaces and threads: privileges, named namespaces under /run/netns, setns threads, sysctls.

A namespace is entered per thread (setns affects only the calling thread on Linux), so every
function that must act "inside" a namespace runs a short-lived thread that entered it.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import socket
import struct
import threading
from collections.abc import Callable
from typing import Any, Optional, TypeVar

from cnilab.errors import KernelError, PermissionDenied

T = TypeVar("T")
NetnsId = dict[str, Optional[int]]  # {"ino", "dev", "cookie"}: which namespace, for good

NETNS_DIR = "/run/netns"
CLONE_NEWNET = 0x40000000
MS_REC, MS_SHARED, MS_BIND, MNT_DETACH = 0x4000, 1 << 20, 0x1000, 2
CAP_NET_ADMIN, CAP_SYS_ADMIN = 12, 21
SO_NETNS_COOKIE = 71  # Linux 5.14+: a namespace's 64-bit cookie, never reused while up
TCP = "/proc/thread-self/net/tcp"  # the TCP sockets of the reading thread's namespace
OBSERVED_SYSCTLS = ("net.ipv4.ip_forward",)  # the sysctls a snapshot (and the lab) looks at


def _libc() -> ctypes.CDLL:
    # glibc's soname first: ctypes.util.find_library runs `ldconfig -p` (a process, ~10 ms,
    # paid by every CNI plugin call); musl and others fall back to it.
    try:
        return ctypes.CDLL("libc.so.6", use_errno=True)
    except OSError:
        from ctypes.util import find_library  # imports tempfile, random, shutil: only here

        return ctypes.CDLL(find_library("c"), use_errno=True)


# One libc handle for setns, unshare and mount.
LIBC = _libc()


def has_privileges() -> bool:
    """Whether this process has CAP_NET_ADMIN and CAP_SYS_ADMIN (namespaces need both)."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            cap = next(int(ln.split()[1], 16) for ln in f if ln.startswith("CapEff:"))
    except (OSError, StopIteration, ValueError):
        return os.geteuid() == 0
    return bool(cap >> CAP_NET_ADMIN & 1 and cap >> CAP_SYS_ADMIN & 1)


def require_privileges() -> None:
    """Raise PermissionDenied unless the kernel will let cnilab change network state."""
    if not has_privileges():
        raise PermissionDenied.of("root")


def netns_path(name: str) -> str:
    """Where a named namespace is bind-mounted, as `ip netns` does.

    A name starting with "/" is already a path (/run/netns/x, /proc/PID/ns/net): a CNI runtime
    hands plugins a namespace path in CNI_NETNS, not a name.
    """
    return name if name.startswith("/") else os.path.join(NETNS_DIR, name)


def list_netns() -> frozenset[str]:
    """Names under /run/netns."""
    try:
        return frozenset(os.listdir(NETNS_DIR))
    except FileNotFoundError:
        return frozenset()


def _errno_fail(what: str) -> KernelError:
    code = ctypes.get_errno()
    return KernelError(f"{what}: {os.strerror(code)}")


def run_in_netns(netns: str | None, fn: Callable[[], T]) -> T:
    """Run fn in a short-lived thread that entered `netns` (setns is per thread on Linux).

    Sockets made by fn belong to that namespace for good; /proc/sys/net there shows its sysctls.
    """
    if netns is None:
        return fn()
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            fd = os.open(netns_path(netns), os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            box["error"] = KernelError(f"namespace {netns!r} does not exist")
            return
        try:
            if LIBC.setns(fd, CLONE_NEWNET) != 0:
                box["error"] = _errno_fail(f"cannot enter namespace {netns!r}")
                return
            box["value"] = fn()
        except BaseException as e:  # handed to the caller's thread
            box["error"] = e
        finally:
            os.close(fd)

    thread = threading.Thread(target=target, name=f"netns-{netns}", daemon=True)
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]
    return box["value"]


_shared: list[bool] = []  # /run/netns made shared by this process already


def make_netns_dir_shared() -> None:
    # As iproute2 does: /run/netns must be a shared mount so that namespaces bound under it
    # are seen by every mount namespace (ip netns exec, other shells); bind it onto itself first.
    # Once a process, not once a namespace as `ip netns add` does: MS_REC walks every mount
    # under /run/netns, so a cluster's thousand pods would pay it a million times.
    if _shared:
        return
    os.makedirs(NETNS_DIR, exist_ok=True)
    if LIBC.mount(b"", NETNS_DIR.encode(), b"none", MS_SHARED | MS_REC, None) != 0:
        if LIBC.mount(NETNS_DIR.encode(), NETNS_DIR.encode(), b"none", MS_BIND | MS_REC,
                      None) != 0:
            raise _errno_fail(f"cannot bind-mount {NETNS_DIR}")
        if LIBC.mount(b"", NETNS_DIR.encode(), b"none", MS_SHARED | MS_REC, None) != 0:
            raise _errno_fail(f"cannot make {NETNS_DIR} a shared mount")
    _shared.append(True)


def open_rtnl_socket() -> socket.socket:
    """A NETLINK_ROUTE socket in the calling thread's namespace (it stays in that one)."""
    sock = socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC, 0)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 20)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    sock.bind((0, 0))
    return sock


def _cookie() -> int | None:
    """The calling thread's namespace cookie (None before Linux 5.14)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
        try:
            return int(struct.unpack("=Q", s.getsockopt(socket.SOL_SOCKET, SO_NETNS_COOKIE, 8))[0])
        except OSError:
            return None


def _thread_netns_id() -> NetnsId:
    st = os.stat(f"/proc/self/task/{threading.get_native_id()}/ns/net")
    return {"ino": st.st_ino, "dev": st.st_dev, "cookie": _cookie()}


def netns_id(name: str) -> NetnsId | None:
    """The inode, device and cookie of the namespace named `name`; None when there is none.

    A name that is a plain file (not a namespace mounted there) gives its own inode and no
    cookie: it never matches a namespace's.
    """
    path = netns_path(name)
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    if st.st_dev != os.stat("/proc/thread-self/ns/net").st_dev:  # not on nsfs
        return {"ino": st.st_ino, "dev": st.st_dev, "cookie": None}
    return run_in_netns(name, _thread_netns_id)


def add_netns(name: str, on_made: Callable[[NetnsId], None] | None = None,
              inside: Callable[[], T] | None = None) -> T | None:
    """Create a named namespace (ip netns add): unshare a thread, bind it under /run/netns.

    on_made gets the new namespace's id before it has its name: a caller that records it can
    prove later that the name is (still) this namespace, whenever the process dies. inside
    runs in that thread once the name is bound (to open sockets there without a second
    thread); its value is returned.
    """
    path = netns_path(name)
    make_netns_dir_shared()
    if os.path.lexists(path):
        raise KernelError(f"namespace {name!r} already exists")
    made: list[bool] = []

    def bind() -> None:
        if LIBC.unshare(CLONE_NEWNET) != 0:
            raise _errno_fail(f"cannot create namespace {name!r}")
        if on_made is not None:
            on_made(_thread_netns_id())
        try:
            os.close(os.open(path, os.O_RDONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o444))
        except FileExistsError as e:
            raise KernelError(f"namespace {name!r} already exists") from e
        made.append(True)
        if LIBC.mount(f"/proc/self/task/{threading.get_native_id()}/ns/net".encode(),
                      path.encode(), b"none", MS_BIND, None) != 0:
            raise _errno_fail(f"cannot bind namespace {name!r}")
        if inside is not None:
            opened.append(inside())

    box: list[BaseException] = []
    opened: list[T] = []
    thread = threading.Thread(target=lambda: _catch(bind, box), daemon=True)
    thread.start()
    thread.join()
    if box:
        if made:
            LIBC.umount2(path.encode(), MNT_DETACH)  # bound already, if `inside` failed
            os.unlink(path)
        raise box[0]
    return opened[0] if opened else None


def remove_netns(name: str) -> None:
    """Remove a named namespace (ip netns delete); already gone is fine."""
    path = netns_path(name)
    LIBC.umount2(path.encode(), MNT_DETACH)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


def read_sysctl(netns: str | None, key: str) -> str:
    """Read a sysctl as seen inside `netns` (/proc/sys/net shows the reading thread's namespace)."""
    return run_in_netns(netns, lambda: read_text(sysctl_path(key)))


def sysctl_path(key: str) -> str:
    """net.ipv4.ip_forward -> /proc/sys/net/ipv4/ip_forward."""
    return "/proc/sys/" + key.replace(".", "/")


def _catch(fn: Callable[[], None], box: list[BaseException]) -> None:
    try:
        fn()
    except BaseException as e:
        box.append(e)


def read_text(path: str) -> str:
    """A small text file (/proc), stripped."""
    with open(path, encoding="ascii") as f:
        return f.read().strip()
