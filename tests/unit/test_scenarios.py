"""Scenarios without root: text in both languages, fault ops in the ledger, causes on made-up
kernel states (labelled as such), the record file, and the commands that need no kernel."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cnilab.cli.main import app
from cnilab.cluster.cluster import CLUSTER_OPS
from cnilab.cluster.plan import build_plan
from cnilab.lab.lab import LAB_OPS
from cnilab.lab.topology import default_topology
from cnilab.ops import AddNetns, AddRule, Op, SetSysctl, teardown_plan
from cnilab.ops.faults import (
    DelAddress,
    DelRoute,
    DelRule,
    LinkDown,
    NoMaster,
    ScenarioRecord,
    SetPolicy,
    policy_of,
    read_record,
    write_record,
)
from cnilab.scenario import catalog, text
from cnilab.scenario.catalog import CLUSTER, SCENARIOS, commands, params
from cnilab.scenario.grade import CAUSES, Context, route_to
from cnilab.state import Link, Namespace, Route, Snapshot
from tests.unit.cold_start import run_cold

HANGUL = re.compile(r"[\uac00-\ud7a3]")
PLACEHOLDER = re.compile(r"{(\w+)}")
TOOLS = ("ip ", "iptables", "ping", "tcpdump", "bridge", "sysctl")
THE_ISSUES_TEN = ["no-forwarding", "port-down", "not-on-bridge", "no-default-route", "wrong-mask",
                  "no-masquerade", "bare-masquerade", "forward-drop", "duplicate-ip",
                  "missing-pod-route"]
runner = CliRunner()


def names_for(scenario: catalog.Scenario) -> dict[str, str]:
    plan = build_plan(2, 2, "") if scenario.lesson == CLUSTER else default_topology()
    return params(plan)


def fields(data: dict) -> list[str]:
    return [data["title"], data["story"], data["symptom"], *data["hints"], data["solution"]]


def test_the_issues_ten_scenarios_are_there_in_order() -> None:
    assert catalog.names()[:10] == THE_ISSUES_TEN


@pytest.mark.parametrize("lang", ["en", "ko"])
def test_every_scenario_has_its_whole_text_in_each_language(lang: str) -> None:
    data = text.raw(lang)["scenarios"]
    assert sorted(data) == sorted(catalog.names())
    for s in SCENARIOS:
        entry = data[s.name]
        assert len(entry["hints"]) == 3, s.name  # where to look, which tool, the fix
        for sentence in fields(entry):
            assert sentence.strip(), s.name
            if lang == "ko":
                assert HANGUL.search(sentence), (s.name, sentence)
        filled = text.text(s.name, lang, names_for(s))  # every placeholder has a value
        assert "{" not in filled.symptom + filled.solution + "".join(filled.hints)


def test_english_and_korean_use_the_same_placeholders() -> None:
    en, ko = text.raw("en")["scenarios"], text.raw("ko")["scenarios"]
    for name in catalog.names():
        for a, b in zip(fields(en[name]), fields(ko[name])):
            assert set(PLACEHOLDER.findall(a)) == set(PLACEHOLDER.findall(b)), (name, b)


@pytest.mark.parametrize("lang", ["en", "ko"])
def test_the_last_hint_gives_the_documented_fix_and_the_second_names_a_tool(lang: str) -> None:
    for s in SCENARIOS:
        hints = text.text(s.name, lang, names_for(s)).hints
        assert any(tool in hints[1] for tool in TOOLS), s.name
        if s.lesson != CLUSTER:  # `cnilab trace` follows packets in the eight-step lab
            assert f"cnilab trace red {names_for(s)['outside_ip']}" in hints[1] or \
                "cnilab trace red 192.168.15.2" in hints[1], s.name
        for line in commands(s.fix, names_for(s)):
            assert line in hints[2], (s.name, line)


# The words that would give each fault away; the symptom is what a user sees, not the cause.
GIVEAWAYS = {
    "no-forwarding": ("forward",), "port-down": ("down", "carrier"),
    "not-on-bridge": ("master", "port", "plugged"), "no-default-route": ("route", "gateway"),
    "wrong-mask": ("mask", "/32", "prefix"), "no-masquerade": ("masquerade", "nat"),
    "bare-masquerade": ("masquerade", "! -o", "rule"), "forward-drop": ("drop", "policy"),
    "duplicate-ip": ("duplicate", "same address", "192.168.15.1 too"),
    "missing-pod-route": ("route",),
}


TITLE_GIVEAWAYS = {  # the title is in `scenario list`: it names the symptom too
    "no-forwarding": ("rout",), "port-down": ("port", "down"),
    "not-on-bridge": ("cable", "plugged", "bridge"), "wrong-mask": ("subnet", "mask"),
    "duplicate-ip": ("address", "two containers"), "missing-pod-route": ("route", "short"),
    "no-default-route": ("way out",),
}
KO_TITLE_GIVEAWAYS = {"no-forwarding": ("라우팅",), "port-down": ("포트", "내려"),
                      "not-on-bridge": ("케이블", "꽂"), "wrong-mask": ("서브넷",),
                      "duplicate-ip": ("주소",), "missing-pod-route": ("라우트",),
                      "no-default-route": ("나갈 길",)}


def test_a_scenario_title_names_the_symptom_not_the_fault() -> None:
    for s in SCENARIOS:
        for lang, table in (("en", TITLE_GIVEAWAYS), ("ko", KO_TITLE_GIVEAWAYS)):
            title = text.title(s.name, lang).lower()
            for word in table.get(s.name, ()):
                assert word not in title, (s.name, lang, word)


def test_the_symptom_never_names_the_fault() -> None:
    for s in SCENARIOS:
        symptom = text.text(s.name, "en", names_for(s)).symptom.lower()
        for word in GIVEAWAYS[s.name]:
            assert word not in symptom, (s.name, word)


def test_scenarios_are_listed_without_root_as_json_and_in_lessons() -> None:
    done = runner.invoke(app, ["scenario", "list", "--json"])
    assert done.exit_code == 0
    rows = json.loads(done.output)
    assert [r["name"] for r in rows][:10] == THE_ISSUES_TEN
    assert all(r["title"] and r["lesson"] in ("eight-steps", "cluster") and
               r["difficulty"] in (1, 2, 3) for r in rows)
    for lang in ("en", "ko"):
        listed = runner.invoke(app, ["lessons", "--lang", lang]).output
        for s in SCENARIOS:
            assert s.name in listed and text.title(s.name, lang) in listed


@pytest.mark.parametrize("command", ["list", "start", "check", "hint", "solution", "stop"])
def test_every_scenario_command_has_help_with_an_example(command: str) -> None:
    done = runner.invoke(app, ["scenario", command, "--help"])
    assert done.exit_code == 0 and "Example" in done.output


def test_help_lists_scenario_and_loads_no_kernel_module() -> None:
    printed, loaded = run_cold(["--help"], ["scenario", "--help"], ["scenario", "list"])
    assert "scenario" in printed
    assert loaded == []  # neither pyroute2 nor cnilab.kernel


# -- fault ops -----------------------------------------------------------------------------------

FAULTS: list[Op] = [
    LinkDown("host", "veth-blue-br"), NoMaster("host", "veth-red-br", "v-net-0"),
    DelRoute("red", "default", "192.168.15.5"), DelAddress("blue", "veth-blue", "192.168.15.2/24"),
    DelRule("host", "nat", "POSTROUTING", ("-s", "192.168.15.0/24", "-j", "MASQUERADE")),
    SetPolicy("host", "filter", "FORWARD", "DROP", "ACCEPT"),
    ScenarioRecord(None, "/run/cnilab/default.scenario.json", "port-down"),
]


def test_fault_ops_are_known_to_the_lab_and_cluster_ledgers_and_round_trip() -> None:
    # `cnilab teardown` after a crash reads them back from the lab's (or cluster's) ledger.
    for op in FAULTS:
        for registry in (LAB_OPS, CLUSTER_OPS):
            assert registry[type(op).__name__] is type(op)
            assert Op.from_dict(json.loads(json.dumps(op.to_dict())), registry) == op
        assert op.undoable()


def test_fault_ops_print_the_commands_a_person_types() -> None:
    typed = [op.command("host") for op in FAULTS[:6]]
    assert typed == [
        "ip link set veth-blue-br down",
        "ip link set veth-red-br nomaster",
        "ip -n red route del default via 192.168.15.5",
        "ip -n blue addr del 192.168.15.2/24 dev veth-blue",
        "iptables -t nat -D POSTROUTING -s 192.168.15.0/24 -m comment --comment cnilab "
        "-j MASQUERADE",
        "iptables -t filter -P FORWARD DROP",
    ]
    assert [op.undo_command("host") for op in FAULTS[:2]] == [
        "ip link set veth-blue-br up", "ip link set veth-red-br master v-net-0"]


def test_teardown_undoes_the_record_and_leaves_faults_to_their_namespaces() -> None:
    made = [AddNetns(None, n) for n in ("host", "red", "blue")]
    assert teardown_plan([FAULTS[-1], *made, *FAULTS[:-1]]) == [*reversed(made), FAULTS[-1]]


def test_every_fault_is_built_from_the_topology_and_undoable_through_the_ledger() -> None:
    topo = default_topology("p-")
    for s in SCENARIOS:
        plan = build_plan(2, 2, "p-") if s.lesson == CLUSTER else topo
        ops = s.faults(plan)
        assert ops, s.name
        for op in ops:
            assert op.netns is not None and op.netns.startswith("p-"), (s.name, op)
            registry = CLUSTER_OPS if s.lesson == CLUSTER else LAB_OPS
            assert Op.from_dict(json.loads(json.dumps(op.to_dict())), registry) == op
    bare = catalog.find("bare-masquerade").faults(topo)
    assert SetSysctl("p-cnilab-host", catalog.BRIDGE_NF, "1") in bare
    assert AddRule("p-cnilab-host", "nat", "POSTROUTING",
                   ("-s", "192.168.15.0/24", "-j", "MASQUERADE"), "cnilab:eight-steps@p-") in bare


def test_policy_is_read_from_iptables_s() -> None:
    assert policy_of("-P FORWARD DROP\n-A FORWARD -i v-net-0 -j ACCEPT\n", "FORWARD") == "DROP"
    assert policy_of("", "FORWARD") is None


# -- causes, on made-up kernel states (not recorded from a kernel) -------------------------------


def state(**routes: tuple[Route, ...]) -> Snapshot:
    """A made-up snapshot: each container's veth with its address, and the given routes."""
    topo = default_topology()
    spaces: dict[str | None, Namespace] = {}
    for c in topo.containers:
        ns = topo.netns(c)
        spaces[ns] = Namespace(ns, (Link(c.veth, "veth", 2, True, addresses=(str(c.address),)),),
                               routes.get(ns, ()))
    node = topo.node
    spaces[node] = Namespace(node, (Link(topo.bridge, "bridge", 3, True,
                                         addresses=(str(topo.bridge_address),)),))
    return Snapshot(frozenset(n for n in spaces if n), spaces)


