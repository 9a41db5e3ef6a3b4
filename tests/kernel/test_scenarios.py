"""Every troubleshooting scenario against the real kernel, as a student runs it.

For each: `check` fails after `start` and after an unrelated change, passes after the documented
fix (the very commands `scenario solution` prints) and after each alternative fix, fails when a
workaround only hides the symptom or a "fix" breaks something else; `stop` leaves nothing.
"""

from __future__ import annotations

import difflib
import json
import os
import re
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import Cnilab, prefixed_netns, root_namespace_state

from cnilab.cluster import components
from cnilab.cluster.plan import build_plan
from cnilab.scenario.catalog import CLUSTER, SCENARIOS, Scenario, commands, find, params
from cnilab.scenario.grade import Verdict
from cnilab.scenario.run import CLUSTER_NODES, CLUSTER_PODS, Scenarios

NODE = "ip netns exec {node} "
# Something a student might try that changes the kernel but not the fault.
UNRELATED = {
    "no-forwarding": NODE + "iptables -P FORWARD ACCEPT",
    "port-down": "ip -n {blue_ns} link set {blue_veth} up",
    "not-on-bridge": "ip -n {node} link set {red_port} up",
    "no-default-route": NODE + "sysctl -w net.ipv4.ip_forward=1",
    "wrong-mask": "ip -n {red_ns} route replace default via {gw}",
    "no-masquerade": NODE + "sysctl -w net.ipv4.ip_forward=1",
    "bare-masquerade": NODE + "iptables -P FORWARD ACCEPT",
    "forward-drop": NODE + "iptables -t nat -A POSTROUTING -s {subnet} ! -o {bridge} -j MASQUERADE",
    "duplicate-ip": "ip -n {node} neigh flush dev {bridge}",
    "missing-pod-route": "ip -n {n1} route replace {cp_cidr} via {cp_ip}",
}
# Workarounds: the symptom goes away, the fault stays. check must still fail, on the cause.
WORKAROUNDS = {
    "wrong-mask": ("ip -n {blue_ns} route add {subnet} dev {blue_veth}",
                   "ip -n {blue_ns} route add default via {gw}"),
    "no-default-route": ("ip -n {red_ns} route add 203.0.113.0/24 via {gw}",),
    "bare-masquerade": (NODE + "sysctl -w net.bridge.bridge-nf-call-iptables=0",),
}
CAUSE = {
    "wrong-mask": "every container's address is on 192.168.15.0/24",
    "no-default-route": "every container sends traffic for other networks via 192.168.15.5",
    "bare-masquerade": "bridge netfilter stays on (net.bridge.bridge-nf-call-iptables = 1), "
                       "as Kubernetes needs",
}
# A fix that breaks something else: check must fail.
BREAKS = {
    "no-forwarding": (NODE + "sysctl -w net.ipv4.ip_forward=1",
                      "ip -n {blue_ns} route del default"),
    "forward-drop": (NODE + "iptables -P FORWARD ACCEPT", NODE + "iptables -t nat -F POSTROUTING"),
    "duplicate-ip": ("ip -n {red_ns} addr del {red_cidr} dev {red_veth}",),
    "missing-pod-route": ("ip -n {cp} route add {n1_cidr} via {n1_ip}",
                          "ip -n {n1} route del default"),
}


@pytest.fixture
def student(prefix: str, run_dir: Path) -> Iterator[Cnilab]:
    """A cnilab runner; whatever the test leaves, the scenario (lab or cluster) is removed."""
    runner = Cnilab(prefix, run_dir)
    yield runner
    with Scenarios(runner.topo) as scenarios:  # in process: the machine is shared, spare it
        scenarios.stop()
    if processes(prefix):  # stop itself failed: make sure no component process outlives us
        runner.run("cluster", "down")


