"""`cnilab cluster watch --json-lines` as a user runs it, while `ip` and `cluster up`/`down`
change the kernel under the test's own prefix."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import WAIT, Watching, goes_idle, ip, prefixed_netns

SMALL = ("--nodes", "2", "--pods-per-node", "1")


class ClusterRunner:
    """`cnilab cluster --prefix P ...` with a private CNILAB_RUN_DIR."""

    def __init__(self, prefix: str, run_dir: Path) -> None:
        self.prefix, self.run_dir = prefix, run_dir

    def argv(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "cnilab", "cluster", "--prefix", self.prefix, *args]

    def env(self) -> dict[str, str]:
        return {**os.environ, "CNILAB_RUN_DIR": str(self.run_dir), "LANG": "C.UTF-8"}

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(self.argv(*args), capture_output=True, text=True, env=self.env(),
                              timeout=180, check=False)

    def watch(self) -> Watching:
        """`cluster watch --json-lines`, started."""
        return Watching(subprocess.Popen(self.argv("watch", "--json-lines"), env=self.env(),
                                         stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                         text=True))


@pytest.fixture
def cluster(prefix: str, run_dir: Path) -> Iterator[ClusterRunner]:
    runner = ClusterRunner(prefix, run_dir)
    yield runner
    runner.run("down")


def stop(w: Watching) -> int:
    """Ctrl-C (SIGINT to the PID we started); the exit code, once its output is read."""
    w.proc.send_signal(signal.SIGINT)
    try:
        code = w.proc.wait(timeout=WAIT)
    finally:
        if w.proc.poll() is None:
            w.proc.kill()
            w.proc.wait()
    while w.lines.get(timeout=WAIT) is not None:  # whatever was still on its way
        pass
    return code


def test_changes_in_nodes_and_pods_each_arrive_as_one_event(cluster: ClusterRunner) -> None:
    up = cluster.run("up", *SMALL)
    assert up.returncode == 0, up.stderr
    p = cluster.prefix
    node, node01, pod = f"{p}controlplane", f"{p}node01", f"{p}controlplane-pod1"
    w = cluster.watch()
    try:
        state = w.next_line()
        assert (state["kind"], state["prefix"]) == ("state", p)
        assert set(state["checks"]) == {"controlplane", "node01"}
        assert all(all(c.values()) for c in state["checks"].values()), state["checks"]
        assert {node, node01, pod, f"{p}cnilab-lan"} <= set(state["state"]["spaces"])
        assert goes_idle(w.proc.pid)  # asleep in select(), not polling 9 namespaces

        ip("-n", node01, "link", "set", "docker0", "down")  # (a) a link down in a node
        down = w.until(lambda e: e["kind"] == "link" and e["name"] == "docker0")
        assert (down["netns"], down["change"], down["new"]["up"]) == (node01, "changed", False)

        ip("-n", pod, "addr", "add", "10.99.0.1/24", "dev", "eth0")  # (b) an address in a pod
        added = w.until(lambda e: e["kind"] == "address")
        assert (added["netns"], added["name"], added["change"]) == (pod, "10.99.0.1/24", "added")
        assert added["new"] == {"dev": "eth0"}

        ip("-n", node, "route", "add", "10.97.0.0/24", "via", "172.17.0.1")  # (c) a route
        route = w.until(lambda e: e["kind"] == "route" and e["name"] == "10.97.0.0/24")
        assert (route["netns"], route["change"]) == (node, "added")
        assert route["new"] == {"gateway": "172.17.0.1", "dev": "ens3"}

        # What the lesson checks follows the kernel: node01's pods unreachable from controlplane.
        ip("-n", node, "route", "del", "10.244.1.0/24")
        check = w.until(lambda e: e["kind"] == "checks")
        assert (check["netns"], check["name"], check["change"]) == (node, "controlplane",
                                                                   "changed")
        assert (check["old"], check["new"]) == ({"routes": True}, {"routes": False})

        extra = f"{p}extra"  # (d) a namespace made and removed under the prefix
        ip("netns", "add", extra)
        made = w.until(lambda e: e["kind"] == "netns")
        assert (made["netns"], made["name"], made["change"]) == (extra, extra, "added")
        ip("netns", "del", extra)
        gone = w.until(lambda e: e["kind"] == "netns")
        assert (gone["name"], gone["change"]) == (extra, "removed")

        assert stop(w) == 0
        assert w.proc.stderr is not None and w.proc.stderr.read() == ""
    finally:
        if w.proc.poll() is None:
            w.proc.kill()
            w.proc.wait()
    # Each change was one event: no repeats from the kernel's several messages per command.
    assert w.count(node01, "link", "docker0") == 1
    assert w.count(pod, "address", "10.99.0.1/24") == 1
    assert w.count(node, "route", "10.97.0.0/24") == 1
    assert w.count(node, "checks", "controlplane") == 1
    assert w.count(extra, "netns", extra) == 2  # made, removed
    assert cluster.run("down").returncode == 0
    assert prefixed_netns(cluster.prefix) == []


def test_a_cluster_made_and_removed_while_watching_is_followed(cluster: ClusterRunner) -> None:
    w = cluster.watch()
    p = cluster.prefix
    try:
        state = w.next_line()
        assert state["checks"] == {} and state["state"]["spaces"] == {}
        up = cluster.run("up", *SMALL)
        assert up.returncode == 0, up.stderr
        names = set(prefixed_netns(p))
        assert {f"{p}controlplane", f"{p}node01-pod1", f"{p}cnilab-world"} <= names
        # Every namespace appears, and each node's checks pass: seen, not assumed.
        checks: dict[str, dict[str, bool]] = {}
        appeared: set[str] = set()
        while not (names <= appeared and len(checks) == 2
                   and all(all(c.values()) for c in checks.values())):
            e = w.next_line()
            if e["kind"] == "netns" and e["change"] == "added":
                appeared.add(e["name"])
            elif e["kind"] == "checks" and e["change"] == "removed":
                checks.pop(e["name"], None)
            elif e["kind"] == "checks":  # added: every check; changed: those that moved
                checks.setdefault(e["name"], {}).update(e["new"])
        assert set(checks) == {"controlplane", "node01"}

        assert cluster.run("down").returncode == 0
        gone: set[str] = set()
        while gone != names:
            e = w.until(lambda e: e["kind"] == "netns" and e["change"] == "removed")
            gone.add(e["name"])
        assert stop(w) == 0
    finally:
        if w.proc.poll() is None:
            w.proc.kill()
            w.proc.wait()
    assert prefixed_netns(p) == []


def test_the_state_names_every_veth_peer_as_a_snapshot_does(cluster: ClusterRunner) -> None:
    """Interface indexes repeat from node to node: a peer is told apart by its namespace's id."""
    from cnilab.kernel import Kernel

    assert cluster.run("up", "--nodes", "3", "--pods-per-node", "2").returncode == 0
    w = cluster.watch()
    try:
        spaces = w.next_line()["state"]["spaces"]
    finally:
        stop(w)
    names = [n for n in spaces if n.startswith(cluster.prefix)]
    snap = Kernel().observe(tuple(names))
    for name in names:
        assert {ln["name"]: ln["peer"] for ln in spaces[name]["links"]} == {
            ln.name: ln.peer for ln in snap.spaces[name].links}, name
