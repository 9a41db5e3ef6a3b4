"""Where runtimes depend on the reference bridge plugin's behaviour, cnilab behaves the same:
a pinned bridge MAC, a second network's default route, the runtime's MAC and IP requests, the
node's own namespace refused, and rule tags that stay bounded for any container ID. Every
plugin runs inside node namespaces this test made."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from helpers import reference_skip

from cnilab.cni import spec
from cnilab.cni.bridge import host_veth_name
from cnilab.cni.exec import Call
from cnilab.lab.proofs import ping
from tests.kernel.cni_sandbox import Sandbox

REFERENCE_SKIP = reference_skip("bridge", "host-local")


def conf(data: Path, plugin: str = "cnilab", name: str = "net1", bridge: str = "cni0",
         subnet: str = "10.77.0.0/24", **extra: Any) -> dict[str, Any]:
    """A bridge network with a default route; cnilab + cnilab-ipam or bridge + host-local."""
    ipam = "cnilab-ipam" if plugin == "cnilab" else "host-local"
    return {"cniVersion": "1.0.0", "name": name, "type": plugin, "bridge": bridge,
            "isGateway": True, "ipMasq": True,
            "ipam": {"type": ipam, "subnet": subnet, "routes": [{"dst": "0.0.0.0/0"}],
                     "dataDir": str(data)}, **extra}


def ok(call: Call) -> dict[str, Any]:
    """The result of a call that must succeed."""
    assert call.ok, call.stdout + call.stderr
    return call.answer or {}


def error_code(call: Call) -> int:
    """The error code of a call that must fail with an error object."""
    assert not call.ok and call.answer is not None, call.stdout
    return int(call.answer["code"])


def nat_rules(box: Sandbox) -> list[str]:
    """The node's NAT rules cnilab tagged."""
    ns = box.kernel.observe([box.node], nat_in=[box.node]).ns(box.node)
    assert ns is not None
    return [r for r in ns.nat or () if "cnilab net " in r]


def test_bridge_mac_stays_when_the_pod_with_the_lowest_mac_leaves(box: Sandbox,
                                                                  tmp_path: Path) -> None:
    cfg = conf(tmp_path)
    pods = [box.pod(f"p{i}") for i in range(4)]
    results = [ok(box.call("cnilab", "ADD", cfg, f"c{i}", pods[i])) for i in range(4)]
    gateway_mac = results[0]["interfaces"][0]["mac"]
    assert all(r["interfaces"][0]["mac"] == gateway_mac for r in results)
    # An unpinned bridge takes its lowest port MAC: remove exactly that port's pod.
    ports = {box.kernel.mac_of(box.node, host_veth_name("net1", f"c{i}", "eth0")): i
             for i in range(4)}
    lowest = ports[min(ports)]  # type: ignore[type-var]
    ok(box.call("cnilab", "DEL", cfg, f"c{lowest}", pods[lowest]))
    assert box.kernel.mac_of(box.node, "cni0") == gateway_mac
    for i in range(4):
        if i != lowest:
            assert ping(pods[i], "10.77.0.1") is None


@pytest.mark.parametrize("plugin", ["cnilab", "bridge"])
def test_second_network_default_route_goes_first(box: Sandbox, tmp_path: Path,
                                                 plugin: str) -> None:
    if plugin == "bridge" and REFERENCE_SKIP:
        pytest.skip(REFERENCE_SKIP)
    pod = box.pod("p")
    ok(box.call(plugin, "ADD", conf(tmp_path), "c1", pod))
    second = conf(tmp_path, name="net2", bridge="cni1", subnet="10.78.0.0/24")
    ok(box.call(plugin, "ADD", second, "c1", pod, ifname="eth1"))
    routes = box.kernel.observe([pod]).ns(pod).routes  # type: ignore[union-attr]
    defaults = [(r.gateway, r.dev) for r in routes if r.dst == "default"]
    # What the reference does (netlink RouteAddEcmp: no NLM_F_EXCL, i.e. `ip route prepend`):
    assert defaults == [("10.78.0.1", "eth1"), ("10.77.0.1", "eth0")]
    ok(box.call(plugin, "DEL", second, "c1", pod, ifname="eth1"))
    ok(box.call(plugin, "DEL", conf(tmp_path), "c1", pod))