def start(cnilab: Cnilab, name: str) -> None:
    """`scenario start NAME`, in process (the CLI's own path is tested for every scenario)."""
    with Scenarios(cnilab.topo) as scenarios:
        scenarios.start(name)


def verdict(cnilab: Cnilab) -> Verdict:
    """What `scenario check` finds, asked in process (the CLI's own path is tested too)."""
    with Scenarios(cnilab.topo) as scenarios:
        return scenarios.check(scenarios.require_running())


def values(cnilab: Cnilab, scenario: Scenario) -> dict[str, str]:
    """The names the scenario's texts and fix use, under this test's prefix."""
    plan = (build_plan(CLUSTER_NODES, CLUSTER_PODS, cnilab.prefix)
            if scenario.lesson == CLUSTER else cnilab.topo)
    return params(plan)


def type_in(lines: tuple[str, ...] | list[str], names: dict[str, str]) -> None:
    """Run commands as a student types them (bash), stopping at the first failure."""
    script = "set -e\n" + "\n".join(line.format(**names) for line in lines)
    done = subprocess.run(["bash", "-c", script], capture_output=True, text=True, check=False)
    assert done.returncode == 0, (script, done.stderr)


def check(cnilab: Cnilab) -> tuple[int, dict, str]:
    """`scenario check --json`: exit status, report, stderr."""
    done = cnilab.run("scenario", "check", "--json")
    return done.returncode, json.loads(done.stdout), done.stderr


def processes(prefix: str) -> list[int]:
    """Cluster component processes started under this prefix."""
    return [pid for token, pids in components.running().items()
            if token.startswith(f"{components.TOKEN}{prefix}cluster/") for pid in pids]


def assert_nothing_left(cnilab: Cnilab, before: dict[str, str]) -> None:
    assert prefixed_netns(cnilab.prefix) == []
    assert processes(cnilab.prefix) == []
    left = [p.name for p in cnilab.run_dir.iterdir()] if cnilab.run_dir.exists() else []
    assert left == []  # no lock file either
    after = root_namespace_state()
    changed = {key: [line for line in difflib.unified_diff(
        before[key].splitlines(), after[key].splitlines(), lineterm="", n=0)][2:]
        for key in before if after[key] != before[key]}
    assert changed == {}, changed  # the machine's own namespace is exactly as before


@pytest.mark.parametrize("name", [s.name for s in SCENARIOS])
def test_check_fails_until_the_documented_fix_and_stop_leaves_nothing(
        student: Cnilab, name: str) -> None:
    scenario = find(name)
    names = values(student, scenario)
    before = root_namespace_state()
    started = student.run("scenario", "start", name)
    assert started.returncode == 0, started.stderr
    assert f"Scenario {name} is ready" in started.stdout
    assert not verdict(student).symptom_gone
    type_in((UNRELATED[name],), names)
    assert not verdict(student).symptom_gone
    type_in(commands(scenario.fix, names), names)
    result = verdict(student)
    assert result.fixed, [(p.claim(), p.observed()) for p in result.packets if not p.ok]
    assert result.causes and all(c.ok for c in result.causes)
    stopped = student.run("scenario", "stop")
    assert stopped.returncode == 0 and "Scenario stopped" in stopped.stdout
    assert_nothing_left(student, before)


ALTERNATIVES = [(s.name, i) for s in SCENARIOS for i in range(len(s.alternatives))]


@pytest.mark.parametrize(("name", "index"), ALTERNATIVES)
def test_an_alternative_fix_passes_too(student: Cnilab, name: str, index: int) -> None:
    scenario = find(name)
    start(student, name)
    names = values(student, scenario)
    type_in(commands(scenario.alternatives[index], names), names)
    result = verdict(student)
    assert result.fixed, [(p.claim(), p.observed()) for p in result.packets if not p.ok]


def test_every_scenario_with_a_second_way_out_is_tested_with_it() -> None:
    assert {n for n, _ in ALTERNATIVES} >= set(UNRELATED) - {"port-down", "not-on-bridge"}


