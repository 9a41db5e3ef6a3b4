"""teardown_plan and Ledger.teardown on their own: order, what goes with a namespace, subsets,
refusals. Root-free, with the recording fake kernel."""

from __future__ import annotations

from pathlib import Path

import pytest

from cnilab.cluster.components import StartComponent
from cnilab.cluster.pods import AttachPod
from cnilab.errors import KernelError
from cnilab.ledger import Ledger
from cnilab.names import Identity
from cnilab.ops import (
    AddAddress,
    AddBridge,
    AddNetns,
    AddRule,
    AddVeth,
    LinkUp,
    SetSysctl,
    StartServer,
    teardown_plan,
)
from tests.unit.fake_kernel import FakeKernel

NODE, RED = AddNetns(None, "node"), AddNetns(None, "red")
BRIDGE = AddBridge("node", "br0")
HOST_BRIDGE = AddBridge(None, "br0")
SERVER = StartServer("red", 80, "hi")
COMPONENT = StartComponent("node", "kubelet", "x", "node", "1.2.3.4", "1.2.3.4")
RULE = AddRule(None, "nat", "POSTROUTING", ("-s", "10.0.0.0/24", "-j", "MASQUERADE"))


def test_the_plan_is_newest_first_and_skips_what_goes_with_its_namespace() -> None:
    ops = [NODE, RED, BRIDGE, AddAddress("node", "br0", "10.0.0.1/24"), HOST_BRIDGE, RULE]
    assert teardown_plan(ops) == [RULE, HOST_BRIDGE, RED, NODE]


def test_processes_are_stopped_first_even_when_older_than_the_rest() -> None:
    ops = [NODE, RED, SERVER, COMPONENT, HOST_BRIDGE]
    assert teardown_plan(ops) == [COMPONENT, SERVER, HOST_BRIDGE, RED, NODE]


def test_a_pod_attachment_goes_only_when_both_its_namespaces_go() -> None:
    attach = AttachPod("pod", "node", "pod1", "{}")
    pod = AddNetns(None, "pod")
    assert teardown_plan([NODE, pod, attach]) == [pod, NODE]
    assert teardown_plan([pod, attach]) == [attach, pod]  # the node stays: CNI DEL


def test_with_the_namespaces_given_only_those_take_their_contents() -> None:
    ops = [NODE, RED, BRIDGE, AddVeth("red", "a", "b")]
    assert teardown_plan(ops, removed={"node"}) == [AddVeth("red", "a", "b"), RED, NODE]


def test_sysctl_in_a_namespace_that_stays_is_restored(tmp_path: Path) -> None:
    fake = FakeKernel()
    ledger = Ledger.of(Identity("eight-steps", ""), str(tmp_path))
    ledger.apply([SetSysctl(None, "net.ipv4.ip_forward", "1")], fake)  # type: ignore[arg-type]
    assert fake.spaces[None].sysctls["net.ipv4.ip_forward"] == "1"
    ledger.teardown(fake)  # type: ignore[arg-type]
    assert fake.spaces[None].sysctls["net.ipv4.ip_forward"] == "0"
    assert not ledger.exists()


def test_undoing_some_ops_forgets_only_those(tmp_path: Path) -> None:
    fake = FakeKernel()
    ledger = Ledger.of(Identity("cni", "t-"), str(tmp_path))
    ledger.apply([NODE, RED, LinkUp("red", "lo")], fake)  # type: ignore[arg-type]
    assert ledger.undo(fake, [RED, LinkUp("red", "lo")]) == [RED]  # type: ignore[arg-type]
    assert ledger.ops() == [NODE] and ledger.records()[0].done
    assert fake.list_netns() == {"node"}
    ledger.undo(fake)  # type: ignore[arg-type]
    assert not ledger.exists() and fake.list_netns() == frozenset()


def test_a_refused_undo_stays_recorded_and_the_rest_still_goes(tmp_path: Path) -> None:
    fake = FakeKernel()
    ledger = Ledger.of(Identity("eight-steps", ""), str(tmp_path))
    ledger.apply([NODE, HOST_BRIDGE], fake)  # type: ignore[arg-type]
    fake.refuse.add("delete_link")
    with pytest.raises(KernelError, match="delete_link"):
        ledger.teardown(fake)  # type: ignore[arg-type]
    assert ledger.ops() == [HOST_BRIDGE] and fake.list_netns() == frozenset()
    fake.refuse.clear()
    assert ledger.undo(fake) == [HOST_BRIDGE]  # type: ignore[arg-type]
    assert not ledger.exists()


def test_teardown_is_idempotent(tmp_path: Path) -> None:
    fake = FakeKernel()
    ledger = Ledger.of(Identity("eight-steps", ""), str(tmp_path))
    ledger.apply([NODE, HOST_BRIDGE], fake)  # type: ignore[arg-type]
    assert len(ledger.undo(fake)) == 2  # type: ignore[arg-type]
    assert ledger.undo(fake) == []  # type: ignore[arg-type]
