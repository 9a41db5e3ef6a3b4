"""Ownership is proven, not remembered: only what the ledger completed, or what the kernel
shows as ours (the namespace's inode, the link's alias), is ever removed. With a fake kernel."""

from __future__ import annotations

from pathlib import Path

import pytest

from cnilab.errors import CollisionError
from cnilab.lab.lab import Lab
from cnilab.lab.topology import default_topology
from cnilab.ledger import Ledger
from cnilab.names import Identity
from cnilab.ops import AddBridge, AddNetns
from tests.unit.fake_kernel import FakeKernel

P = "t-"


@pytest.fixture
def fake() -> FakeKernel:
    return FakeKernel()


def lab_on(fake: FakeKernel, tmp_path: Path, in_place: bool = False) -> Lab:
    topo = default_topology(prefix=P, in_place=in_place)
    return Lab(topo, kernel=fake, ledger=Ledger.of(Identity("eight-steps", P), str(tmp_path)))  # type: ignore[arg-type]


def test_an_intent_alone_does_not_make_a_namespace_ours(fake: FakeKernel, tmp_path: Path) -> None:
    lab = lab_on(fake, tmp_path)
    lab.ledger.record(AddNetns(None, P + "red"))  # killed right after the intent was written
    fake.someone_makes_netns(P + "red")  # then someone else made red
    assert lab.teardown() == []
    assert P + "red" in fake.spaces and fake.touched() == []
    assert lab.kept == [AddNetns(None, P + "red")]


def test_a_step_refuses_a_namespace_that_was_only_intended(
        fake: FakeKernel, tmp_path: Path) -> None:
    lab = lab_on(fake, tmp_path)
    lab.ledger.record(AddNetns(None, P + "red"))
    fake.someone_makes_netns(P + "red")
    with pytest.raises(CollisionError, match=f"namespace {P}red already exists"):
        lab.run_step(1, prove=False)
    assert fake.touched() == []


def test_what_a_step_completed_is_removed_by_teardown(fake: FakeKernel, tmp_path: Path) -> None:
    lab = lab_on(fake, tmp_path)
    lab.run_step(1, prove=False)
    assert fake.list_netns() == {P + n for n in ("cnilab-host", "cnilab-internet", "red", "blue")}
    undone = lab.teardown()
    assert fake.list_netns() == frozenset() and lab.kept == []
    assert [op.name for op in undone] == [  # type: ignore[attr-defined]
        P + "blue", P + "red", P + "cnilab-internet", P + "cnilab-host"]
    assert not lab.ledger.exists()


def test_a_namespace_someone_replaced_after_we_made_it_stays(
        fake: FakeKernel, tmp_path: Path) -> None:
    lab = lab_on(fake, tmp_path)
    lab.run_step(1, prove=False)
    fake.spaces.pop(P + "red")  # ip netns del red; ip netns add red: another namespace
    fake.someone_makes_netns(P + "red")
    lab.teardown()
    assert fake.list_netns() == {P + "red"}


def test_killed_after_the_namespace_was_made_but_before_its_completion_it_is_still_ours(
        fake: FakeKernel, tmp_path: Path) -> None:
    lab = lab_on(fake, tmp_path)
    seq = lab.ledger.record(AddNetns(None, P + "red"))
    fake.add_netns(P + "red", on_made=lambda proof: lab.ledger.note(seq, proof))
    assert not lab.ledger.records()[0].done
    assert [op.name for op in lab.teardown()] == [P + "red"]  # type: ignore[attr-defined]
    assert P + "red" not in fake.spaces


def test_a_recorded_link_without_our_alias_is_someone_elses(
        fake: FakeKernel, tmp_path: Path) -> None:
    lab = lab_on(fake, tmp_path, in_place=True)
    seq = lab.ledger.record(AddBridge(None, "v-net-0"))
    lab.ledger.complete(seq)
    fake.someone_makes_link(None, "v-net-0")  # ours was deleted, then someone made theirs
    assert lab.teardown() == []
    assert "v-net-0" in fake.spaces[None].links and "delete_link" not in fake.touched()


def test_a_link_we_made_carries_our_alias_and_is_removed(
        fake: FakeKernel, tmp_path: Path) -> None:
    lab = lab_on(fake, tmp_path, in_place=True)
    lab.run_step(1, prove=False)
    lab.run_step(2, prove=False)
    assert fake.spaces[None].links["v-net-0"].alias == "cnilab:eight-steps@t-"
    lab.teardown()
    assert "v-net-0" not in fake.spaces[None].links
    assert fake.list_netns() == frozenset()


def test_a_nul_in_a_recorded_name_touches_nothing(fake: FakeKernel, tmp_path: Path) -> None:
    lab = lab_on(fake, tmp_path)
    fake.someone_makes_netns(P + "theirs")
    lab.ledger.path.parent.mkdir(parents=True, exist_ok=True)
    lab.ledger.path.write_text(
        '{"seq": 1, "op": "AddNetns", "netns": null, "name": "t-theirs\\u0000x"}\n'
        '{"done": 1}\n', encoding="utf-8")
    assert lab.teardown() == []
    assert fake.list_netns() == {P + "theirs"} and fake.touched() == []


def test_a_failed_kernel_call_forgets_its_intent_and_its_proof(
        fake: FakeKernel, tmp_path: Path) -> None:
    lab = lab_on(fake, tmp_path)
    fake.someone_makes_netns(P + "red")
    with pytest.raises(Exception, match="already exists"):
        lab.ledger.apply([AddNetns(None, P + "blue"), AddNetns(None, P + "red")], fake)  # type: ignore[arg-type]
    assert lab.ledger.ops() == [AddNetns(None, P + "blue")]
    assert "mark" not in lab.ledger.path.read_text().splitlines()[-1]
    assert lab.ledger.records()[0].done