@pytest.mark.parametrize("name", sorted(WORKAROUNDS))
def test_a_workaround_that_only_hides_the_symptom_fails(student: Cnilab, name: str) -> None:
    scenario = find(name)
    start(student, name)
    type_in(WORKAROUNDS[name], values(student, scenario))
    code, report, err = check(student)
    assert code == 1 and report["symptom_gone"] is True and report["ok"] is False
    assert [c["claim"] for c in report["causes"] if not c["ok"]] == [CAUSE[name]]
    assert "its cause is still in the kernel" in err


@pytest.mark.parametrize("name", sorted(BREAKS))
def test_a_fix_that_breaks_something_else_fails(student: Cnilab, name: str) -> None:
    scenario = find(name)
    start(student, name)
    type_in(BREAKS[name], values(student, scenario))
    assert not verdict(student).symptom_gone


def test_random_does_not_say_which_and_runs_like_any_other(student: Cnilab) -> None:
    started = student.run("scenario", "start", "--random")
    assert started.returncode == 0, started.stderr
    for s in SCENARIOS:
        assert s.name not in started.stdout
    assert "A scenario is ready" in started.stdout and "A user reports" in started.stdout
    hinted = student.run("scenario", "hint")
    assert hinted.returncode == 0 and not any(s.name in hinted.stdout for s in SCENARIOS)
    code, report, err = check(student)
    assert code == 1 and report["ok"] is False and report["symptom_gone"] is False
    assert report["causes"] is None  # the causes name the fault: hidden while packets fail
    assert "the symptom is still there" in err and len(err.strip().splitlines()) == 1
    solution = student.run("scenario", "solution")
    name = next(s.name for s in SCENARIOS if solution.stdout.startswith(f"{s.name}:"))
    type_in(commands(find(name).fix, values(student, find(name))), values(student, find(name)))
    code, report, err = check(student)
    assert code == 0 and report["ok"] and all(c["ok"] for c in report["causes"]), err
    assert "Fixed" in student.run("scenario", "check").stdout
    assert student.run("scenario", "stop").returncode == 0
    assert prefixed_netns(student.prefix) == []
    again = student.run("scenario", "stop")
    assert again.returncode == 0 and "No scenario is running" in again.stdout


def test_hints_come_one_more_per_call_in_the_students_language(student: Cnilab) -> None:
    assert student.run("scenario", "start", "port-down").returncode == 0
    first = student.run("scenario", "hint", "--lang", "ko")
    assert first.returncode == 0 and "힌트 1/3" in first.stdout and "힌트 2/3" not in first.stdout
    second = student.run("scenario", "hint")
    assert "Hint 2 of 3" in second.stdout and "Hint 3 of 3" not in second.stdout
    for _ in range(2):  # the last one stays the last
        last = student.run("scenario", "hint")
        assert "Hint 3 of 3" in last.stdout and "last hint" in last.stdout
    assert f"ip -n {student.prefix}cnilab-host link set veth-blue-br up" in last.stdout


def test_the_symptom_never_names_the_fault(student: Cnilab) -> None:
    started = student.run("scenario", "start", "forward-drop", "--json")
    report = json.loads(started.stdout)
    assert "DROP" not in report["symptom"] and "FORWARD" not in report["symptom"]


