"""Running cnilab as a user would (a subprocess), under a test's own prefix and ledger dir."""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cnilab.cluster.cluster import Cluster, cluster_ledger
from cnilab.cluster.plan import build_plan
from cnilab.cni.exec import config_version, find_reference, invoke
from cnilab.kernel import Kernel
from cnilab.lab.steps import observed_namespaces
from cnilab.lab.topology import Topology, default_topology
from cnilab.state import Snapshot


@dataclass
class Cnilab:
    """`cnilab --prefix P ...` with a private CNILAB_RUN_DIR."""

    prefix: str
    run_dir: Path
    extra_env: dict[str, str] | None = None

    def env(self) -> dict[str, str]:
        """The environment the subprocess gets."""
        return {**os.environ, "CNILAB_RUN_DIR": str(self.run_dir), "LANG": "C.UTF-8",
                **(self.extra_env or {})}

    def argv(self, *args: str, wrap: tuple[str, ...] = ()) -> list[str]:
        """The command line; `wrap` goes in front (e.g. ip netns exec NODE)."""
        return [*wrap, sys.executable, "-m", "cnilab", "--prefix", self.prefix, *args]

    def run(self, *args: str, wrap: tuple[str, ...] = (), timeout: float = 120
            ) -> subprocess.CompletedProcess[str]:
        """Run and capture; never raises on a non-zero exit."""
        return subprocess.run(self.argv(*args, wrap=wrap), capture_output=True, text=True,
                              env=self.env(), timeout=timeout, check=False)

    def json(self, *args: str) -> Any:
        """Run with --json and parse stdout."""
        done = self.run(*args, "--json")
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)

    @property
    def topo(self) -> Topology:
        """The isolated default lab under this prefix."""
        return default_topology(prefix=self.prefix)

    def observe(self, topo: Topology | None = None) -> Snapshot:
        """Observe the lab's namespaces directly."""
        topo = topo or self.topo
        with Kernel() as k:
            return k.observe(observed_namespaces(topo), nat_in=[topo.node])


def prefixed_netns(prefix: str) -> list[str]:
    """Namespaces under /run/netns that carry this test's prefix."""
    try:
        return sorted(n for n in os.listdir("/run/netns") if n.startswith(prefix))
    except FileNotFoundError:
        return []


def root_namespace_state() -> dict[str, str]:
    """Everything a test must leave unchanged in the machine's own namespace."""
    def sh(*argv: str) -> str:
        return subprocess.run(argv, capture_output=True, text=True, check=False).stdout

    return {
        "links": sh("ip", "-o", "link", "show"),
        "addresses": sh("ip", "-o", "addr", "show"),
        "routes": sh("ip", "route", "show", "table", "all"),
        "nat": sh("iptables", "-t", "nat", "-S"),
        "filter": sh("iptables", "-S"),
        "ip_forward": Path("/proc/sys/net/ipv4/ip_forward").read_text(),
    }


def unmount_under(folder: Path) -> None:
    """Unmount what is mounted under our temp folder (only there), deepest first."""
    points = []
    with open("/proc/self/mountinfo", encoding="utf-8") as f:
        for line in f:
            point = line.split()[4].replace("\\040", " ")
            if point == str(folder) or point.startswith(f"{folder}/"):
                points.append(point)
    for point in sorted(points, key=len, reverse=True):
        subprocess.run(["umount", point], capture_output=True, check=False)


def reference_skip(*plugins: str) -> str | None:
    """Why a test comparing cnilab with these reference plugins at CNI 1.0.0 cannot run here:
    they are missing, or older than 1.0 (0.9 in Debian 11 and Ubuntu 22.04 stops at 0.4.0)."""
    exes = [find_reference(p) for p in plugins]
    if not all(exes):
        return "reference CNI plugins not installed (apt-get install containernetworking-plugins)"
    # VERSION only prints what the plugin speaks; it touches no namespace.
    version = config_version(invoke(str(exes[0]), "VERSION", {"cniVersion": "1.0.0"}))
    if version != "1.0.0":
        return (f"the reference plugins speak CNI up to {version} (containernetworking-plugins "
                "before 1.0); these comparisons need 1.0.0")
    return None


Event = dict[str, Any]
WAIT = 15.0  # seconds: a bound for a busy shared machine, not a speed claim


class Watching:
    """A running `watch --json-lines` or `cluster watch --json-lines`, read by a thread."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.proc = proc
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.seen: list[Event] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line)
        self.lines.put(None)

    def next_line(self) -> Event:
        """The next JSON line (fails after WAIT seconds or at the end of the output)."""
        line = self.lines.get(timeout=WAIT)
        assert line is not None, "watch ended early: " + (self.proc.stderr.read()
                                                          if self.proc.stderr else "")
        event = json.loads(line)
        self.seen.append(event)
        return event

    def until(self, match: Callable[[Event], bool]) -> Event:
        """Read lines until one matches."""
        while True:
            event = self.next_line()
            if match(event):
                return event

    def count(self, netns: str, kind: str, name: str) -> int:
        """How many change lines so far are about this object."""
        return sum(1 for e in self.seen
                   if (e.get("netns"), e.get("kind"), e.get("name")) == (netns, kind, name))


def ip(*args: str) -> None:
    """`ip`, as an instructor types it (cnilab is not involved)."""
    subprocess.run(["ip", *args], check=True, capture_output=True)


def cpu_ticks(pid: int) -> int:
    """User + system CPU time the process used so far, in clock ticks."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def goes_idle(pid: int, windows: int = 15, ticks: int = 2) -> bool:
    """Whether some one-second window (of the first `windows`) costs the process at most
    `ticks`: a polling loop never has one; a process asleep in select() has one as soon as the
    kernel's own news is over (new interfaces' IPv6 start-up: DAD, router solicitations)."""
    for _ in range(windows):
        before = cpu_ticks(pid)
        threading.Event().wait(1.0)
        if cpu_ticks(pid) - before <= ticks:
            return True
    return False


@contextmanager
def cluster_up(run_dir: Path) -> Iterator[Cluster]:
    """A two-node cluster (a pod each) under a unique prefix, brought down and swept even when
    a test fails."""
    from tests.conftest import remove_prefixed_netns

    prefix = f"ct{uuid.uuid4().hex[:6]}-"
    c = Cluster(build_plan(2, 1, prefix), ledger=cluster_ledger(prefix, str(run_dir)))
    try:
        with c.locked():
            c.up()
        yield c
    finally:
        with c.locked():
            c.down()
        remove_prefixed_netns(prefix)
