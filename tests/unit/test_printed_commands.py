"""Commands people copy are safe to copy: under --prefix, every command cnilab prints names the
lab's own namespaces, calls cnilab with that --prefix, and runs on the isolated lab's node rather
than on this machine. Read from what the commands print (no root: texts and dry runs)."""

from __future__ import annotations

import re

import pytest
from typer.testing import CliRunner

from cnilab.cli.main import app
from cnilab.cli.registry import LESSONS
from cnilab.lab.topology import default_topology
from cnilab.render.commands import LabCommands
from cnilab.scenario import catalog
from cnilab.scenario.text import text

P = "zz-"
runner = CliRunner()
NETNS_ARG = re.compile(r"\bip (?:-n|-netns) (\S+)|\bip netns (?:exec|add|del|delete) (\S+)"
                       r"|\blink set \S+ netns (\S+)|--net=/run/netns/(\S+)")
NODE_FIRST = re.compile(r"^(?:sudo )?(?:iptables|sysctl|bridge|nft|conntrack|tcpdump|ping|curl)"
                        r"(?: |$)|^(?:sudo )?ip (?!-n |-netns |netns )")
PLACEHOLDER = re.compile(r"^(?:[A-Z]+|\.\.\.|\{.*\})$")


def commands_in(printed: str) -> list[str]:
    """Every command a student may copy: `quoted` ones and lines that start with a program."""
    found = re.findall(r"`([^`\n]+)`", printed)
    programs = r"(?:sudo |ip |iptables |sysctl |nft |cnilab |\S*/cnilab |curl )"
    found += [ln.strip() for ln in printed.splitlines() if re.match(programs, ln.strip())]
    return found


def unsafe(command: str, node: str | None) -> list[str]:
    """What in `command` would act on another lab or on this machine."""
    problems = [ns for m in NETNS_ARG.finditer(command) for ns in m.groups()
                if ns and not ns.startswith(P) and not PLACEHOLDER.match(ns)]
    words = command.split()
    program = words[1] if words[:1] == ["sudo"] and len(words) > 1 else words[0]
    if program.endswith("cnilab") and f"--prefix {P}" not in command:
        problems.append("cnilab without --prefix")
    if "/run/cnilab/cni/cni/" in command:  # the unprefixed CNI lesson's folder
        problems.append("another lab's folder")
    if node and NODE_FIRST.match(command) and not command.startswith("ip netns exec"):
        problems.append("typed on this machine, not on the node")
    return problems


def run(*args: str) -> str:
    done = runner.invoke(app, ["--prefix", P, *args], env={"COLUMNS": "200"})
    assert done.exit_code == 0, done.output
    return done.output


@pytest.mark.parametrize("lang", ["en", "ko"])
@pytest.mark.parametrize("lesson", [lesson.name for lesson in LESSONS])
def test_every_lesson_text_names_this_labs_namespaces(lesson: str, lang: str) -> None:
    node = P + "cnilab-host" if lesson == "eight-steps" else None
    numbers = [s.number for s in LESSONS[[x.name for x in LESSONS].index(lesson)]
               .text(lang).steps]
    for printed in [run("explain", lesson, "--lang", lang),
                    *(run("explain", lesson, str(n), "--lang", lang) for n in numbers)]:
        for command in commands_in(printed):
            assert unsafe(command, node) == [], command


def test_the_dry_runs_name_this_labs_namespaces() -> None:
    for printed in (run("run-all", "--dry-run"), run("cluster", "up", "--dry-run")):
        for command in commands_in(printed):
            assert [p for p in unsafe(command, None) if "machine" not in p] == [], command


@pytest.mark.parametrize("lang", ["en", "ko"])
def test_scenario_hints_and_solutions_name_this_labs_namespaces(lang: str) -> None:
    topo = default_topology(prefix=P)
    for scenario in catalog.SCENARIOS:
        if scenario.lesson != catalog.LAB:
            continue
        values = {**catalog.params(topo), "cnilab": f"cnilab --prefix {P}"}
        said = text(scenario.name, lang, values)
        for line in (said.story, said.symptom, *said.hints, said.solution):
            for command in commands_in(line):
                assert [p for p in unsafe(command, None)
                        if "machine" not in p] == [], (scenario.name, command)
        for fix in catalog.commands(scenario.fix, values):
            assert unsafe(fix, None) == [], (scenario.name, fix)


def test_a_command_is_written_for_the_lab_it_reaches() -> None:
    lab = LabCommands(f"cnilab --prefix {P}", P, {"red": P + "red"}, P + "cnilab-host")
    assert lab.command("iptables -t nat -S POSTROUTING") == (
        f"ip netns exec {P}cnilab-host iptables -t nat -S POSTROUTING")
    assert lab.command("ip -n red route") == f"ip -n {P}red route"
    assert lab.command("ip netns exec pod-web ip a") == f"ip netns exec {P}pod-web ip a"
    assert lab.command("sudo cnilab trace red 203.0.113.1") == (
        f"sudo cnilab --prefix {P} trace red 203.0.113.1")
    assert lab.command("ip netns list") == "ip netns list"
    assert lab.command("nsenter --net=/proc/PID/ns/net ip -br addr") == (
        "nsenter --net=/proc/PID/ns/net ip -br addr")
    in_place = LabCommands("cnilab", "", {}, None)
    assert in_place.command("iptables -t nat -S") == "iptables -t nat -S"
    assert in_place.text("`ping: connect: Network is unreachable`") == (
        "`ping: connect: Network is unreachable`")
