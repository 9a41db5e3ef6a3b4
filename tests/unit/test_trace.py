"""Reading traces, from recorded kernel observations (see recorded/README.md); no root."""

from __future__ import annotations

import io
import json
import struct
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from cnilab.errors import ConfigError
from cnilab.lab.lab import LAB_OPS, lab_site
from cnilab.lab.topology import default_topology
from cnilab.ledger import Ledger
from cnilab.names import Identity
from cnilab.ops import AddNetns, Op
from cnilab.ops.trace import AddTraceTable
from cnilab.render.trace import render_trace, to_json
from cnilab.state import Snapshot
from cnilab.trace.packets import parse
from cnilab.trace.plan import check_args, plan_trace, trace_ops
from cnilab.trace.verdict import TraceResult, analyse
from tests.unit.trace_recording import RecordedLookup, from_dict

RECORDED = Path(__file__).parent / "recorded"
TOPO = default_topology(prefix="rec-")
SITE = lab_site(TOPO)


def load(name: str) -> TraceResult:
    data = json.loads((RECORDED / f"trace-{name}.json").read_text())
    return analyse(from_dict(data), RecordedLookup(data), SITE)


def shown(result: TraceResult, lang: str = "en", width: int = 80) -> str:
    console = Console(width=width, record=True, color_system=None, file=io.StringIO())
    for part in render_trace(result, lang):
        console.print(part)
    return console.export_text()


def path(result: Any) -> list[tuple[str, str, str]]:
    return [(h.netns, h.dev, h.direction) for h in result.hops]


def test_red_to_blue_is_switched_by_the_bridge_from_its_fdb() -> None:
    r = load("red-blue")
    assert r.delivered and r.reply is not None and r.reply.delivered and r.nat == []
    assert path(r.request) == [("rec-red", "veth-red", "out"),
                               ("rec-cnilab-host", "veth-red-br", "in"),
                               ("rec-cnilab-host", "veth-blue-br", "out"),
                               ("rec-blue", "veth-blue", "in")]
    notes = [n[0] for h in r.request.hops for n in h.notes]
    assert "bridge_port" in notes and "delivered" in notes
    assert "bridge_fdb" in notes or "bridge_flood" in notes


def test_red_to_the_outside_is_masqueraded_and_conntrack_undoes_it_for_the_reply() -> None:
    r = load("red-outside")
    [nat] = r.nat
    assert nat.before == ("192.168.15.1", "203.0.113.1")
    assert nat.after == ("203.0.113.2", "203.0.113.1")
    assert nat.rules == ("-A POSTROUTING -s 192.168.15.0/24 ! -o v-net-0 -j MASQUERADE",)
    out = next(h for h in r.request.hops if h.dev == "eth0" and h.direction == "out")
    assert out.src == "203.0.113.2"
    assert r.reply is not None
    assert any(n[0] == "nat_undone" for h in r.reply.hops for n in h.notes)
    assert r.reply.hops[-1].dst == "192.168.15.1"


def test_outside_to_8080_is_dnatted_to_blue_port_80() -> None:
    r = load("outside-8080")
    [nat] = r.nat
    assert nat.before[1] == "203.0.113.2:8080" and nat.after[1] == "192.168.15.2:80"
    assert "DNAT --to-destination 192.168.15.2:80" in nat.rules[0]
    assert r.request.hops[-1].netns == "rec-blue" and r.request.hops[-1].dst == "192.168.15.2:80"
    assert r.reply is not None and r.reply.hops[-1].src == "203.0.113.2:8080"


