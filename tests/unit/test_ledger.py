"""The ledger on its own: what it reads back, what it skips (and says so), what it refuses."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cnilab.cluster.cluster import CLUSTER_OPS, PlanCluster, cluster_ledger
from cnilab.cluster.components import StartComponent
from cnilab.cluster.pods import AttachPod, IpamStore
from cnilab.compat import valueclass
from cnilab.ledger import Ledger
from cnilab.names import Identity
from cnilab.ops import OPS, AddNetns, AddRule, AddVeth, Op, SetSysctl
from cnilab.ops.faults import FAULT_OPS

GOOD = AddNetns(None, "red")


def ledger_with(tmp_path: Path, *lines: str | dict, lesson: str = "eight-steps") -> Ledger:
    ledger = Ledger.of(Identity(lesson, "t-"), str(tmp_path))
    ledger.path.parent.mkdir(parents=True, exist_ok=True)
    text = "".join((x if isinstance(x, str) else json.dumps(x)) + "\n" for x in lines)
    ledger.path.write_text(text, encoding="utf-8")
    return ledger


@pytest.mark.parametrize(("line", "reason"), [
    ({"op": "AddNetns", "netns": None, "name": "red\u0000x"}, "control_char"),
    ({"op": "AddNetns", "netns": None, "name": "red\nx"}, "control_char"),
    ({"op": "AddNetns", "netns": None, "name": 5}, "bad_type"),
    ({"op": "AddNetns", "netns": ["a"], "name": "red"}, "bad_type"),
    ({"op": "AddNetns", "netns": None, "name": "../../etc"}, "bad_name"),
    ({"op": "AddNetns", "netns": None, "name": ".."}, "bad_name"),
    ({"op": "AddNetns", "name": "red"}, "missing_field"),
    ({"op": "AddNetns", "netns": None, "name": "red", "extra": 1}, "unknown_field"),
    ({"op": "PlanCluster", "netns": None}, "unknown_op"),
    ({"op": "NoSuchOp", "netns": None}, "unknown_op"),
    ({"op": 7}, "unknown_op"),
    ({"op": "StartServer", "netns": "b", "port": True, "body": ""}, "bad_type"),
    ({"op": "AddRule", "netns": "n", "spec": ["-j", "\x00"]}, "control_char"),
    ({"op": "SetSysctl", "netns": None, "key": "k", "value": "1", "previous": 0}, "bad_type"),
    ({"in_place": "yes"}, "bad_mode"),
    ('["AddNetns", null, "red"]', "not_object"),
    ('"AddNetns"', "not_object"),
    ("null", "not_object"),
    ('{"op": "AddNetns", "netns": nu', "bad_json"),
])
def test_a_bad_line_is_skipped_with_one_reason_and_the_rest_is_read(
        tmp_path: Path, line: str | dict, reason: str) -> None:
    ledger = ledger_with(tmp_path, {"in_place": False}, line, GOOD.to_dict())
    assert ledger.ops() == [GOOD]
    assert [(p.line, p.key) for p in ledger.problems] == [(2, reason)]
    text = ledger.problems[0].render(ledger.path)
    assert "\n" not in text and "line 2" in text and str(ledger.path) in text


def test_a_line_that_is_not_utf8_is_skipped(tmp_path: Path) -> None:
    ledger = ledger_with(tmp_path, GOOD.to_dict())
    with open(ledger.path, "ab") as f:
        f.write(b'{"op": "AddNetns", "netns": null, "name": "r\xffd"}\n')
    assert ledger.ops() == [GOOD] and [p.key for p in ledger.problems] == ["bad_json"]


def test_a_skipped_line_reads_in_korean_too(tmp_path: Path) -> None:
    ledger = ledger_with(tmp_path, {"op": "Nope", "netns": None})
    ko = ledger.problems[0].render(ledger.path, "ko")
    assert "줄" in ko and "'Nope'" in ko


def test_every_op_round_trips_through_its_ledger_form(tmp_path: Path) -> None:
    ops: list[Op] = [GOOD, AddVeth("n", "a", "b", "c"), SetSysctl(None, "k", "1", None),
                     AddRule("n", "nat", "POSTROUTING", ("-s", "10.0.0.0/8", "-j", "MASQUERADE"))]
    ledger = ledger_with(tmp_path, *(op.to_dict() for op in ops))
    assert ledger.ops() == ops and ledger.problems == []


def test_the_registry_is_a_list_not_whatever_was_imported() -> None:
    @valueclass(frozen=True)
    class Stray(Op):
        """Defined here: no ledger may read it unless a registry lists it."""

    assert "Stray" not in OPS and "Stray" not in CLUSTER_OPS
    assert set(CLUSTER_OPS) - set(OPS) - set(FAULT_OPS) == {
        "PlanCluster", "StartComponent", "UnplugLastPort", "AttachPod", "IpamStore",
        "AddTraceTable", "NetnsEtcFile", "KubectlScript"}
    assert CLUSTER_OPS["AttachPod"] is AttachPod and CLUSTER_OPS["IpamStore"] is IpamStore
    assert CLUSTER_OPS["StartComponent"] is StartComponent


def test_the_lab_reading_a_cluster_ledger_skips_cluster_ops_instead_of_crashing(
        tmp_path: Path) -> None:
    plan = PlanCluster(None, 2, 1, "10.244.0.0/16")
    lines = [plan.to_dict(), GOOD.to_dict(), IpamStore(None, "/x").to_dict()]
    lab = ledger_with(tmp_path, *lines)
    assert lab.ops() == [GOOD]
    assert [p.params["op"] for p in lab.problems] == ["PlanCluster", "IpamStore"]
    cluster = cluster_ledger("t-", str(tmp_path))
    cluster.path.write_text(lab.path.read_text())
    assert cluster.ops() == [plan, GOOD, IpamStore(None, "/x")] and cluster.problems == []


def test_every_reason_a_line_is_skipped_has_a_sentence_in_every_language() -> None:
    import re

    from cnilab.i18n import LANGS
    from cnilab.records import Problem

    root = Path(__file__).resolve().parents[2] / "cnilab"
    keys = {k for f in root.rglob("*.py")
            for k in re.findall(r'BadEntry\("([a-z_]+)"', f.read_text(encoding="utf-8"))}
    assert {"orphan", "bad_seq", "bad_proof", "unknown_op"} <= keys
    params = {"op": "X", "field": "f", "type": "str"}
    for lang in LANGS:
        for key in keys:
            text = Problem(3, key, params).render("/run/cnilab/x.jsonl", lang)
            assert "\n" not in text and "{" not in text


def test_the_ledger_section_holds_only_the_ledgers_sentences() -> None:
    from cnilab.i18n import LANGS, catalog

    allowed = {"skipped", "bad_json", "not_object", "bad_mode", "unknown_op", "unknown_field",
               "missing_field", "bad_type", "control_char", "bad_name", "bad_seq", "orphan",
               "bad_proof"}
    for lang in LANGS:
        assert set(catalog(lang)["ledger"]) == allowed  # a merge once moved cni_* keys here


def test_a_ctrl_c_right_after_a_line_is_written_still_lets_forget_drop_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The window of the trace's Ctrl-C test: the intent is on disk, the interrupt comes before
    the ledger took it in; forget() must still find and drop that line."""
    import cnilab.ledger as ledger_module

    ledger = ledger_with(tmp_path, {"seq": 1, **GOOD.to_dict()}, {"done": 1})
    other = AddNetns(None, "blue")
    real = ledger_module.append_file

    def interrupted(path: Path, data: bytes, mode: int) -> None:
        real(path, data, mode)
        raise KeyboardInterrupt

    monkeypatch.setattr(ledger_module, "append_file", interrupted)
    with pytest.raises(KeyboardInterrupt):
        ledger.record(other)
    monkeypatch.setattr(ledger_module, "append_file", real)
    ledger.forget([other])
    assert ledger.ops() == [GOOD] and "blue" not in ledger.path.read_text()
