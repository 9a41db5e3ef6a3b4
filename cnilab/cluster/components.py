"""The Kubernetes components as real listening processes inside each node's namespace.

The sockets are made here, by a thread that entered the node's namespace, so they belong to that
namespace whatever the child does; the child (listener.py) only holds them under the component's
name. Each process carries a token naming its lab, node and component in its command line: that is
how `down` finds the processes it started, even when `up` was killed before recording a PID, and
why it never signals a process that merely shares a name.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from cnilab.compat import valueclass
from cnilab.errors import KernelError
from cnilab.kernel import run_in_netns
from cnilab.ops import Evidence, KernelApi, Op
from cnilab.state import Snapshot

if TYPE_CHECKING:
    from cnilab.cluster.plan import ClusterPlan

LISTENER = str(Path(__file__).with_name("listener.py"))
TOKEN = "--cnilab-component="
CONNECT_TIMEOUT = 2.0
READY_TIMEOUT = 10.0


@valueclass(frozen=True)
class Component:
    """A component's sockets: where it listens and whom it keeps connections to."""

    name: str
    listen: tuple[tuple[str, int], ...]  # host "node" means the node's own address
    connect: tuple[tuple[str, int, int], ...] = ()  # (host, port, count); "controlplane" allowed
    flags: tuple[str, ...] = ()  # shown in its command line (`ps -ef`), as a real one's are


# As on a kubeadm node (`ss -ltnp`): the control plane on controlplane only, kubelet and
# kube-proxy everywhere. What listens on every address does so as Go programs do, on IPv6's
# `::` taking IPv4 too: netstat shows `tcp6 ... :::6443`, and a client from 172.17.0.40 as
# ::ffff:172.17.0.40. etcd serves clients on 2379 and peers on 2380; kube-apiserver is its
# only client and keeps several connections to it, so 2379 has the established connections.
CONTROLPLANE = (
    Component("etcd", (("127.0.0.1", 2379), ("node", 2379), ("node", 2380))),
    Component("kube-apiserver", (("::", 6443),), (("127.0.0.1", 2379, 4),),
              ("--secure-port=6443", "--etcd-servers=https://127.0.0.1:2379",
               "--service-cluster-ip-range=10.96.0.0/12",
               "--service-node-port-range=30000-32767")),
    Component("kube-scheduler", (("127.0.0.1", 10259),), (("controlplane", 6443, 1),)),
    Component("kube-controller-manager", (("127.0.0.1", 10257),),
              (("controlplane", 6443, 1),)),
)
EVERY_NODE = (
    Component("kubelet", (("::", 10250), ("127.0.0.1", 10248)),
              (("controlplane", 6443, 1),)),
    Component("kube-proxy", (("::", 10256), ("127.0.0.1", 10249)),
              (("controlplane", 6443, 1),)),
)
BY_NAME = {c.name: c for c in CONTROLPLANE + EVERY_NODE}

_pending: list[tuple[int, int, str]] = []  # (ready pipe, pid, token) of children not yet ready


def components_for(controlplane: bool) -> tuple[Component, ...]:
    """The components a node runs."""
    return (CONTROLPLANE + EVERY_NODE) if controlplane else EVERY_NODE


def component_ops(plan: ClusterPlan) -> list[StartComponent]:
    """One StartComponent per component of every node, etcd before its clients."""
    cp = str(plan.controlplane.address.ip)
    return [StartComponent(plan.netns(n), c.name, plan.lab_id, n.name, str(n.address.ip), cp)
            for n in plan.nodes for c in components_for(n.is_controlplane)]