@pytest.mark.parametrize(("name", "reason", "where", "dev", "in_reply"), [
    ("arp-unanswered", "arp_unanswered", "rec-red", "veth-red", False),
    ("forwarding-off", "forwarding_off", "rec-cnilab-host", "v-net-0", False),
    ("no-listener", "no_listener", "rec-blue", "veth-blue", False),
    ("no-way-back", "no_way_back", "rec-cnilab-internet", None, True),
    ("not-bridge-port", "not_bridge_port", "rec-cnilab-host", "veth-blue-br", False),
    ("rule-drop", "rule_drop", "rec-cnilab-host", "v-net-0", False),
])
def test_each_recorded_death_is_named_with_where_and_a_hint(
        name: str, reason: str, where: str, dev: str | None, in_reply: bool) -> None:
    r = load(name)
    leg = r.reply if in_reply else r.request
    assert leg is not None and leg.dropped is not None
    assert (leg.dropped.reason, leg.dropped.netns, leg.dropped.dev) == (reason, where, dev)
    data = to_json(r, "en")
    dropped = (data["reply"] if in_reply else data)["dropped"]
    assert dropped["reason"] == reason and dropped["text"] and dropped["hint"]
    assert to_json(r, "ko")[("reply" if in_reply else "dropped")] is not None


def test_json_has_the_shape_the_issue_specifies() -> None:
    data = to_json(load("red-outside"), "en")
    assert {"delivered", "hops", "nat", "dropped", "reply"} <= set(data)
    assert data["dropped"] is None and data["delivered"] is True
    for hop in data["hops"] + data["reply"]["hops"]:
        assert set(hop) == {"netns", "dev", "direction", "src", "dst", "note"}
        assert hop["direction"] in ("in", "out")
    assert set(data["nat"][0]) == {"netns", "rule", "before", "after"}
    assert set(data["reply"]) == {"delivered", "hops", "dropped"}
    json.dumps(data)


@pytest.mark.parametrize("name", ["red-blue", "red-outside", "outside-8080", "no-way-back",
                                  "rule-drop", "arp-unanswered", "not-bridge-port"])
@pytest.mark.parametrize("lang", ["en", "ko"])
def test_the_rich_path_fits_80_columns(name: str, lang: str) -> None:
    from rich.cells import cell_len

    text = shown(load(name), lang)
    assert max(cell_len(ln.rstrip()) for ln in text.splitlines()) <= 80
    assert ("✔" in text) != ("✘" in text)


def test_the_verdict_line_says_where_and_why_in_both_languages() -> None:
    r = load("forwarding-off")
    assert "IP forwarding is off" in shown(r) and "net.ipv4.ip_forward=1" in shown(r)
    assert "IP 포워딩이 꺼져" in shown(r, "ko")


def test_arguments_are_checked_before_anything_is_touched() -> None:
    for args, key in ((("purple", "192.168.15.2", None, None), "trace_from"),
                      (("red", "8.8.8.8", None, None), "trace_outside"),
                      (("red", "10.0.0.1", None, None), "trace_outside"),
                      (("red", "nope", None, None), "trace_to"),
                      (("red", "192.168.15.2", "sctp", 80), "trace_proto"),
                      (("red", "192.168.15.2", "icmp", 80), "trace_port_icmp"),
                      (("red", "192.168.15.2", "udp", None), "trace_needs_port"),
                      (("red", "192.168.15.2", None, 0), "trace_port_range")):
        with pytest.raises(ConfigError) as e:
            check_args(SITE, *args)
        assert e.value.key == key
    assert check_args(SITE, "internet", "203.0.113.2", None, 8080) == (
        "rec-cnilab-internet", "203.0.113.2", "tcp")
    in_place = lab_site(default_topology(in_place=True))
    with pytest.raises(ConfigError):  # there, the uplink is the machine's own: not the lab's
        check_args(in_place, "host", "203.0.113.1", None, None)


