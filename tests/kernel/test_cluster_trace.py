"""`cnilab cluster trace` on a real two-node cluster (one pod per node)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers import cluster_up

from cnilab.cluster.cluster import Cluster


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Cluster, Path]]:
    run_dir = tmp_path_factory.mktemp("cluster-trace-run")
    with cluster_up(run_dir) as c:
        yield c, run_dir


def trace(c: Cluster, run_dir: Path, *args: str) -> dict[str, Any]:
    done = subprocess.run([sys.executable, "-m", "cnilab", "cluster", "--prefix", c.plan.prefix,
                           "trace", *args, "--json"], capture_output=True, text=True,
                          env={**os.environ, "CNILAB_RUN_DIR": str(run_dir)}, check=False)
    assert done.returncode in (0, 1) and done.stdout, done.stderr
    assert "Task was destroyed" not in done.stderr
    return json.loads(done.stdout)


def test_a_pod_reaches_a_pod_on_the_other_node_through_both_nodes_and_the_lan(
        cluster: tuple[Cluster, Path]) -> None:
    c, run_dir = cluster
    p = c.plan.prefix
    data = trace(c, run_dir, "controlplane-pod1", "10.244.1.2")
    assert data["delivered"] and data["reply"]["delivered"], data
    spaces = [h["netns"] for h in data["hops"]]
    assert list(dict.fromkeys(spaces)) == [p + "controlplane-pod1", p + "controlplane",
                                           p + "cnilab-lan", p + "node01", p + "node01-pod1"]
    out = next(h for h in data["hops"] if h["netns"] == p + "controlplane" and h["dev"] == "ens3")
    assert "route: 10.244.1.2 via 172.17.0.40 dev ens3" in out["note"]


def test_a_missing_pod_route_is_named_where_the_reply_dies(
        cluster: tuple[Cluster, Path]) -> None:
    c, run_dir = cluster
    node = c.plan.prefix + "node01"
    subprocess.run(["ip", "-n", node, "route", "del", "10.244.0.0/24"], check=True)
    try:
        data = trace(c, run_dir, "controlplane-pod1", "10.244.1.2")
    finally:
        subprocess.run(["ip", "-n", node, "route", "add", "10.244.0.0/24", "via", "172.17.0.24"],
                       check=False)
    assert data["delivered"] and not data["reply"]["delivered"]
    dropped = data["reply"]["dropped"]
    assert dropped["netns"] == c.plan.prefix + "cnilab-lan", dropped
    assert dropped["reason"] == "no_route" and "10.244.0.2" in dropped["text"]