def running() -> dict[str, list[int]]:
    """PIDs of every live cnilab component process, by token (from /proc/*/cmdline)."""
    found: dict[str, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/cmdline", "rb") as f:
                args = f.read().split(b"\0")
        except OSError:
            continue  # exited meanwhile
        for arg in args:
            if arg.startswith(TOKEN.encode()):
                found.setdefault(arg.decode(errors="replace"), []).append(int(entry.name))
    return found


def _resolve(host: str, node_ip: str, controlplane_ip: str) -> str:
    return {"node": node_ip, "controlplane": controlplane_ip}.get(host, host)


@valueclass(frozen=True)
class StartComponent(Op):
    """Start a component's process with its sockets in the node's namespace."""

    # A process lives on after its namespace's name is gone (and keeps it alive): stop it first.
    outlives_netns: ClassVar[bool] = True
    undo_first: ClassVar[bool] = True

    component: str = ""
    lab: str = ""
    node: str = ""
    node_ip: str = ""
    controlplane_ip: str = ""

    @property
    def token(self) -> str:
        """The argument that marks this process as this lab's, this node's, this component."""
        return f"{TOKEN}{self.lab}/{self.node}/{self.component}"

    def _sockets(self) -> list[socket.socket]:
        spec = BY_NAME[self.component]
        made: list[socket.socket] = []
        try:
            for host, port in spec.listen:
                family = socket.AF_INET6 if ":" in host else socket.AF_INET
                s = socket.socket(family, socket.SOCK_STREAM)
                made.append(s)
                if family == socket.AF_INET6:  # dual-stack whatever net.ipv6.bindv6only says
                    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
                # A restarted component must rebind while old connections sit in TIME_WAIT.
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                s.bind((_resolve(host, self.node_ip, self.controlplane_ip), port))
                s.listen(128)
            for host, port, count in spec.connect:
                address = (_resolve(host, self.node_ip, self.controlplane_ip), port)
                for _ in range(count):
                    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                    made.append(s)
                    s.settimeout(CONNECT_TIMEOUT)
                    s.connect(address)
        except OSError as e:
            for s in made:
                s.close()
            raise KernelError.of("cluster_sockets", component=self.component, node=self.node,
                                 detail=e.strerror or e) from e
        return made

    def apply(self, kernel: KernelApi) -> None:
        socks = run_in_netns(self.netns, self._sockets)
        fds = [s.fileno() for s in socks]
        read_end, write_end = os.pipe()
        try:
            child = subprocess.Popen(
                [self.component, "-S", "-I", LISTENER, self.token,
                 "--fds=" + ",".join(map(str, fds)), f"--ready={write_end}",
                 *BY_NAME[self.component].flags],
                executable=sys.executable, pass_fds=(*fds, write_end), close_fds=True,
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                start_new_session=True)  # a Ctrl-C in the terminal must not stop the cluster
        except BaseException:
            os.close(read_end)
            raise
        finally:
            os.close(write_end)
            for s in socks:
                s.close()
        _pending.append((read_end, child.pid, self.token))

    def undo(self, kernel: KernelApi) -> None:
        stop({self.token: running().get(self.token, [])})

    @classmethod
    def undo_together(cls, ops: Sequence[Op], kernel: KernelApi) -> None:
        # One pass over /proc and one wait for all of them: a cluster has hundreds.
        live = running()
        stop({op.token: live.get(op.token, []) for op in ops if isinstance(op, StartComponent)})

    def owned(self, kernel: KernelApi, done: bool, proof: Evidence | None) -> bool:
        return True  # stop() signals only processes whose command line carries our token

    def satisfied(self, snap: Snapshot) -> bool:
        return self.token in running()

    def argv(self) -> list[str]:
        return [self.component]


def wait_ready(timeout: float = READY_TIMEOUT) -> None:
    """Wait until every child started by apply() has renamed itself and holds its sockets."""
    deadline = time.monotonic() + timeout
    while _pending:
        read_end, pid, token = _pending[0]
        left = max(0.0, deadline - time.monotonic())
        readable, _, _ = select.select([read_end], [], [], left)
        data = os.read(read_end, 1) if readable else b""
        os.close(read_end)
        _pending.pop(0)
        if data != b"1":
            raise KernelError.of("cluster_not_started", pid=pid, component=token.split("/")[-1])


def _alive(pid: int) -> bool:
    """Whether a process still runs (a zombie waiting for its parent to reap it does not)."""
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)  # our own child (up and down in one process): reap it
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def stop(pids: dict[str, list[int]], timeout: float = 2.0) -> None:
    """End component processes by PID (token -> PIDs), each checked to still carry its token."""
    signalled = []
    for token, found in pids.items():
        for pid in found:
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    if token.encode() not in f.read().split(b"\0"):
                        continue  # the PID was reused by someone else's process
                os.kill(pid, signal.SIGTERM)
            except (FileNotFoundError, ProcessLookupError):
                continue
            signalled.append(pid)
    deadline = time.monotonic() + timeout
    while (signalled := [p for p in signalled if _alive(p)]) and time.monotonic() < deadline:
        time.sleep(0.005)
    for pid in signalled:  # ignored SIGTERM for too long
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