def test_trace_tables_match_the_probe_and_are_recorded_as_ops() -> None:
    snap = Snapshot.from_json((RECORDED / "after-step-8.json").read_text())
    plan = plan_trace(SITE, snap, "red", "203.0.113.1", None, None, ident=4242)
    assert plan.watch == ("rec-cnilab-host", "rec-red", "rec-blue", "rec-cnilab-internet")
    mark = Identity("eight-steps", "rec-").mark
    ops = trace_ops(plan, snap, mark)
    node = ops[0]
    assert node.families == "inet arp bridge" and ops[1].families == "inet arp"
    # The lab's mark is the table's comment, made in the same transaction as the table.
    assert node.mark == mark == "cnilab:eight-steps@rec-"
    assert node.script.startswith(f'create table inet cnilab_trace {{ comment "{mark}"; }};')
    assert "icmp id 4242 meta nftrace set 1" in node.script
    assert "ether type arp meta nftrace set 1" in node.script
    assert node.command(None) == f"ip netns exec rec-cnilab-host nft '{node.script}'"
    assert node.undo_command(None) == ("ip netns exec rec-cnilab-host nft 'delete table inet "
                                       "cnilab_trace; delete table arp cnilab_trace; delete "
                                       "table bridge cnilab_trace'")
    assert Op.from_dict(json.loads(json.dumps(node.to_dict())), LAB_OPS) == node
    tcp = trace_ops(plan_trace(SITE, snap, "red", "192.168.15.2", "tcp", 80, 40001), snap, mark)
    assert "tcp sport 40001" in tcp[1].script and "tcp dport 40001" in tcp[1].script


def test_the_ledger_forgets_a_finished_trace_and_keeps_the_rest(tmp_path: Path) -> None:
    ledger = Ledger("t", str(tmp_path))
    keep, gone = AddNetns(None, "rec-red"), AddTraceTable("rec-red", "inet", "create table x")
    for op in (keep, gone):
        ledger.record(op)
    ledger.forget([gone])
    assert Ledger("t", str(tmp_path)).ops() == [keep]
    assert ledger.path.stat().st_mode & 0o777 == 0o644
    assert [p.name for p in tmp_path.iterdir()] == ["t.jsonl"]  # no temp file left behind


def test_headers_are_read_from_the_kernels_bytes() -> None:
    arp = parse("bridge", "ffffffffffff" + "86b78338a7b6" + "0806",
                "0001080006040001" + "86b78338a7b6" + "c0a80f01" + "000000000000" + "c0a80f02",
                "")
    assert (arp.kind, arp.arp_op, arp.src, arp.dst) == ("arp", 1, "192.168.15.1", "192.168.15.2")
    assert arp.mac_dst == "ff:ff:ff:ff:ff:ff"
    ip = "4500003c000040004006" + "0000" + "c0a80f01" + "c0a80f02"
    syn = parse("inet", "", ip, struct.pack("!HHIIBB", 40001, 80, 0, 0, 0x50, 0x02).hex())
    assert (syn.src, syn.dport, syn.sport, syn.flags) == ("192.168.15.1", 80, 40001, 0x02)
    assert syn.endpoint(False) == "192.168.15.2:80"


def test_a_trace_event_is_parsed_from_its_netlink_attributes() -> None:
    from cnilab.kernel.nfnetlink import attr
    from cnilab.kernel.nftrace import parse_event

    verdict = attr(1, struct.pack("!i", 0))  # NF_DROP
    payload = struct.pack("=BBH", 2, 0, 0) + b"".join([
        attr(1, b"filter\0"), attr(2, b"FORWARD\0"), attr(3, struct.pack("!Q", 7)),
        attr(4, struct.pack("!I", 3)), attr(5, verdict, nested=True),
        attr(10, struct.pack("!I", 3)), attr(12, struct.pack("!I", 2)),
        attr(8, bytes.fromhex("45000054000040004001" + "0000" + "c0a80f01cb007101"))])
    e = parse_event("rec-cnilab-host", payload)
    assert (e.family, e.table, e.chain, e.kind, e.verdict, e.handle) == (
        "ip", "filter", "FORWARD", "rule", "drop", 7)
    assert (e.iif, e.oif) == (3, 2) and parse(e.family, e.ll, e.network, "").dst == "203.0.113.1"
    policy = parse_event(None, struct.pack("=BBH", 1, 0, 0) + attr(4, struct.pack("!I", 1))
                         + attr(16, struct.pack("!I", 1)))
    assert (policy.kind, policy.verdict) == ("policy", "accept")
