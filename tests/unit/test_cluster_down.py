"""Cluster.down: the one teardown path, and a lock that stays a lock. With the fake kernel."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cnilab.cluster.cluster import Cluster, PlanCluster, cluster_ledger
from cnilab.cluster.components import StartComponent
from cnilab.cluster.plan import build_plan
from cnilab.cluster.pods import AttachPod, IpamStore
from cnilab.errors import LockedError
from cnilab.ops import AddNetns, LinkUp
from tests.unit.fake_kernel import FakeKernel

P = "t-"


def cluster_on(tmp_path: Path) -> tuple[Cluster, FakeKernel]:
    fake = FakeKernel()
    ledger = cluster_ledger(P, str(tmp_path / "run"))
    return Cluster(build_plan(1, 1, P), kernel=fake, ledger=ledger), fake  # type: ignore[arg-type]


def test_down_keeps_the_lock_file_so_a_second_process_is_still_refused(tmp_path: Path) -> None:
    cluster, _ = cluster_on(tmp_path)
    with cluster.ledger.lock():
        cluster.down()
        assert cluster.ledger.lock_path.exists()
        with pytest.raises(LockedError), cluster_ledger(P, str(tmp_path / "run")).lock():
            pass


def test_down_stops_components_first_and_lets_the_rest_go_with_the_namespaces(
        tmp_path: Path) -> None:
    cluster, fake = cluster_on(tmp_path)
    node, pod = P + "controlplane", P + "controlplane-pod1"
    store = IpamStore(None, str(tmp_path / "run" / "ipam"))
    component = StartComponent(node, "kubelet", cluster.plan.lab_id, "controlplane",
                               "172.17.0.24", "172.17.0.24")
    attach = AttachPod(pod, node, "controlplane-pod1", json.dumps({"type": "cnilab"}))
    ledger = cluster.ledger
    ledger.apply([PlanCluster(None, 1, 1, "10.244.0.0/16"), AddNetns(None, node),
                  LinkUp(node, "lo"), store, AddNetns(None, pod)], fake)  # type: ignore[arg-type]
    for op in (component, attach):  # recorded and completed, without a process or a plugin
        ledger.complete(ledger.record(op))
    assert Path(store.path).is_dir()
    undone = cluster.down()
    assert undone == [component, AddNetns(None, pod), store, AddNetns(None, node)]
    assert fake.list_netns() == frozenset() and not Path(store.path).exists()
    assert not ledger.exists()
    assert cluster.down() == []  # idempotent
