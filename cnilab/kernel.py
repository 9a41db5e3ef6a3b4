"""The only module that talks to the kernel: netlink through pyroute2, iptables, /proc/sys.

pyroute2 is imported on first use, not at import time: `import pyroute2` costs ~0.2 s, and
teardown of an isolated lab or a --help never needs it.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import errno
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import replace
from ipaddress import IPv4Interface
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from cnilab.errors import KernelError, MissingTool, PermissionDenied
from cnilab.ops import TAG
from cnilab.state import Link, Namespace, Route, Snapshot

if TYPE_CHECKING:
    from pyroute2 import IPRoute

T = TypeVar("T")

NETNS_DIR = "/run/netns"
CLONE_NEWNET = 0x40000000
MS_REC, MS_SHARED, MS_BIND, MNT_DETACH = 0x4000, 1 << 20, 0x1000, 2
IFF_UP, IFF_LOOPBACK = 0x1, 0x8
CAP_NET_ADMIN, CAP_SYS_ADMIN = 12, 21
GONE = (errno.ENODEV, errno.ENOENT, errno.ESRCH, errno.EADDRNOTAVAIL)  # "already gone"
OBSERVED_SYSCTLS = ("net.ipv4.ip_forward",)
NETLINK_ROUTE, NETLINK_BUFFER = 0, 1 << 20

# One libc handle for setns, unshare and mount (ctypes.util.find_library runs `ldconfig -p`).
LIBC = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)


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


def _make_netns_dir_shared() -> None:
    # As iproute2 does: /run/netns must be a shared mount so that namespaces bound under it
    # are seen by every mount namespace (ip netns exec, other shells); bind it onto itself first.
    os.makedirs(NETNS_DIR, exist_ok=True)
    if LIBC.mount(b"", NETNS_DIR.encode(), b"none", MS_SHARED | MS_REC, None) == 0:
        return
    if LIBC.mount(NETNS_DIR.encode(), NETNS_DIR.encode(), b"none", MS_BIND | MS_REC, None) != 0:
        raise _errno_fail(f"cannot bind-mount {NETNS_DIR}")
    if LIBC.mount(b"", NETNS_DIR.encode(), b"none", MS_SHARED | MS_REC, None) != 0:
        raise _errno_fail(f"cannot make {NETNS_DIR} a shared mount")


class Kernel:
    """Applies and observes network state; one netlink socket per namespace, reused."""

    def __init__(self) -> None:
        self._sockets: dict[str | None, IPRoute] = {}
        self._iptables: str | None = shutil.which("iptables")

    # -- lifecycle -------------------------------------------------------------------------

    def close(self) -> None:
        """Close every netlink socket (an open socket keeps a removed namespace's links alive)."""
        for name in list(self._sockets):
            self.close_netns(name)

    def close_netns(self, netns: str | None) -> None:
        """Close the socket into one namespace, if open (before removing that namespace)."""
        sock = self._sockets.pop(netns, None)
        if sock is not None:
            sock.close()

    def __enter__(self) -> Kernel:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _ipr(self, netns: str | None) -> IPRoute:
        if netns not in self._sockets:
            from pyroute2 import IPRoute

            if netns is None:
                self._sockets[netns] = IPRoute()
            else:
                # A socket belongs for good to the namespace it was made in: made by a thread
                # that entered the namespace, it needs none of the helper process that
                # IPRoute(netns=...) forks (~12 ms a namespace; a cluster has one per pod).
                sock = run_in_netns(netns, lambda: socket.socket(
                    socket.AF_NETLINK, socket.SOCK_DGRAM, NETLINK_ROUTE))
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, NETLINK_BUFFER)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, NETLINK_BUFFER)
                self._sockets[netns] = IPRoute(use_socket=sock)
        return self._sockets[netns]

    def _call(self, what: str, fn: Callable[[], T]) -> T:
        from pyroute2.netlink.exceptions import NetlinkError

        try:
            return fn()
        except NetlinkError as e:
            raise KernelError(f"the kernel refused to {what}: {os.strerror(e.code)}") from e

    def _link_msg(self, netns: str | None, name: str) -> Any:
        """The kernel's RTM_NEWLINK answer for one link asked by name, or None if absent."""
        from pyroute2.netlink.exceptions import NetlinkError

        try:  # one RTM_GETLINK by name; link_lookup() would dump every link
            return self._ipr(netns).link("get", ifname=name)[0]
        except NetlinkError as e:
            if e.code in GONE:
                return None
            raise KernelError(f"cannot look up {name}: {os.strerror(e.code)}") from e

    def _index(self, netns: str | None, name: str) -> int | None:
        msg = self._link_msg(netns, name)
        return None if msg is None else msg["index"]

    def _need_index(self, netns: str | None, name: str) -> int:
        index = self._index(netns, name)
        if index is None:
            where = f"namespace {netns}" if netns else "this namespace"
            raise KernelError(f"there is no link {name!r} in {where}")
        return index

    # -- namespaces --------------------------------------------------------------------------

    def add_netns(self, name: str) -> None:
        """Create a named namespace (ip netns add): unshare a thread, bind it under /run/netns."""
        path = netns_path(name)
        _make_netns_dir_shared()
        try:
            os.close(os.open(path, os.O_RDONLY | os.O_CREAT | os.O_EXCL, 0o444))
        except FileExistsError as e:
            raise KernelError(f"namespace {name!r} already exists") from e

        def bind() -> None:
            if LIBC.unshare(CLONE_NEWNET) != 0:
                raise _errno_fail(f"cannot create namespace {name!r}")
            src = f"/proc/self/task/{threading.get_native_id()}/ns/net".encode()
            if LIBC.mount(src, path.encode(), b"none", MS_BIND, None) != 0:
                raise _errno_fail(f"cannot bind namespace {name!r}")

        box: list[BaseException] = []
        thread = threading.Thread(target=lambda: _catch(bind, box), daemon=True)
        thread.start()
        thread.join()
        if box:
            os.unlink(path)
            raise box[0]

    def remove_netns(self, name: str) -> None:
        """Remove a named namespace (ip netns delete); already gone is fine."""
        self.close_netns(name)
        path = netns_path(name)
        LIBC.umount2(path.encode(), MNT_DETACH)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)

    # -- links, addresses, routes ---------------------------------------------------------------

    def add_link(self, netns: str | None, name: str, kind: str,
                 peer: str | None = None, peer_netns: str | None = None) -> None:
        """Create a bridge or a veth pair, both ends tagged with the alias 'cnilab'."""
        ipr = self._ipr(netns)
        extra: dict[str, Any] = {}
        if kind == "veth":
            extra["peer"] = {"ifname": peer, **({"net_ns_fd": peer_netns} if peer_netns else {})}
        self._call(f"add link {name}", lambda: ipr.link("add", ifname=name, kind=kind, **extra))
        # The alias is the kernel-side ownership tag; RTM_NEWLINK ignores it, so set it after.
        self.tag_link(netns, name)
        if peer:
            self.tag_link(peer_netns or netns, peer)

    def _set_link(self, netns: str | None, name: str, what: str, **attrs: Any) -> None:
        """`ip link set NAME ...`: one RTM_SETLINK that names the link (no index lookup first)."""
        from pyroute2.netlink.exceptions import NetlinkError

        try:
            self._ipr(netns).link("set", ifname=name, **attrs)
        except NetlinkError as e:
            if e.code == errno.ENODEV:
                where = f"namespace {netns}" if netns else "this namespace"
                raise KernelError(f"there is no link {name!r} in {where}") from e
            raise KernelError(f"the kernel refused to {what}: {os.strerror(e.code)}") from e

    def tag_link(self, netns: str | None, name: str) -> None:
        """Mark a link as cnilab's (ip link set NAME alias cnilab)."""
        self._set_link(netns, name, f"tag {name}", ifalias=TAG)

    def delete_link(self, netns: str | None, name: str) -> bool:
        """Delete a link; False when it (or its namespace) is already gone."""
        if netns is not None and not os.path.exists(netns_path(netns)):
            return False
        index = self._index(netns, name)
        if index is None:
            return False
        from pyroute2.netlink.exceptions import NetlinkError

        try:
            self._ipr(netns).link("del", index=index)
        except NetlinkError as e:
            if e.code in GONE:
                return False
            raise KernelError(f"the kernel refused to delete {name}: {os.strerror(e.code)}") from e
        return True

    def move_link(self, netns: str | None, name: str, target: str) -> None:
        """Move a link into another namespace (ip link set NAME netns TARGET)."""
        self._set_link(netns, name, f"move {name} to {target}", net_ns_fd=target)

    def set_master(self, netns: str | None, name: str, master: str) -> None:
        """Attach a link to a bridge; the kernel wants the bridge's index, not its name."""
        master_index = self._need_index(netns, master)
        self._set_link(netns, name, f"attach {name} to {master}", master=master_index)

    def add_address(self, netns: str | None, dev: str, cidr: str) -> None:
        """Add an IPv4 address with its prefix to a link."""
        iface, index = IPv4Interface(cidr), self._need_index(netns, dev)
        self._call(f"add {cidr} to {dev}", lambda: self._ipr(netns).addr(
            "add", index=index, address=str(iface.ip), prefixlen=iface.network.prefixlen))

    def set_up(self, netns: str | None, name: str) -> None:
        """Bring a link up."""
        self._set_link(netns, name, f"bring {name} up", state="up")

    def add_route(self, netns: str | None, dst: str, gateway: str) -> None:
        """Add a route via a gateway (dst 'default' or a CIDR)."""
        # proto boot, as `ip route add` does (pyroute2's default, static, shows in `ip route`).
        self._call(f"add route {dst} via {gateway}",
                   lambda: self._ipr(netns).route("add", dst=dst, gateway=gateway, proto=3))

    def set_mtu(self, netns: str | None, name: str, mtu: int) -> None:
        """Set a link's MTU (ip link set NAME mtu MTU)."""
        self._set_link(netns, name, f"set the mtu of {name} to {mtu}", mtu=mtu)

    def set_hairpin(self, netns: str | None, name: str, on: bool = True) -> None:
        """Let a bridge port send frames back out of the port they came in on (hairpin mode)."""
        index = self._need_index(netns, name)
        self._call(f"set hairpin mode on {name}",
                   lambda: self._ipr(netns).brport("set", index=index, mode=int(on)))

    def get_link(self, netns: str | None, name: str) -> Link | None:
        """One link as observed (kind, master, addresses, MAC), or None when there is none.

        Asked by name (RTM_GETLINK), not found in a dump: a node with a hundred pods has a
        hundred veths, and a CNI ADD asks several times.
        """
        msg = self._link_msg(netns, name)
        if msg is None:
            return None
        ipr, index = self._ipr(netns), msg["index"]
        names = {index: name}
        if msg.get("master"):
            master = self._call(f"look up the master of {name}",
                                lambda: ipr.link("get", index=msg.get("master"))[0])
            names[master["index"]] = master.get("ifname")
        addrs = [f"{a.get('address')}/{a['prefixlen']}"
                 for a in ipr.get_addr(family=socket.AF_INET, index=index)]
        return _to_link(msg, names, {index: addrs})

    def mac_of(self, netns: str | None, name: str) -> str | None:
        """A link's MAC address (one RTM_GETLINK), or None when there is no such link."""
        msg = self._link_msg(netns, name)
        return None if msg is None else msg.get("address")

    def set_mac(self, netns: str | None, name: str, mac: str) -> None:
        """Set a link's MAC address (ip link set NAME address MAC)."""
        self._set_link(netns, name, f"set the MAC of {name}", address=mac)

    # -- processes -----------------------------------------------------------------------------

    def _pidfile(self, netns: str | None, port: int) -> Path:
        from cnilab.ledger import run_dir

        return run_dir() / f"server-{(netns or 'node').strip('/').replace('/', '_')}-{port}.pid"

    def start_server(self, netns: str | None, port: int, body: str) -> None:
        """Start cnilab's web server inside `netns` (detached), and wait until it listens."""
        from cnilab.webserver import MARKER

        pidfile = self._pidfile(netns, port)
        pidfile.unlink(missing_ok=True)
        argv = [sys.executable, "-m", MARKER, "--port", str(port), "--body", body,
                "--pidfile", str(pidfile), *(["--netns", netns] if netns else [])]
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, start_new_session=True)
        deadline = time.monotonic() + 5
        while not pidfile.exists():
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                detail = (proc.communicate()[1] or b"").decode(errors="replace").strip()
                raise KernelError(f"the web server on port {port} did not start: "
                                  f"{detail.splitlines()[-1] if detail else 'no message'}")
            time.sleep(0.01)

    def stop_server(self, netns: str | None, port: int) -> None:
        """Stop the web server cnilab started there, by its PID, and only if it is ours."""
        from cnilab.webserver import MARKER

        pidfile = self._pidfile(netns, port)
        try:
            pid = int(pidfile.read_text())
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except (FileNotFoundError, ValueError, ProcessLookupError):
            pidfile.unlink(missing_ok=True)
            return
        if MARKER.encode() not in cmdline:  # the PID was reused by someone else's process
            pidfile.unlink(missing_ok=True)
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + 3
            while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
                time.sleep(0.01)
            if Path(f"/proc/{pid}").exists():
                os.kill(pid, signal.SIGKILL)
        pidfile.unlink(missing_ok=True)

    # -- sysctl and iptables ---------------------------------------------------------------------

    def read_sysctl(self, netns: str | None, key: str) -> str:
        """Read a sysctl as seen inside `netns`."""
        path = "/proc/sys/" + key.replace(".", "/")
        return run_in_netns(netns, lambda: _read(path))

    def write_sysctl(self, netns: str | None, key: str, value: str) -> None:
        """Write a sysctl inside `netns` (pyroute2 has no sysctl API)."""
        path = "/proc/sys/" + key.replace(".", "/")
        run_in_netns(netns, lambda: _write(path, value))

    @property
    def has_iptables(self) -> bool:
        """Whether the iptables binary is installed."""
        return self._iptables is not None

    def require_iptables(self) -> str:
        """The iptables binary's path, or MissingTool saying how to install it."""
        if self._iptables is None:
            raise MissingTool.of("no_iptables")
        return self._iptables

    def iptables(self, netns: str | None, args: list[str], missing_ok: bool = False) -> str:
        """Run iptables inside `netns` (an argument list, never a shell); returns stdout.

        missing_ok: a -D of a rule (or in a namespace) that is already gone is not an error.
        """
        if missing_ok and netns is not None and not os.path.exists(netns_path(netns)):
            return ""
        argv = [self.require_iptables(), *args]
        if netns is not None:
            argv = ["nsenter", f"--net={netns_path(netns)}", "--", *argv]
        done = subprocess.run(argv, capture_output=True, text=True, check=False)
        if done.returncode == 1 and missing_ok:
            return ""
        if done.returncode != 0:
            detail = (done.stderr.strip().splitlines() or ["no message"])[0]
            raise KernelError(f"iptables {' '.join(args)} failed: {detail}")
        return done.stdout

    def iptables_backend(self) -> str | None:
        """'nf_tables' or 'legacy', from `iptables --version`; None when not installed."""
        if self._iptables is None:
            return None
        out = subprocess.run([self._iptables, "--version"], capture_output=True, text=True,
                             check=False).stdout
        return out[out.find("(") + 1:out.find(")")] if "(" in out else "legacy"

    # -- observation -------------------------------------------------------------------------------

    def observe(self, namespaces: Iterable[str | None], nat_in: Iterable[str | None] = ()
                ) -> Snapshot:
        """Read the state of each existing namespace given; NAT rules only where asked."""
        present = list_netns()
        nat_in = set(nat_in)
        raw: dict[str | None, list[tuple[Link, int | None, bool]]] = {}
        spaces: dict[str | None, Namespace] = {}
        for name in dict.fromkeys(namespaces):
            if name is not None and name not in present and not (
                    name.startswith("/") and os.path.exists(name)):
                continue
            links, routes = self._read_links_routes(name)
            raw[name] = links
            sysctls = {k: self.read_sysctl(name, k) for k in OBSERVED_SYSCTLS}
            nat = None
            if name in nat_in and self._iptables is not None:
                out = self.iptables(name, ["-t", "nat", "-S"])
                nat = tuple(ln for ln in out.splitlines() if ln.startswith("-A "))
            spaces[name] = Namespace(name, (), routes, sysctls, nat, listening_ports(name))
        for name, links in raw.items():
            resolved = tuple(_with_peer(name, link, peer, local, raw)
                             for link, peer, local in links)
            spaces[name] = replace(spaces[name], links=resolved)
        return Snapshot(present, spaces)

    def _read_links_routes(self, netns: str | None
                           ) -> tuple[list[tuple[Link, int | None, bool]], tuple[Route, ...]]:
        ipr = self._ipr(netns)
        msgs = ipr.get_links()
        names = {m["index"]: m.get("ifname") for m in msgs}
        addrs: dict[int, list[str]] = {}
        for a in ipr.get_addr(family=socket.AF_INET):
            addrs.setdefault(a["index"], []).append(f"{a.get('address')}/{a['prefixlen']}")
        # A veth's peer: IFLA_LINK is its index; IFLA_LINK_NETNSID says it is elsewhere.
        links = [(_to_link(m, names, addrs), m.get("link"), m.get("link_netnsid") is None)
                 for m in msgs]
        routes = []
        for r in ipr.get_routes(family=socket.AF_INET, table=254):
            if r["type"] != 1:  # unicast only
                continue
            dst = f"{r.get('dst')}/{r['dst_len']}" if r.get("dst") else "default"
            routes.append(Route(dst, r.get("gateway"), names.get(r.get("oif"))))
        return links, tuple(routes)


