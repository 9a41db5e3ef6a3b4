"""Diagrams drawn from recorded kernel states (see recorded/README.md), at a fixed width."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from rich.console import Console

from cnilab.lab.steps import build_steps
from cnilab.lab.topology import default_topology
from cnilab.render.diagram import render_diagram
from cnilab.state import Snapshot

RECORDED = Path(__file__).parent / "recorded"


def draw(name: str, highlight_step: int | None = None, width: int = 100) -> str:
    topo = default_topology(prefix="rec-")
    snap = Snapshot.from_json((RECORDED / name).read_text())
    keys = set()
    if highlight_step:
        keys = {k for op in build_steps(topo)[highlight_step - 1].ops for k in op.highlights()}
    console = Console(width=width, record=True, color_system=None, file=io.StringIO())
    console.print(render_diagram(snap, topo, keys))
    return console.export_text()


def test_after_step_3_both_pairs_sit_in_the_node_and_are_new() -> None:
    text = draw("after-step-3.json", highlight_step=3)
    assert "node: rec-cnilab-host" in text
    # Both ends in the node: one cable, drawn from the first end; each end has its own state.
    assert "+ veth-red-br veth DOWN ━━ veth-red " in text and "+ veth-red veth DOWN " in text
    assert "+ veth-blue-br veth DOWN ━━ veth-blue " in text
    assert text.count("━━ veth-red-br") == 0 and text.count("━━ veth-blue-br") == 0
    assert "v-net-0 bridge DOWN 192.168.15.5/24" in text
    assert "lo loopback DOWN" in text  # the containers exist, with only a loopback, still down
    assert "outside world: rec-cnilab-internet" in text


def test_after_step_8_shows_ports_peers_routes_forwarding_and_nat() -> None:
    text = draw("after-step-8.json", highlight_step=8)
    assert "├── veth-red-br UP ea:0a:53:ea:7f:0d ━━ rec-red:veth-red" in text
    assert "v-net-0 bridge UP 192.168.15.5/24 ba:d5:0f:d0:32:d1" in text  # MACs: bridge, ports
    assert "veth-red veth UP 192.168.15.1/24 " in text
    assert "+ route default via 192.168.15.5 " in text  # red has one link: no `dev` needed
    assert "route 192.168.15.0/24 dev veth-red" in text
    assert "+ net.ipv4.ip_forward = 1" in text
    assert "+ nat -A POSTROUTING -s 192.168.15.0/24 ! -o v-net-0 -j MASQUERADE" in text
    assert "eth0 veth UP 203.0.113.2/24 ━━ rec-cnilab-internet:eth0" in text


def test_after_step_8_matches_the_recorded_picture() -> None:
    # Snapshot test: regenerate after-step-8.txt on purpose when the diagram's design changes.
    expected = (RECORDED / "after-step-8.txt").read_text()
    assert draw("after-step-8.json", highlight_step=8) == expected


def test_without_highlight_nothing_is_marked_new() -> None:
    assert "+ " not in draw("after-step-8.json")


def test_nothing_observed_says_so() -> None:
    console = Console(width=100, record=True, color_system=None)
    console.print(render_diagram(Snapshot(frozenset(), {}), default_topology()))
    assert "Nothing of the lab exists yet." in console.export_text()


def test_after_the_first_pings_the_bridge_fdb_and_the_arp_tables_are_drawn() -> None:
    text = draw("after-step-8-pinged.json")
    snap = Snapshot.from_json((RECORDED / "after-step-8-pinged.json").read_text())
    node = snap.ns("rec-cnilab-host")
    assert node is not None
    learned = {e.port: e.mac for e in node.fdb if not e.local}
    assert set(learned) == {"veth-red-br", "veth-blue-br"}
    lines = text.splitlines()
    port = next(i for i, ln in enumerate(lines) if "── veth-red-br " in ln)
    assert f"fdb {learned['veth-red-br']}" in lines[port + 1]  # drawn under its port
    red = snap.ns("rec-red")
    assert red is not None
    for n in red.neigh:
        assert f"arp {n.ip} → {n.mac} {n.state}" in text
    assert not any("fdb" in ln for ln in draw("after-step-8.json").splitlines())


def test_step_9_does_not_mark_step_8s_masquerade_rule_as_new() -> None:
    text = draw("after-step-8.json", highlight_step=9)
    assert "nat -A POSTROUTING -s 192.168.15.0/24 ! -o v-net-0 -j MASQUERADE" in text
    assert "+ nat -A POSTROUTING" not in text


def terminal_80x24(name: str, highlight_step: int) -> str:
    topo = default_topology(prefix="rec-")
    snap = Snapshot.from_json((RECORDED / name).read_text())
    keys = {k for op in build_steps(topo)[highlight_step - 1].ops for k in op.highlights()}
    console = Console(width=80, height=24, force_terminal=True, record=True, color_system=None,
                      file=io.StringIO())
    console.print(render_diagram(snap, topo, keys))
    return console.export_text()


@pytest.mark.parametrize("name", ["after-step-8.json", "after-step-8-pinged.json"])
def test_at_80x24_step_8_fits_the_screen_with_each_cable_drawn_once(name: str) -> None:
    text = terminal_80x24(name, 8)
    lines = text.rstrip("\n").splitlines()
    assert len(lines) <= 23  # run-all's prompt goes below it, on a 24-line terminal
    assert max(len(ln.rstrip()) for ln in lines) <= 80
    assert any("container: rec-red" in ln and "container: rec-blue" in ln for ln in lines)
    assert text.count("━━ rec-red:veth-red") == 1 and "━━ rec-cnilab-host:" not in text
    # Still there: what step 8 made, the bridge and its ports, what the bridge and ARP learned.
    for what in ("+ nat -A POSTROUTING", "+ net.ipv4.ip_forward = 1",
                 "+ route default via 192.168.15.5", "── veth-red-br UP", "v-net-0 bridge UP"):
        assert what in text


def test_the_compact_picture_is_only_for_a_short_terminal() -> None:
    full = draw("after-step-8-pinged.json", highlight_step=8, width=80)  # not a terminal
    assert "lo loopback UP 127.0.0.1/8" in full and "REACHABLE" in full
    short = terminal_80x24("after-step-8-pinged.json", 8)
    assert "lo loopback UP" not in short and "REACHABLE" not in short
    assert "arp 192.168.15.5 " in short


def test_a_link_that_is_up_without_carrier_says_so() -> None:
    from cnilab.state import Link, Namespace, Snapshot

    topo = default_topology()
    br = Link("v-net-0", "bridge", 2, up=True, carrier=False, addresses=("192.168.15.5/24",))
    snap = Snapshot(frozenset({"cnilab-host"}), {"cnilab-host": Namespace("cnilab-host", (br,))})
    console = Console(width=100, record=True, color_system=None, file=io.StringIO())
    console.print(render_diagram(snap, topo))
    assert "v-net-0 bridge UP (no carrier) 192.168.15.5/24" in console.export_text()


def test_ip_forward_shows_in_the_node_only_even_where_containers_inherit_it() -> None:
    # On a machine whose own namespace forwards, every new namespace starts with ip_forward = 1:
    # in a container it routes nothing, so only the node's box shows it.
    data = json.loads((RECORDED / "after-step-8-pinged.json").read_text())
    for space in data["spaces"].values():
        if "net.ipv4.ip_forward" in space.get("sysctls", {}):
            space["sysctls"]["net.ipv4.ip_forward"] = "1"
    topo = default_topology(prefix="rec-")
    console = Console(width=100, record=True, color_system=None, file=io.StringIO())
    console.print(render_diagram(Snapshot.from_json(json.dumps(data)), topo))
    assert console.export_text().count("net.ipv4.ip_forward = 1") == 1


def test_the_compact_picture_keeps_what_step_7_teaches() -> None:
    # Bringing links up is what makes the kernel add their connected routes; the node has a lo.
    topo = default_topology(prefix="rec-")
    snap = Snapshot.from_json((RECORDED / "after-step-8.json").read_text())

    def compact(step: int) -> str:
        keys = {k for op in build_steps(topo)[step - 1].ops for k in op.highlights()}
        console = Console(width=80, record=True, color_system=None, file=io.StringIO())
        console.print(render_diagram(snap, topo, keys, compact=True))
        return console.export_text()

    seven = compact(7)
    assert "route 192.168.15.0/24 dev veth-red" in seven
    assert "route 192.168.15.0/24 dev v-net-0" in seven
    node_box = seven.split("container:")[0]
    assert "lo loopback UP 127.0.0.1/8" in node_box
    eight = compact(8)  # later, the connected routes are implied by the addresses again
    assert "route 192.168.15.0/24 dev veth-red" not in eight and "lo loopback" not in eight


def test_a_nat_rule_too_long_for_its_box_wraps_under_itself() -> None:
    text = draw("after-step-8.json", width=60)
    lines = [line.strip("│ ").rstrip() for line in text.splitlines()]
    at = next(i for i, line in enumerate(lines) if line.startswith("nat -A POSTROUTING"))
    assert "│     MASQUERADE" in text.splitlines()[at + 1]  # under the rule, not under `nat`
