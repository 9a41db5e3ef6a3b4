"""The cluster plan and its ops: defaults from the course, validation, routes; no root needed."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Network

import pytest

from cnilab.cluster.plan import MAX_NODES, build_plan, docker_mac, parse_network
from cnilab.cluster.steps import SetMac, lesson_steps, network_ops, route_ops
from cnilab.errors import ConfigError
from cnilab.ops import AddBridge, AddRoute, AddRule, LinkUp


def test_defaults_are_the_course_lab_output() -> None:
    plan = build_plan()
    cp, n1 = plan.nodes
    assert (cp.name, str(cp.address), cp.mac) == ("controlplane", "172.17.0.24/16",
                                                  "02:42:ac:11:00:18")
    assert (n1.name, str(n1.address), n1.mac) == ("node01", "172.17.0.40/16", "02:42:ac:11:00:28")
    assert (str(cp.pod_cidr), str(cp.bridge_address)) == ("10.244.0.0/24", "10.244.0.1/24")
    assert (str(n1.pod_cidr), str(n1.bridge_address)) == ("10.244.1.0/24", "10.244.1.1/24")


@pytest.mark.parametrize(("ip", "mac"), [("172.17.0.2", "02:42:ac:11:00:02"),
                                         ("10.0.255.1", "02:42:0a:00:ff:01")])
def test_docker_mac_is_02_42_then_the_address_bytes(ip: str, mac: str) -> None:
    assert docker_mac(IPv4Address(ip)) == mac


def test_more_nodes_are_named_and_numbered_in_order() -> None:
    plan = build_plan(nodes=4)
    assert [n.name for n in plan.nodes] == ["controlplane", "node01", "node02", "node03"]
    assert [str(n.address.ip) for n in plan.nodes][2:] == ["172.17.0.41", "172.17.0.42"]
    assert len({n.mac for n in plan.nodes}) == 4


def test_largest_cluster_has_distinct_addresses_and_cidrs() -> None:
    plan = build_plan(nodes=MAX_NODES, pods_per_node=0)
    assert len({n.address for n in plan.nodes}) == MAX_NODES
    assert len({n.pod_cidr for n in plan.nodes}) == MAX_NODES
    assert IPv4Address("172.17.0.1") not in {n.address.ip for n in plan.nodes}  # the gateway


def test_prefix_goes_before_every_namespace() -> None:
    plan = build_plan(nodes=2, pods_per_node=1, prefix="t1-")
    assert plan.namespaces() == ("t1-cnilab-lan", "t1-cnilab-world", "t1-controlplane",
                                 "t1-node01", "t1-controlplane-pod1", "t1-node01-pod1")
    assert plan.lab_id == "t1-cluster"


@pytest.mark.parametrize(("kwargs", "words"), [
    ({"nodes": 0}, "--nodes must be between 1 and 200"),
    ({"nodes": 201}, "--nodes must be between 1 and 200"),
    ({"pods_per_node": -1}, "--pods-per-node"),
    ({"pods_per_node": 251}, "--pods-per-node"),
    ({"pod_network": IPv4Network("172.16.0.0/12")}, "overlaps the cluster LAN"),
    ({"pod_network": IPv4Network("172.18.0.0/16")}, "overlaps docker0"),
    ({"pod_network": IPv4Network("203.0.0.0/8")}, "overlaps the outside world"),
    ({"nodes": 3, "pod_network": IPv4Network("10.9.0.0/23")}, "too few /24"),
    ({"prefix": "a/b"}, "namespace name"),
])
def test_bad_options_are_refused_in_one_sentence(kwargs: dict, words: str) -> None:
    with pytest.raises(ConfigError) as e:
        build_plan(**kwargs)
    assert words in e.value.message
    assert "\n" not in e.value.message


def test_pod_network_text_must_be_a_cidr() -> None:
    with pytest.raises(ConfigError, match="not an IPv4 network"):
        parse_network("10.244.0.1/16", "--pod-network")
    assert parse_network("10.32.0.0/12", "x") == IPv4Network("10.32.0.0/12")


def test_every_node_routes_each_other_nodes_pod_cidr_to_that_node() -> None:
    plan = build_plan(nodes=3)
    for node in plan.nodes:
        routes = {(op.dst, op.gateway) for op in route_ops(plan, node)
                  if isinstance(op, AddRoute)}
        want = {(str(o.pod_cidr), str(o.address.ip)) for o in plan.nodes if o != node}
        assert routes == want
    cp_routes = [op.command(None) for op in route_ops(plan, plan.controlplane)
                 if isinstance(op, AddRoute)]
    assert cp_routes[0] == "ip -n controlplane route add 10.244.1.0/24 via 172.17.0.40"


def test_node_has_default_route_masquerade_and_docker0_up_as_in_the_course() -> None:
    plan = build_plan()
    ops = [op for op in network_ops(plan) if op.netns == "node01"]
    assert AddRoute("node01", "default", "172.17.0.1") in ops
    assert AddBridge("node01", "docker0") in ops
    # Up, as on the course's nodes; with no port it has no carrier (the kernel tests show it).
    assert LinkUp("node01", "docker0") in ops
    assert SetMac("node01", "ens3", "02:42:ac:11:00:28") in ops
    rule = next(op for op in ops if isinstance(op, AddRule))
    assert rule.spec == ("-s", "10.244.1.0/24", "!", "-d", "10.244.0.0/16", "-j", "MASQUERADE")


def test_the_lessons_sections_hold_every_op_of_the_network_in_order() -> None:
    plan = build_plan(nodes=3)
    sections = lesson_steps(plan)
    assert [s.number for s in sections] == [1, 2, 3, 4, 5, 6]
    assert [op for s in sections[:4] for op in s.ops] == network_ops(plan)
    assert len(sections[4].ops) == 4 + 2 * 3  # the control plane's four, kubelet + proxy each
    assert len(sections[5].ops) == 2 * 2 * 3  # a namespace and a CNI ADD per pod


def test_network_ops_touch_only_the_clusters_namespaces() -> None:
    plan = build_plan(nodes=3, prefix="t2-")
    names = set(plan.namespaces())
    for op in network_ops(plan):
        assert (op.netns is None and type(op).__name__ == "AddNetns") or op.netns in names


def test_set_mac_prints_the_ip_command() -> None:
    assert SetMac("n", "ens3", "02:42:ac:11:00:18").command(None) == (
        "ip -n n link set ens3 address 02:42:ac:11:00:18")