def cause(key: str, snap: Snapshot, plan: object = None) -> bool:
    plan = plan or default_topology()
    ctx = Context(snap, None, plan, params(plan))  # type: ignore[arg-type]
    return CAUSES[key](ctx).ok


LINK = Route("192.168.15.0/24", None, "veth")
DEFAULT = Route("default", "192.168.15.5", "veth")


def test_any_route_that_sends_other_networks_via_the_bridge_is_a_default_route() -> None:
    assert cause("default_routes", state(red=(LINK, DEFAULT), blue=(LINK, DEFAULT)))
    halves = (LINK, Route("0.0.0.0/1", "192.168.15.5"), Route("128.0.0.0/1", "192.168.15.5"))
    assert cause("default_routes", state(red=halves, blue=(LINK, DEFAULT)))
    only_outside = (LINK, Route("203.0.113.0/24", "192.168.15.5"))
    assert not cause("default_routes", state(red=only_outside, blue=(LINK, DEFAULT)))
    assert not cause("default_routes", state(red=(LINK,), blue=(LINK, DEFAULT)))


def test_route_lookup_takes_the_longest_prefix() -> None:
    routes = (DEFAULT, Route("203.0.113.0/24", "192.168.15.9"), LINK)
    assert route_to(routes, "203.0.113.1").gateway == "192.168.15.9"  # type: ignore[union-attr]
    assert route_to(routes, "192.168.15.2") == LINK
    assert route_to(routes, "8.8.8.8") == DEFAULT
    assert route_to((LINK,), "8.8.8.8") is None