# A lab scenario writes 75 ledger lines: the mode, the ScenarioRecord (intent, done), the eight
# steps (intent, [proof,] done per op), the fault. The cluster's writes 152 (ScenarioRecord
# first, then the cluster: network, components from line 113, pods, then the fault).
@pytest.mark.parametrize(("name", "where", "cleanup"), [
    ("forward-drop", "ledger:2", ("teardown",)),  # the record's intent: no file yet
    ("forward-drop", "ledger-before:3", ("teardown",)),  # its file written, not recorded done
    ("forward-drop", "ledger-before:40", ("teardown",)),
    ("forward-drop", "ledger:74", ("teardown",)),  # the fault's intent
    ("no-masquerade", "ledger-before:75", ("scenario", "stop")),  # the fault made, not done
    ("missing-pod-route", "ledger-before:2", ("cluster", "down")),
    ("missing-pod-route", "ledger:113", ("scenario", "stop")),  # among the components
    ("missing-pod-route", "ledger-before:152", ("cluster", "down")),
])
def test_sigkill_during_start_then_teardown_leaves_nothing(
        student: Cnilab, name: str, where: str, cleanup: tuple[str, ...]) -> None:
    before = root_namespace_state()
    with Scenarios(student.topo) as scenarios:  # the ledger the engine writes, wherever it is
        ledger = (scenarios.cluster.ledger if find(name).lesson == CLUSTER
                  else scenarios.lab.ledger).path
    hooked = Cnilab(student.prefix, student.run_dir, {"CNILAB_TEST_KILL_AT": where})
    done = hooked.run("scenario", "start", name)
    assert done.returncode == -signal.SIGKILL, done.stderr  # the kill landed mid-start
    hook, number = where.split(":")
    assert len(ledger.read_text().splitlines()) == int(number) - (hook == "ledger-before")
    torn = student.run(*cleanup)
    assert torn.returncode == 0, torn.stderr
    assert_nothing_left(student, before)


def test_a_start_killed_after_its_first_line_is_removed_by_stop_then_a_start_works(
        student: Cnilab) -> None:
    before = root_namespace_state()
    hooked = Cnilab(student.prefix, student.run_dir, {"CNILAB_TEST_KILL_AT": "ledger:1"})
    done = hooked.run("scenario", "start", "port-down")
    assert done.returncode == -signal.SIGKILL, done.stderr
    ledger = student.run_dir / f"{student.topo.lab_id}.jsonl"
    assert ledger.read_text() == '{"in_place": false}\n'  # the lab's mode, nothing made
    stopped = student.run("scenario", "stop")
    assert stopped.returncode == 0, stopped.stderr
    assert_nothing_left(student, before)
    started = student.run("scenario", "start", "port-down")
    assert started.returncode == 0, started.stderr
    assert student.run("scenario", "stop").returncode == 0
    assert_nothing_left(student, before)


def test_a_wrong_name_is_one_line_and_touches_nothing(student: Cnilab) -> None:
    done = student.run("scenario", "start", "no-such-thing")
    assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1
    assert "there is no scenario 'no-such-thing'" in done.stderr and "port-down" in done.stderr
    for args in (("start",), ("start", "port-down", "--random")):
        done = student.run("scenario", *args)
        assert done.returncode == 2 and "--random" in done.stderr
    done = student.run("--in-place", "scenario", "start", "port-down")
    assert done.returncode == 2 and "--in-place" in done.stderr
    assert prefixed_netns(student.prefix) == [] and not student.run_dir.exists()
    for command in ("check", "hint", "solution"):
        done = student.run("scenario", command)
        assert done.returncode == 1 and "no scenario is running here" in done.stderr, command


def test_a_second_start_and_a_start_over_a_lab_are_refused(student: Cnilab) -> None:
    assert student.run("run-all", "--yes", "--no-proof").returncode == 0
    ledger = (student.run_dir / f"{student.topo.lab_id}.jsonl").read_text()
    done = student.run("scenario", "start", "port-down")
    assert done.returncode == 1 and "a lab is already up here" in done.stderr
    assert (student.run_dir / f"{student.topo.lab_id}.jsonl").read_text() == ledger
    assert student.run("teardown").returncode == 0
    assert student.run("scenario", "start", "port-down").returncode == 0
    done = student.run("scenario", "start", "missing-pod-route")
    assert done.returncode == 1 and "already running" in done.stderr
    assert not any(n.endswith("controlplane") for n in prefixed_netns(student.prefix))


