"""The lesson's runtime (pods as namespaces, cached results) and the in-process plugin API that
the cluster lesson uses; everything under the test's own prefix and run directory."""

from __future__ import annotations

from pathlib import Path

import pytest

from cnilab.cni import plugin, spec
from cnilab.cni.runtime import Runtime, find_reference
from cnilab.errors import ConfigError
from cnilab.kernel import Kernel
from cnilab.probes import ping


def test_runtime_add_check_del_with_both_plugins(prefix: str, run_dir: Path) -> None:
    if find_reference("bridge") is None:
        pytest.skip("reference plugins not installed")
    rt = Runtime(prefix=prefix)
    try:
        web, call = rt.add("web")
        assert call.ok, call.stdout
        assert call.env["CNI_NETNS"] == f"/run/netns/{prefix}pod-web"
        db, ref = rt.add("db", plugin="bridge")  # same bridge, same address store
        assert ref.ok, ref.stdout
        addresses = {p.result["ips"][0]["address"] for p in rt.pods()}
        assert addresses == {"10.244.1.2/24", "10.244.1.3/24"}
        assert spec.validate_result(web.result, "1.1.0") == []
        assert ping(web.netns, db.result["ips"][0]["address"].split("/")[0]) is None
        assert rt.check("web").ok and rt.check("db").ok
        assert rt.status().ok and rt.gc().ok
        assert len(list((run_dir / "cni" / rt.lab_id / "networks" / "cnilab-pods").glob("10.*"))
                   ) == 2  # GC kept both known pods' addresses
        assert rt.delete("db").ok
        assert [p.name for p in rt.pods()] == ["web"]
        assert db.netns not in rt.kernel.observe([db.netns]).netns
    finally:
        removed = rt.teardown()
    assert f"{prefix}cnilab-node" in removed
    assert not any(n.startswith(prefix) for n in rt.kernel.observe([]).netns)


def test_runtime_refuses_a_duplicate_pod(prefix: str, run_dir: Path) -> None:
    rt = Runtime(prefix=prefix)
    try:
        assert rt.add("web")[1].ok
        with pytest.raises(ConfigError, match="already exists"):
            rt.add("web")
    finally:
        rt.teardown()


def test_in_process_api_attaches_a_pod_in_a_node_namespace(prefix: str, tmp_path: Path) -> None:
    node, pod = prefix + "node", prefix + "pod"
    config = {"cniVersion": "1.1.0", "name": "inproc", "type": "cnilab", "bridge": "cni0",
              "isGateway": True, "ipMasq": True,
              "ipam": {"type": "cnilab-ipam", "subnet": "10.244.2.0/24",
                       "routes": [{"dst": "0.0.0.0/0"}], "dataDir": str(tmp_path)}}
    with Kernel() as kernel:
        kernel.add_netns(node)
        kernel.add_netns(pod)
        result = plugin.add(config, "abc", pod, "eth0", node=node, kernel=kernel)
        assert result["ips"][0]["address"] == "10.244.2.2/24"
        assert result["interfaces"][2]["sandbox"] == f"/run/netns/{pod}"
        assert ping(pod, "10.244.2.1") is None
        plugin.check({**config, "prevResult": result}, "abc", pod, "eth0", node=node,
                     kernel=kernel)
        with pytest.raises(spec.CniError) as info:
            plugin.add(config, "abc2", pod, "eth0", node=node, kernel=kernel)
        assert info.value.code == spec.INTERFACE_EXISTS
        plugin.delete(config, "abc", pod, "eth0", node=node, kernel=kernel)
        plugin.delete(config, "abc", pod, "eth0", node=node, kernel=kernel)
        snap = kernel.observe([node, pod], nat_in=[node])
        assert snap.ns(pod).link("eth0") is None  # type: ignore[union-attr]
        assert [r for r in snap.ns(node).nat or () if "inproc" in r] == []  # type: ignore
        assert list((tmp_path / "inproc").glob("10.*")) == []
