"""Ops render as the exact commands a person types, and round-trip through the ledger."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from cnilab.lab.lab import LAB_OPS
from cnilab.lab.steps import build_steps, setup_ops
from cnilab.lab.topology import default_topology
from cnilab.ops import (
    AddNetns,
    AddRule,
    AddVeth,
    Op,
    SetSysctl,
    apply_rules,
    rule_tokens,
    undo_rules,
)
from cnilab.state import Snapshot

RECORDED = Path(__file__).parent / "recorded"

EXPECTED = {
    1: ["ip netns add red", "ip netns add blue"],
    2: ["ip link add v-net-0 type bridge", "ip addr add 192.168.15.5/24 dev v-net-0"],
    3: ["ip link add veth-red type veth peer name veth-red-br",
        "ip link add veth-blue type veth peer name veth-blue-br"],
    4: ["ip link set veth-red netns red", "ip link set veth-blue netns blue"],
    5: ["ip link set veth-red-br master v-net-0", "ip link set veth-blue-br master v-net-0"],
    6: ["ip -n red addr add 192.168.15.1/24 dev veth-red",
        "ip -n blue addr add 192.168.15.2/24 dev veth-blue"],
    7: ["ip link set v-net-0 up", "ip link set veth-red-br up", "ip link set veth-blue-br up",
        "ip -n red link set lo up", "ip -n red link set veth-red up",
        "ip -n blue link set lo up", "ip -n blue link set veth-blue up"],
    8: ["sysctl -w net.ipv4.ip_forward=1",
        "ip -n red route add default via 192.168.15.5",
        "ip -n blue route add default via 192.168.15.5",
        "iptables -t nat -A POSTROUTING -s 192.168.15.0/24 ! -o v-net-0 "
        "-m comment --comment cnilab -j MASQUERADE"],
    9: ["ip netns exec blue python3 -m http.server 80 &",
        "iptables -t nat -A PREROUTING -i eth0 -p tcp --dport 8080 -m comment --comment cnilab "
        "-j DNAT --to-destination 192.168.15.2:80"],
}


@pytest.mark.parametrize("in_place", [False, True])
def test_each_step_prints_the_lecture_commands_as_typed_on_the_node(in_place: bool) -> None:
    topo = default_topology(in_place=in_place)
    for step in build_steps(topo):
        assert [op.command(topo.node) for op in step.ops] == EXPECTED[step.number]


def test_commands_for_another_namespace_use_ip_n_or_ip_netns_exec() -> None:
    assert SetSysctl("red", "net.ipv4.ip_forward", "1").command(None) == (
        "ip netns exec red sysctl -w net.ipv4.ip_forward=1")
    rule = AddRule("node", "nat", "POSTROUTING", ("-s", "10.0.0.0/8", "-j", "MASQUERADE"))
    assert rule.command(None).startswith("ip netns exec node iptables -t nat -A POSTROUTING")
    assert AddNetns(None, "red").command("anywhere") == "ip netns add red"


def test_isolated_stage_links_the_node_to_the_outside_world() -> None:
    topo = default_topology()
    assert [op.command(None) for op in setup_ops(topo)][:4] == [
        "ip netns add cnilab-host", "ip netns exec cnilab-host sysctl -w net.ipv4.ip_forward=0",
        "ip netns add cnilab-internet",
        "ip -n cnilab-internet link add eth0 type veth peer name eth0 netns cnilab-host"]
    assert setup_ops(default_topology(in_place=True)) == ()


def test_the_node_starts_with_forwarding_off_so_step_8_always_turns_it_on() -> None:
    # A new namespace copies ip_forward from the machine's own: 1 on any Docker or podman host.
    topo = default_topology()
    node_made = Snapshot(frozenset({"cnilab-host"}), {})
    fresh = next(op for op in setup_ops(topo) if isinstance(op, SetSysctl))
    assert (fresh.netns, fresh.key, fresh.value) == ("cnilab-host", "net.ipv4.ip_forward", "0")
    assert not fresh.satisfied(Snapshot(frozenset(), {}))  # made with the node ...
    assert fresh.satisfied(node_made)  # ... and never again: step 8 then sets 1 for good
    assert not fresh.undoable()  # it goes with the node's namespace
    step8 = build_steps(topo)[7]
    assert SetSysctl("cnilab-host", "net.ipv4.ip_forward", "1") in step8.ops


def test_ops_round_trip_through_their_ledger_form() -> None:
    topo = default_topology(prefix="t-")
    ops = [op for s in build_steps(topo) for op in s.ops] + list(setup_ops(topo))
    for op in ops:
        assert Op.from_dict(json.loads(json.dumps(op.to_dict())), LAB_OPS) == op


def test_rule_tokens_ignore_comment_and_implied_matches() -> None:
    typed = "-A PREROUTING -i eth0 -p tcp --dport 8080 -j DNAT --to-destination 1.2.3.4:80"
    listed = ("-A PREROUTING -i eth0 -p tcp -m tcp --dport 8080 -m comment --comment cnilab "
              "-j DNAT --to-destination 1.2.3.4:80")
    assert rule_tokens(typed) == rule_tokens(listed)
    assert rule_tokens("-A X -s 1.0.0.0/8 -j MASQUERADE") != rule_tokens(
        "-A X -s 1.0.0.0/8 ! -o br0 -j MASQUERADE")


def test_satisfied_reads_recorded_kernel_state() -> None:
    topo = default_topology(prefix="rec-")
    steps = build_steps(topo)
    after3 = Snapshot.from_json((RECORDED / "after-step-3.json").read_text())
    after8 = Snapshot.from_json((RECORDED / "after-step-8.json").read_text())
    assert [s.done(after3) for s in steps] == [True] * 3 + [False] * 6
    assert [s.done(after8) for s in steps] == [True] * 8 + [False]
    veth = AddVeth(topo.node, "veth-red", "veth-red-br")
    assert veth.satisfied(after8)  # still true after veth-red moved into red


def test_a_rule_without_the_bridge_exception_is_not_step_8() -> None:
    topo = default_topology(prefix="rec-")
    data = json.loads((RECORDED / "after-step-8.json").read_text())
    data["spaces"]["rec-cnilab-host"]["nat"] = [
        "-A POSTROUTING -s 192.168.15.0/24 -j MASQUERADE"]
    assert not build_steps(topo)[7].done(Snapshot.from_json(json.dumps(data)))


@pytest.mark.parametrize("width", [80, 60, 40])
def test_commands_folded_for_a_terminal_are_the_same_commands_to_bash(width: int) -> None:
    import subprocess

    from cnilab.render.commands import fold

    topo = default_topology()
    for op in [op for s in build_steps(topo) for op in s.ops] + list(setup_ops(topo)):
        command = op.command(topo.node)
        lines = fold(command, width)
        assert all(len(ln) <= width for ln in lines if " " in ln.strip()), lines
        assert all(not ln.endswith("\\") or ln.endswith(" \\") for ln in lines)
        # bash reads the folded lines as the very same words (printf only: nothing runs).
        words = [subprocess.run(["bash", "-c", f"set -- {text}\nprintf '%s\\n' \"$@\""],
                                capture_output=True, text=True, check=True).stdout
                 for text in (command.replace("&", ""), "\n".join(lines).replace("&", ""))]
        assert words[0] == words[1]


def test_rules_go_in_and_out_in_one_transaction_all_or_nothing() -> None:
    from cnilab.kernel.iptables import _word, restore_binary
    from tests.unit.fake_kernel import FakeKernel

    k = FakeKernel()
    k.add_netns("node")
    rules = [AddRule("node", "nat", "POSTROUTING", ("-s", f"10.0.0.{i}/32", "-j", "ACCEPT"),
                     "cnilab net 1 id 2") for i in (1, 2)]
    apply_rules(k, rules)
    assert [c for c in k.calls if c[0].startswith("iptables")] == [
        ("iptables_restore", ("node", "nat", [["-A", "POSTROUTING", *r.rule()]
                                              for r in rules]))]
    assert not undo_rules(k, [*rules, AddRule("node", spec=("-s", "10.0.0.9/32"))])
    assert len(k.spaces["node"].rules) == 2  # one missing: none of them deleted
    assert undo_rules(k, rules) and k.spaces["node"].rules == []
    with pytest.raises(ValueError):
        apply_rules(k, [rules[0], AddRule(None, spec=("-j", "ACCEPT"))])
    assert _word("cnilab net 1 id 2") == '"cnilab net 1 id 2"' and _word("-s") == "-s"
    assert _word('a"b\\') == '"a\\"b\\\\"'
    assert restore_binary("/usr/sbin/iptables-nft") == "/usr/sbin/iptables-nft-restore"


def test_a_command_cnilab_did_not_run_is_said_to_be_an_equivalent() -> None:
    # Step 9 prints `python3 -m http.server 80 &` while cnilab.kernel.webserver runs: say so.
    from rich.cells import cell_len
    from rich.console import Console

    from cnilab.ops.system import StartServer
    from cnilab.render.commands import render_commands

    for lang, said in (("en", "# an equivalent: cnilab runs its own small web server"),
                       ("ko", "# 같은 일을 하는 명령입니다. cnilab은")):
        console = Console(width=80, record=True, color_system=None, file=io.StringIO(),
                          force_terminal=True)
        console.print(render_commands([StartServer("blue", 80, "hi")], "node", lang))
        lines = console.export_text().splitlines()
        assert lines[0] == "ip netns exec blue python3 -m http.server 80 &"
        assert lines[1].startswith(said) and "cnilab.kernel.webserver" in " ".join(lines)
        assert all(line.startswith("#") and cell_len(line) <= 80 for line in lines[1:])
