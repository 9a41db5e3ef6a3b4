"""`cnilab cluster` as a user runs it: up twice, down, a SIGKILL during up, collisions, the quiz
following a change to the kernel. Each test under its own prefix and ledger dir."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from cnilab.cluster import components
from cnilab.cluster.cluster import cluster_ledger

SMALL = ("--nodes", "2", "--pods-per-node", "1")


class Runner:
    """`python -m cnilab cluster --prefix P ...` with a private CNILAB_RUN_DIR."""

    def __init__(self, prefix: str, run_dir: Path) -> None:
        self.prefix, self.run_dir = prefix, run_dir

    def argv(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "cnilab", "cluster", "--prefix", self.prefix, *args]

    def env(self) -> dict[str, str]:
        return {**os.environ, "CNILAB_RUN_DIR": str(self.run_dir), "LANG": "C.UTF-8",
                "COLUMNS": "200"}

    def run(self, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
        return subprocess.run(self.argv(*args), capture_output=True, text=True, input=stdin,
                              env=self.env(), timeout=120, check=False)

    def json(self, *args: str) -> dict:
        done = self.run(*args, "--json")
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)


@pytest.fixture
def cluster(prefix: str, run_dir: Path) -> Iterator[Runner]:
    runner = Runner(prefix, run_dir)
    yield runner
    runner.run("down")


def ours(prefix: str) -> list[str]:
    """Namespaces under this test's prefix."""
    try:
        return sorted(n for n in os.listdir("/run/netns") if n.startswith(prefix))
    except FileNotFoundError:
        return []


def processes(prefix: str) -> list[int]:
    """Component processes of this test's cluster."""
    return [pid for token, pids in components.running().items()
            if token.startswith(f"{components.TOKEN}{prefix}cluster/") for pid in pids]


def machine_state() -> tuple[str, str]:
    """This machine's own links and NAT rules, which the cluster must never change."""
    links = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True,
                           check=True).stdout
    nat = subprocess.run(["iptables", "-t", "nat", "-S"], capture_output=True, text=True,
                         check=True).stdout
    names = sorted(ln.split(":")[1].strip() for ln in links.splitlines())
    return " ".join(names), nat


def assert_nothing_left(runner: Runner, before: tuple[str, str]) -> None:
    assert ours(runner.prefix) == []
    if os.path.isdir("/etc/netns"):  # the nodes' hosts files and their folders
        assert [n for n in os.listdir("/etc/netns") if n.startswith(runner.prefix)] == []
    assert processes(runner.prefix) == []
    # The lock file stays (never removed while another process may hold or wait on it).
    left = list(runner.run_dir.iterdir()) if runner.run_dir.exists() else []
    assert [p.name for p in left if p.suffix != ".lock"] == []
    assert machine_state() == before


def test_up_twice_changes_nothing_and_down_leaves_nothing(cluster: Runner) -> None:
    before = machine_state()
    first = cluster.json("up", *SMALL)
    assert first["changed"] is True
    pids = sorted(processes(cluster.prefix))
    second = cluster.json("up", *SMALL)
    assert second["changed"] is False
    assert sorted(processes(cluster.prefix)) == pids
    pods = sum(len(n["pods"]) for n in first["nodes"])
    names = ", ".join(n["name"] for n in first["nodes"])
    text = cluster.run("up", *SMALL)  # the summary counts what the status reads
    assert text.returncode == 0 and f"Nodes: {names}; {pods} pods." in " ".join(text.stdout.split())
    first.pop("changed"), second.pop("changed")
    assert second == first
    down = cluster.run("down")
    assert down.returncode == 0 and "Cluster down" in down.stdout
    assert_nothing_left(cluster, before)
    again = cluster.run("down")
    assert again.returncode == 0 and "Nothing to remove" in again.stdout


def test_up_with_other_options_while_up_is_refused(cluster: Runner) -> None:
    assert cluster.run("up", *SMALL).returncode == 0
    done = cluster.run("up", "--nodes", "3")
    assert done.returncode == 2
    assert "already up" in done.stderr and len(done.stderr.strip().splitlines()) == 1


def ledger_lines(runner: Runner) -> list[dict]:
    path = cluster_ledger(runner.prefix, str(runner.run_dir)).path
    return [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines()]


def up_killed_at(runner: Runner, where: str) -> subprocess.CompletedProcess[str]:
    """`up`, with the test hook that makes cnilab SIGKILL itself at a ledger write."""
    return subprocess.run(runner.argv("up", "--nodes", "2", "--pods-per-node", "3"),
                          env={**runner.env(), "CNILAB_TEST_KILL_AT": where},
                          capture_output=True, text=True, timeout=120, check=False)


@pytest.mark.parametrize("op", ["StartComponent", "IpamStore", "AttachPod", "NetnsEtcFile",
                                "KubectlScript"])