def test_an_address_held_twice_fails_and_masks_must_be_the_subnets() -> None:
    snap = state()
    assert cause("unique_addresses", snap) and cause("masks", snap)
    blue = snap.spaces["blue"]
    twice = Link("veth-blue", "veth", 2, True, addresses=("192.168.15.2/24", "192.168.15.1/24"))
    doubled = Snapshot(snap.netns, {**snap.spaces, "blue": Namespace("blue", (twice,))})
    assert not cause("unique_addresses", doubled)
    narrow = Link("veth-blue", "veth", 2, True, addresses=("192.168.15.2/32",))
    assert not cause("masks", Snapshot(snap.netns, {**snap.spaces,
                                                    "blue": Namespace("blue", (narrow,))}))
    assert blue.link("veth-blue") is not None


def test_pod_routes_pass_straight_to_the_node_or_through_a_router_that_knows() -> None:
    plan = build_plan(2, 0, "")
    cp, n1, lan = (plan.netns(plan.nodes[0]), plan.netns(plan.nodes[1]), plan.lan_netns)
    gw = Route("default", "172.17.0.1")
    back = Route("10.244.0.0/24", "172.17.0.24")

    def snap(cp_routes: tuple[Route, ...], lan_routes: tuple[Route, ...] = ()) -> Snapshot:
        spaces = {cp: Namespace(cp, (), cp_routes), n1: Namespace(n1, (), (gw, back)),
                  lan: Namespace(lan, (), lan_routes)}
        return Snapshot(frozenset(spaces), spaces)  # type: ignore[arg-type]

    assert cause("pod_routes", snap((gw, Route("10.244.1.0/24", "172.17.0.40"))), plan)
    assert not cause("pod_routes", snap((gw,)), plan)
    assert cause("pod_routes", snap((gw,), (Route("10.244.1.0/24", "172.17.0.40"),)), plan)
    assert not cause("pod_routes", snap((gw, Route("10.244.1.0/24", "172.17.0.41"))), plan)


