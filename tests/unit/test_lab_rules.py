"""The lab's rules on the fake kernel, root-free: prerequisites, collisions, modes, iptables;
each refusal changes nothing (the fake records every call)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from cnilab.errors import CollisionError, ConfigError, MissingTool, PrerequisiteError
from cnilab.lab.lab import Lab
from cnilab.lab.topology import default_topology
from cnilab.ledger import Ledger
from cnilab.names import Identity
from cnilab.ops import AddNetns, AddRule
from tests.unit.fake_kernel import FakeKernel

P = "t-"
NODE = P + "cnilab-host"


def lab_on(fake: FakeKernel, tmp_path: Path, in_place: bool = False) -> Lab:
    topo = default_topology(prefix=P, in_place=in_place)
    ledger = Ledger.of(Identity("eight-steps", P), str(tmp_path))
    return Lab(topo, kernel=fake, ledger=ledger)  # type: ignore[arg-type]


def changes(fake: FakeKernel) -> list[str]:
    return fake.touched()


def test_a_step_before_its_prerequisites_names_the_missing_one_and_changes_nothing(
        tmp_path: Path) -> None:
    fake = FakeKernel()
    lab = lab_on(fake, tmp_path)
    with pytest.raises(PrerequisiteError, match="step 4 needs step 1"):
        lab.run_step(4, prove=False)
    lab.run_step(1, prove=False)
    made = len(changes(fake))
    with pytest.raises(PrerequisiteError, match="step 4 needs step 2"):
        lab.run_step(4, prove=False)
    assert len(changes(fake)) == made


def test_every_step_in_order_then_again_changes_nothing(tmp_path: Path) -> None:
    fake = FakeKernel()
    lab = lab_on(fake, tmp_path)
    for n in range(1, 9):
        assert not lab.run_step(n, prove=False).already_done
    made = len(changes(fake))
    for n in range(1, 9):
        assert lab.run_step(n, prove=False).already_done
    assert len(changes(fake)) == made
    node = fake.spaces[NODE]
    assert node.sysctls["net.ipv4.ip_forward"] == "1" and len(node.rules) == 1
    assert "comment --comment cnilab" in node.rules[0]


def test_a_link_that_is_not_ours_stops_the_step_before_anything_changes(tmp_path: Path) -> None:
    fake = FakeKernel()
    lab = lab_on(fake, tmp_path)
    lab.run_step(1, prove=False)
    fake.someone_makes_link(NODE, "v-net-0")
    made = len(changes(fake))
    with pytest.raises(CollisionError, match=f"link v-net-0 in namespace {NODE} already"):
        lab.run_step(2, prove=False)
    assert len(changes(fake)) == made


def test_an_address_in_use_stops_the_step(tmp_path: Path) -> None:
    fake = FakeKernel()
    lab = lab_on(fake, tmp_path)
    lab.run_step(1, prove=False)
    fake.someone_makes_link(NODE, "other0")
    fake.add_address(NODE, "other0", "192.168.15.5/24")
    made = len(changes(fake))
    with pytest.raises(CollisionError, match=re.escape("192.168.15.5/24 is already on other0")):
        lab.run_step(2, prove=False)
    assert len(changes(fake)) == made


def test_a_namespace_of_someone_else_stops_step_1_before_the_stage_is_made(
        tmp_path: Path) -> None:
    fake = FakeKernel()
    fake.someone_makes_netns(P + "blue")
    lab = lab_on(fake, tmp_path)
    with pytest.raises(CollisionError, match=f"namespace {P}blue already exists"):
        lab.run_step(1, prove=False)
    assert changes(fake) == [] and fake.list_netns() == {P + "blue"}


def test_mixing_modes_on_one_lab_is_refused(tmp_path: Path) -> None:
    fake = FakeKernel()
    lab_on(fake, tmp_path).run_step(1, prove=False)
    with pytest.raises(ConfigError, match="already up in isolated mode"):
        lab_on(fake, tmp_path, in_place=True).run_step(1, prove=False)


def test_without_iptables_step_8_says_how_to_install_before_changing_anything(
        tmp_path: Path) -> None:
    fake = FakeKernel(has_iptables=False)
    lab = lab_on(fake, tmp_path)
    for n in range(1, 8):
        lab.run_step(n, prove=False)
    made = len(changes(fake))
    with pytest.raises(MissingTool, match="iptables is not installed"):
        lab.run_step(8, prove=False)
    assert len(changes(fake)) == made
    assert not any(isinstance(op, AddRule) for op in lab.ledger.ops())


def test_in_place_the_lab_is_made_in_the_namespace_cnilab_runs_in(tmp_path: Path) -> None:
    fake = FakeKernel()
    lab = lab_on(fake, tmp_path, in_place=True)
    for n in range(1, 9):
        lab.run_step(n, prove=False)
    assert fake.list_netns() == {P + "red", P + "blue"}
    assert fake.spaces[None].sysctls["net.ipv4.ip_forward"] == "1"
    lab.teardown()
    host = fake.spaces[None]
    assert fake.list_netns() == frozenset() and set(host.links) == {"lo"}
    assert host.sysctls["net.ipv4.ip_forward"] == "0" and host.rules == []


def test_check_free_on_its_own(tmp_path: Path) -> None:
    fake = FakeKernel()
    ledger = Ledger.of(Identity("eight-steps", P), str(tmp_path))
    fake.someone_makes_netns("theirs")
    ledger.apply([AddNetns(None, "ours")], fake)  # type: ignore[arg-type]
    snap = fake.observe([None, "ours", "theirs"])
    ledger.check_free([AddNetns(None, "ours"), AddNetns(None, "new")], snap, fake)  # type: ignore[arg-type]
    with pytest.raises(CollisionError, match="namespace theirs"):
        ledger.check_free([AddNetns(None, "theirs")], snap, fake)  # type: ignore[arg-type]