@pytest.mark.parametrize("plugin", ["cnilab", "bridge"])
def test_mac_and_ip_asked_in_cni_args_are_honoured(box: Sandbox, tmp_path: Path,
                                                   plugin: str) -> None:
    if plugin == "bridge" and REFERENCE_SKIP:
        pytest.skip(REFERENCE_SKIP)
    pod = box.pod("p")
    args = "IgnoreUnknown=1;MAC=02:aa:bb:cc:dd:01;IP=10.77.0.42"
    result = ok(box.call(plugin, "ADD", conf(tmp_path), "c1", pod, args=args))
    eth0 = box.kernel.get_link(pod, "eth0")
    assert eth0 is not None and eth0.mac == "02:aa:bb:cc:dd:01"
    assert eth0.addresses == ("10.77.0.42/24",)
    assert result["interfaces"][2]["mac"] == "02:aa:bb:cc:dd:01"
    assert result["ips"][0]["address"] == "10.77.0.42/24"
    ok(box.call(plugin, "DEL", conf(tmp_path), "c1", pod, args=args))


def test_runtime_config_mac_and_ips_are_honoured_port_mappings_passed_over(
        box: Sandbox, tmp_path: Path) -> None:
    pod = box.pod("p")
    runtime = {"mac": "02:aa:bb:cc:dd:02", "ips": ["10.77.0.43/24"],
               "portMappings": [{"hostPort": 8080, "containerPort": 80, "protocol": "tcp"}]}
    cfg = conf(tmp_path, runtimeConfig=runtime)
    result = ok(box.call("cnilab", "ADD", cfg, "c1", pod, args="MAC=02:aa:bb:cc:dd:01"))
    assert result["interfaces"][2]["mac"] == "02:aa:bb:cc:dd:02"  # runtimeConfig wins
    assert result["ips"][0]["address"] == "10.77.0.43/24"
    ok(box.call("cnilab", "DEL", cfg, "c1", pod))


def test_a_multicast_or_malformed_mac_is_refused_and_leaves_nothing(box: Sandbox,
                                                                    tmp_path: Path) -> None:
    pod = box.pod("p")
    for mac in ("01:00:5e:00:00:01", "02:aa:bb", "zz:aa:bb:cc:dd:ee"):
        call = box.call("cnilab", "ADD", conf(tmp_path), "c1", pod, args=f"MAC={mac}")
        assert error_code(call) == spec.INVALID_ENVIRONMENT
        assert call.answer is not None and mac in call.answer["msg"]
    assert box.kernel.get_link(box.node, "cni0") is None
    assert not list((tmp_path / "net1").glob("10.*"))  # no address was handed out


@pytest.mark.parametrize("netns", ["/proc/self/ns/net", "node-path"])
def test_the_nodes_own_namespace_is_refused(box: Sandbox, tmp_path: Path, netns: str) -> None:
    path = f"/run/netns/{box.node}" if netns == "node-path" else netns
    before = box.kernel.observe([box.node]).ns(box.node)
    for command in ("ADD", "CHECK", "DEL"):
        cfg = conf(tmp_path, prevResult={"cniVersion": "1.0.0"}) if command == "CHECK" \
            else conf(tmp_path)
        call = box.call("cnilab", command, cfg, "c1", path)
        assert error_code(call) == spec.INVALID_ENVIRONMENT
        assert "node's own network namespace" in call.answer["msg"]  # type: ignore[index]
    after = box.kernel.observe([box.node]).ns(box.node)
    assert after == before  # no route, link or address appeared in the node
    assert not list((tmp_path / "net1").glob("10.*"))


@pytest.mark.parametrize("length", [230, 1024])
def test_long_container_ids_leave_no_rule_behind(box: Sandbox, tmp_path: Path,
                                                 length: int) -> None:
    cid = ("a1b2c3d4" * 200)[:length]
    other = ("f0e1d2c3" * 200)[:length]
    name = "n" * 200  # a long network name too (the IPAM store is a folder named after it)
    cfg = conf(tmp_path, name=name)
    pods = [box.pod("p"), box.pod("q")]
    first = ok(box.call("cnilab", "ADD", cfg, cid, pods[0]))
    ok(box.call("cnilab", "ADD", cfg, other, pods[1]))
    rules = nat_rules(box)
    assert len(rules) == 4 and all(len(r) < 256 for r in rules)
    ok(box.call("cnilab", "CHECK", {**cfg, "prevResult": first}, cid, pods[0]))
    keep = {**cfg, "cni.dev/valid-attachments": [{"containerID": cid, "ifname": "eth0"}]}
    keep["cniVersion"] = "1.1.0"
    ok(box.call("cnilab", "GC", keep))
    assert len(nat_rules(box)) == 2  # the other's two rules went, ours stayed
    ok(box.call("cnilab", "DEL", cfg, cid, pods[0]))
    assert nat_rules(box) == []
    assert not list((tmp_path / name).glob("10.*"))