# -- the record file -------------------------------------------------------------------------------


def test_record_is_private_atomic_and_never_follows_a_planted_link(tmp_path: Path) -> None:
    path = tmp_path / "default.scenario.json"
    target = tmp_path / "victim"
    target.write_text("keep me")
    path.symlink_to(target)
    assert read_record(path) is None  # a symlink is nobody's record
    old = os.umask(0)
    try:
        write_record(path, {"name": "port-down", "hints": 1})
    finally:
        os.umask(old)
    assert target.read_text() == "keep me" and not path.is_symlink()
    assert path.stat().st_mode & 0o777 == 0o600
    assert read_record(path) == {"name": "port-down", "hints": 1}
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
    ScenarioRecord(None, str(path), "port-down").undo(None)  # type: ignore[arg-type]
    assert not path.exists()
    ScenarioRecord(None, str(target), "port-down").undo(None)  # type: ignore[arg-type]
    assert target.exists()  # not a record's name: a ledger entry never removes it


def test_without_bridge_netfilter_bare_masquerade_is_refused_and_random_skips_it(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from cnilab.errors import MissingTool
    from cnilab.scenario import run

    monkeypatch.setenv("CNILAB_RUN_DIR", str(tmp_path))
    monkeypatch.setattr(run, "require_privileges", lambda: None)
    scenarios = run.Scenarios(default_topology("unit-"))
    monkeypatch.setattr(scenarios.lab.kernel, "has_sysctl", lambda netns, key: False)
    names = [s.name for s in scenarios.available()]
    assert "bare-masquerade" not in names and len(names) == len(SCENARIOS) - 1
    with pytest.raises(MissingTool) as refused:
        scenarios.start("bare-masquerade")
    assert "br_netfilter" in refused.value.message and "modprobe" in (refused.value.hint or "")
    assert list(tmp_path.iterdir()) == []  # refused before anything was written