def test_a_foreign_namespace_stops_start_before_anything_is_made(student: Cnilab) -> None:
    foreign = student.prefix + "blue"
    subprocess.run(["ip", "netns", "add", foreign], check=True)
    try:
        done = student.run("scenario", "start", "port-down")
        assert done.returncode == 4 and "was not made by cnilab" in done.stderr
        assert prefixed_netns(student.prefix) == [foreign]
        assert student.run("scenario", "check").returncode == 1  # no scenario was recorded
        assert [p.name for p in student.run_dir.iterdir() if not p.name.endswith(".lock")] == []
    finally:
        subprocess.run(["ip", "netns", "del", foreign], check=False)


def test_record_file_is_private_whatever_the_umask(student: Cnilab) -> None:
    old = os.umask(0)
    try:
        assert student.run("scenario", "start", "port-down").returncode == 0
    finally:
        os.umask(old)
    record = student.run_dir / f"{student.topo.lab_id}.scenario.json"
    assert record.stat().st_mode & 0o777 == 0o600
    ledger = student.run_dir / f"{student.topo.lab_id}.jsonl"  # it names the fault too
    assert ledger.stat().st_mode & 0o777 == 0o600 and "LinkDown" in ledger.read_text()
    assert re.fullmatch(r'\{"name": "port-down", "hints": 0\}', record.read_text())


def test_without_privileges_each_command_is_one_sentence_and_changes_nothing(
        student: Cnilab) -> None:
    no_caps = ("setpriv", "--bounding-set=-all", "--inh-caps=-all", "--")
    for command in (("start", "port-down"), ("start", "--random"), ("check",), ("hint",),
                    ("solution",), ("stop",)):
        done = student.run("scenario", *command, wrap=no_caps)
        assert done.returncode == 5, command
        assert done.stderr.count("\n") == 1 and "needs root" in done.stderr, command
    assert prefixed_netns(student.prefix) == [] and not student.run_dir.exists()
    assert student.run("scenario", "list", wrap=no_caps).returncode == 0


def test_a_namespace_the_student_removed_fails_the_check_without_a_traceback(
        student: Cnilab) -> None:
    before = root_namespace_state()
    assert student.run("scenario", "start", "no-masquerade").returncode == 0
    subprocess.run(["ip", "netns", "del", f"{student.prefix}red"], check=True)
    done = student.run("scenario", "check")
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and "does not exist" in done.stdout
    assert student.run("scenario", "stop").returncode == 0
    assert_nothing_left(student, before)


def test_forward_drop_names_everything_that_fails_bridged_traffic_too(student: Cnilab) -> None:
    # With br_netfilter (bridge-nf-call-iptables = 1 in the node) frames the bridge switches
    # cross FORWARD too: red -> blue dies with the policy, and the symptom and the why say so.
    from cnilab.kernel import Kernel
    from cnilab.lab.proofs import ping

    started = student.run("scenario", "start", "forward-drop", "--json")
    report = json.loads(started.stdout)
    topo = student.topo
    red, blue = topo.containers[0], topo.containers[1]
    if Kernel().read_sysctl(topo.node, "net.bridge.bridge-nf-call-iptables") != "1":
        pytest.skip("br_netfilter is not loaded here: bridged frames skip iptables")
    assert ping(topo.netns(red), str(blue.address.ip)) is not None  # red -> blue dies too
    assert "bridge-nf-call-iptables = 1" in report["symptom"]
    assert "cannot even reach each other" in report["symptom"]
    solution = " ".join(student.run("scenario", "solution").stdout.split())
    assert "bridge-nf-call-iptables" in solution and "in and out interface" in solution
    # What the packets met, in the student's language: no English left (`timed out`).
    checked = student.run("scenario", "check", "--lang", "ko").stdout
    assert "초 안에 응답 없음" in checked
    assert "timed out" not in checked and "no reply" not in checked