def test_sigkill_during_up_then_down_leaves_nothing(cluster: Runner, op: str) -> None:
    before = machine_state()
    done = up_killed_at(cluster, f"op:{op}")
    assert done.returncode == -signal.SIGKILL  # killed right after the first intent of `op`
    last = ledger_lines(cluster)[-1]
    assert last["op"] == op and {"done": last["seq"]} not in ledger_lines(cluster)
    assert ours(cluster.prefix)  # it was killed half-way: something exists
    done = cluster.run("down")
    assert done.returncode == 0, done.stderr
    assert_nothing_left(cluster, before)


def test_sigkill_after_a_component_started_before_its_completion_then_down_stops_it(
        cluster: Runner) -> None:
    before = machine_state()
    assert up_killed_at(cluster, "op:StartComponent").returncode == -signal.SIGKILL
    completion = len(ledger_lines(cluster)) + 1  # the write that would record it started
    assert cluster.run("down").returncode == 0
    done = up_killed_at(cluster, f"ledger-before:{completion}")
    assert done.returncode == -signal.SIGKILL
    assert processes(cluster.prefix)  # the process runs; its completion was never written
    assert cluster.run("down").returncode == 0
    assert_nothing_left(cluster, before)


@pytest.mark.parametrize("nodes", ["0", "201", "-1"])
def test_bad_nodes_is_one_clear_line_and_touches_nothing(cluster: Runner, nodes: str) -> None:
    done = cluster.run("up", "--nodes", nodes)
    assert done.returncode == 2
    assert f"--nodes must be between 1 and 200, not {nodes}" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    assert ours(cluster.prefix) == [] and not cluster.run_dir.exists()


def test_a_namespace_not_made_by_cnilab_stops_up_and_survives_down(cluster: Runner) -> None:
    foreign = cluster.prefix + "node01"
    subprocess.run(["ip", "netns", "add", foreign], check=True)
    done = cluster.run("up", *SMALL)
    assert done.returncode == 4
    assert f"namespace {foreign} already exists and was not made by cnilab" in done.stderr
    assert ours(cluster.prefix) == [foreign]  # nothing else was touched
    cluster.run("down")
    assert ours(cluster.prefix) == [foreign]


def test_quiz_follows_a_change_to_the_kernel(cluster: Runner) -> None:
    assert cluster.run("up", "--nodes", "2", "--pods-per-node", "0").returncode == 0
    assert cluster.run("quiz", "--answer", "node01_ip=172.17.0.40").returncode == 0
    wrong = cluster.run("quiz", "--answer", "node01_ip=172.17.0.41")
    assert wrong.returncode == 1 and "172.17.0.40" in wrong.stdout
    node01 = cluster.prefix + "node01"
    subprocess.run(["ip", "-n", node01, "addr", "del", "172.17.0.40/16", "dev", "ens3"],
                   check=True)
    subprocess.run(["ip", "-n", node01, "addr", "add", "172.17.0.41/16", "dev", "ens3"],
                   check=True)
    assert cluster.run("quiz", "--answer", "node01_ip=172.17.0.41").returncode == 0
    assert cluster.run("quiz", "--answer", "node01_ip=172.17.0.40").returncode == 1
    answers = {a["id"]: a["answer"] for a in json.loads(
        cluster.run("quiz", "--answers", "--json").stdout)}
    assert answers["node01_ip"] == "172.17.0.41"


def test_quiz_reads_answers_from_stdin_in_order(cluster: Runner) -> None:
    assert cluster.run("up", "--nodes", "2", "--pods-per-node", "0").returncode == 0
    done = cluster.run("quiz", "--json", stdin="2\n172.17.0.24\nens3\nwrong\n")
    graded = json.loads(done.stdout)
    assert [r["correct"] for r in graded["results"][:4]] == [True, True, True, False]
    assert graded["results"][4]["answer"] is None and graded["right"] == 3
    assert done.returncode == 1
    ko = cluster.run("quiz", "--lang", "ko", stdin="2\n")
    assert "이 클러스터에는 노드가 몇 개" in ko.stdout and "정답입니다" in ko.stdout


def test_exec_runs_inside_the_node_with_its_hostname(cluster: Runner) -> None:
    assert cluster.run("up", "--nodes", "2", "--pods-per-node", "0").returncode == 0
    done = cluster.run("exec", "node01", "--", "sh", "-c", "hostname; ip -br addr show ens3")
    assert done.returncode == 0, done.stderr
    host, addr = done.stdout.splitlines()
    assert host == "node01" and "172.17.0.40/16" in addr
    bad = cluster.run("exec", "node09", "--", "true")
    assert bad.returncode == 1 and "no node or pod 'node09'" in bad.stderr


def test_up_prints_a_short_summary_not_the_quiz_answers(cluster: Runner) -> None:
    done = cluster.run("up", "--nodes", "2", "--pods-per-node", "0")
    assert done.returncode == 0, done.stderr
    assert len(done.stdout.strip().splitlines()) <= 6
    for answer in ("02:42:", "172.17.0.24", "10259", "10.244.1.0/24"):
        assert answer not in done.stdout
    assert "status" in done.stdout and "quiz" in done.stdout
    full = cluster.run("status")
    assert "02:42:ac:11:00:18" in full.stdout and "10259" in full.stdout
