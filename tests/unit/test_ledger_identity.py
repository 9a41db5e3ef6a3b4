"""A ledger's identity is its lesson and its exact prefix: two labs never share one."""

from __future__ import annotations

from pathlib import Path

import pytest

from cnilab.cluster.cluster import Cluster
from cnilab.cluster.plan import build_plan
from cnilab.cni.runtime import Runtime
from cnilab.lab.lab import Lab
from cnilab.lab.topology import default_topology
from cnilab.ledger import Ledger
from cnilab.names import Identity, identity

PREFIXES = ["", "rz", "rz-", "rz_", "rz.", "rz%2E", "-", "_", ".", "default-", "default",
            "X-", "X-cluster-", "X-cni", "a@b", "a#b", "한국-", "x" * 40, "x" * 39 + "y"]


def test_every_lesson_and_prefix_has_its_own_ledger_file(tmp_path: Path) -> None:
    paths = {Ledger.of(Identity(lesson, p), str(tmp_path)).path
             for lesson in ("eight-steps", "cluster", "cni") for p in PREFIXES}
    assert len(paths) == 3 * len(PREFIXES)
    for path in paths:
        assert path.parent == tmp_path and len(path.name.encode()) <= 255
        assert "/" not in path.name and path.name.count(".") == 1  # only the .jsonl


def test_the_unprefixed_lab_is_its_own_identity() -> None:
    assert identity("eight-steps", "") == "eight-steps"
    assert identity("eight-steps", "default") != identity("eight-steps", "")
    assert identity("eight-steps", "-") != identity("eight-steps", "")


def test_a_prefix_ending_in_cluster_does_not_open_the_clusters_ledger(tmp_path: Path) -> None:
    lab = Ledger.of(Identity("eight-steps", "X-cluster-"), str(tmp_path))
    cluster = Ledger.of(Identity("cluster", "X-"), str(tmp_path))
    assert lab.path != cluster.path and lab.lock_path != cluster.lock_path


def test_a_lesson_name_is_checked() -> None:
    with pytest.raises(ValueError):
        identity("../etc", "")


def test_lab_cluster_and_runtime_use_the_lesson_and_exact_prefix(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CNILAB_RUN_DIR", str(tmp_path))
    labs = {Lab(default_topology(prefix=p)).ledger.path for p in ("rz-", "rz_", "rz.", "rz")}
    assert len(labs) == 4
    assert Lab(default_topology()).ledger.path == tmp_path / "eight-steps.jsonl"
    assert (Cluster(build_plan(1, 0, "X-")).ledger.path
            != Lab(default_topology(prefix="X-cluster-")).ledger.path)
    assert Cluster(build_plan(1, 0, "rz-")).ledger.path == tmp_path / "cluster@rz-.jsonl"
    assert Runtime("rz-", str(tmp_path)).ledger.path == tmp_path / "cni@rz-.jsonl"
    assert Runtime("rz_", str(tmp_path)).ledger.path != Runtime("rz-", str(tmp_path)).ledger.path