def _to_link(m: Any, names: dict[int, str], addrs: dict[int, list[str]]) -> Link:
    """A Link from an RTM_NEWLINK message (peer left for observe() to resolve)."""
    kind = m.get(("linkinfo", "kind"))
    if kind is None:
        kind = "loopback" if m["flags"] & IFF_LOOPBACK else "device"
    return Link(name=m.get("ifname"), kind=kind, index=m["index"], up=bool(m["flags"] & IFF_UP),
                master=names.get(m.get("master")) if m.get("master") else None,
                addresses=tuple(addrs.get(m["index"], ())), alias=m.get("ifalias"),
                mac=m.get("address"))


def _with_peer(netns: str | None, link: Link, peer: int | None, local: bool,
               raw: dict[str | None, list[tuple[Link, int | None, bool]]]) -> Link:
    if link.kind != "veth" or not peer:
        return link
    if local:
        name = next((ln.name for ln, _, _ in raw[netns] if ln.index == peer), None)
        return Link(**{**link.__dict__, "peer": name})
    # Elsewhere: the veth, in another observed namespace, whose index and peer index mirror ours.
    for other, links in raw.items():
        for ln, back, _ in links:
            if other != netns and ln.kind == "veth" and ln.index == peer and back == link.index:
                return Link(**{**link.__dict__, "peer": f"{other or '.'}:{ln.name}"})
    return link


def listening_ports(netns: str | None) -> tuple[int, ...]:
    """TCP ports something listens on inside `netns`."""
    from cnilab.sockets import LISTEN, parse_proc_tcp

    # /proc/thread-self/net/tcp lists the sockets of the reading thread's namespace.
    text = run_in_netns(netns, lambda: _read("/proc/thread-self/net/tcp"))
    return tuple(sorted({s.local_port for s in parse_proc_tcp(text) if s.state == LISTEN}))


def _catch(fn: Callable[[], None], box: list[BaseException]) -> None:
    try:
        fn()
    except BaseException as e:
        box.append(e)


def _read(path: str) -> str:
    with open(path, encoding="ascii") as f:
        return f.read().strip()


def _write(path: str, value: str) -> None:
    with open(path, "w", encoding="ascii") as f:
        f.write(value)
