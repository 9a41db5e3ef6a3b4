"""One real two-node cluster (one pod per node), checked with ip, ss and real packets."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from ipaddress import IPv4Address, IPv4Network

import pytest
from helpers import cluster_up

from cnilab.cluster import components
from cnilab.cluster.cluster import Cluster
from cnilab.cluster.status import read_status
from cnilab.kernel.sockets import tcp_sockets
from cnilab.lab import proofs


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    run_dir = tmp_path_factory.mktemp("cluster-run")
    with cluster_up(run_dir) as c:
        yield c


def ip(*args: str) -> str:
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=True).stdout


def test_routes_are_exactly_the_courses_on_every_node(cluster: Cluster) -> None:
    p = cluster.plan.prefix
    want = {
        "controlplane": {
            "default via 172.17.0.1 dev ens3",
            "10.244.0.0/24 dev cni0 proto kernel scope link src 10.244.0.1",
            "10.244.1.0/24 via 172.17.0.40 dev ens3",
            "172.17.0.0/16 dev ens3 proto kernel scope link src 172.17.0.24",
            # docker0 as on the course's nodes: up, no carrier, its route marked linkdown.
            "172.18.0.0/24 dev docker0 proto kernel scope link src 172.18.0.1 linkdown"},
        "node01": {
            "default via 172.17.0.1 dev ens3",
            "10.244.0.0/24 via 172.17.0.24 dev ens3",
            "10.244.1.0/24 dev cni0 proto kernel scope link src 10.244.1.1",
            "172.17.0.0/16 dev ens3 proto kernel scope link src 172.17.0.40",
            # docker0 as on the course's nodes: up, no carrier, its route marked linkdown.
            "172.18.0.0/24 dev docker0 proto kernel scope link src 172.18.0.1 linkdown"},
    }
    for node, lines in want.items():
        # Exactly as `ip route` prints the course's routes: cnilab adds them with proto boot.
        # docker0's route is marked linkdown by the kernel's link-watch queue, which runs at
        # most once a second: wait for it (bounded), as a student typing `ip route` would.
        deadline = time.monotonic() + 10
        while True:
            got = {ln.strip() for ln in ip("-n", p + node, "-4", "route", "show").splitlines()}
            if got == lines or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        assert got == lines, node


def test_nodes_have_ens3_with_docker_macs_cni0_running_docker0_up_without_carrier(
        cluster: Cluster) -> None:
    status = read_status(cluster)
    got = {n["name"]: (n["interface"], n["ip"], n["mac"], n["pod_cidr"]) for n in status["nodes"]}
    assert got == {"controlplane": ("ens3", "172.17.0.24", "02:42:ac:11:00:18", "10.244.0.0/24"),
                   "node01": ("ens3", "172.17.0.40", "02:42:ac:11:00:28", "10.244.1.0/24")}
    for n in status["nodes"]:
        bridges = {b["name"]: b for b in n["bridges"]}
        assert bridges["cni0"]["up"] and bridges["cni0"]["carrier"]
        assert len(bridges["cni0"]["ports"]) == 1
        assert bridges["docker0"]["up"] and not bridges["docker0"]["carrier"]
        assert bridges["docker0"]["ports"] == []
        assert bridges["docker0"]["addresses"] == ["172.18.0.1/24"]
        assert IPv4Address(n["pods"][0]["ip"]) in IPv4Network(n["pod_cidr"])
    assert status["gateway"]["ip"] == "172.17.0.1"
    assert sorted(status["lan"]["ports"]) == ["controlplane", "node01"]


def test_docker0_looks_as_in_the_course_up_but_not_running(cluster: Cluster) -> None:
    # The course's `ifconfig docker0` and `ip link`: UP without RUNNING / LOWER_UP.
    node = cluster.plan.prefix + "controlplane"
    ifconfig = subprocess.run(["ip", "netns", "exec", node, "ifconfig", "docker0"],
                              capture_output=True, text=True, check=True).stdout
    assert ifconfig.startswith("docker0: flags=4099<UP,BROADCAST,MULTICAST>"), ifconfig
    cni0 = subprocess.run(["ip", "netns", "exec", node, "ifconfig", "cni0"],
                          capture_output=True, text=True, check=True).stdout
    assert cni0.startswith("cni0: flags=4163<UP,BROADCAST,RUNNING,MULTICAST>"), cni0
    link = ip("-n", node, "link", "show", "docker0")
    assert "<NO-CARRIER,BROADCAST,MULTICAST,UP>" in link and "state DOWN" in link
    assert "vethgone" not in ip("-n", node, "link", "show")  # the port came and went


def test_the_lessons_bridge_text_says_what_the_kernel_shows(cluster: Cluster) -> None:
    from cnilab.lessons import load

    node = cluster.plan.prefix + "controlplane"
    ifconfig = subprocess.run(["ip", "netns", "exec", node, "ifconfig", "docker0"],
                              capture_output=True, text=True, check=True).stdout
    flags = ifconfig.split()[1]  # flags=4099<UP,BROADCAST,MULTICAST>
    route = next(ln.strip() for ln in ip("-n", node, "route").splitlines() if "docker0" in ln)
    link = ip("-n", node, "link", "show", "docker0")
    for lang in ("en", "ko"):
        text = load("cluster", lang).step(3)
        assert f"`{flags}`" in text.what and f"`{route}`" in (text.course_note or "")
        assert "`<NO-CARRIER,BROADCAST,MULTICAST,UP>`" in text.what
        assert "<NO-CARRIER,BROADCAST,MULTICAST,UP>" in link and "`state DOWN`" in text.what


def test_pods_reach_each_other_across_nodes_without_nat(cluster: Cluster) -> None:
    plan = cluster.plan
    cp_pod, n1_pod = (plan.pod_netns(p) for p in plan.all_pods())
    assert proofs.ping(cp_pod, "10.244.1.2") is None
    assert proofs.ping(n1_pod, "10.244.0.2") is None
    src, seen = proofs.seen_source(cp_pod, n1_pod, "10.244.1.2")
    assert src == "10.244.0.2", seen


def test_pods_reach_the_outside_through_both_nats(cluster: Cluster) -> None:
    plan = cluster.plan
    world = plan.world_netns
    for pod in plan.all_pods():
        assert proofs.ping(plan.pod_netns(pod), "203.0.113.1") is None
        # The node hides the pod behind 172.17.0.x; the gateway hides the LAN behind its uplink.
        src, seen = proofs.seen_source(plan.pod_netns(pod), world, "203.0.113.1")
        assert src == "203.0.113.2", seen


def test_ss_in_controlplane_shows_every_port_with_its_process(cluster: Cluster) -> None:
    p = cluster.plan.prefix
    out = subprocess.run(["ip", "netns", "exec", p + "controlplane", "ss", "-ltnp"],
                         capture_output=True, text=True, check=True).stdout
    # `*:PORT`: ss's way of printing `::` taking IPv4 too (netstat: tcp6 :::6443).
    want = [("*:6443", "kube-apiserver"), ("127.0.0.1:2379", "etcd"),
            ("172.17.0.24:2379", "etcd"), ("172.17.0.24:2380", "etcd"),
            ("127.0.0.1:10259", "kube-scheduler"), ("127.0.0.1:10257", "kube-controller"),
            ("*:10250", "kubelet"), ("*:10256", "kube-proxy"),
            ("127.0.0.1:10249", "kube-proxy")]
    lines = out.splitlines()
    for address, name in want:
        assert any(f" {address} " in ln and f'(("{name}",' in ln for ln in lines), (address, out)
    node01 = subprocess.run(["ip", "netns", "exec", p + "node01", "ss", "-ltnp"],
                            capture_output=True, text=True, check=True).stdout
    assert "kubelet" in node01 and "etcd" not in node01


def test_etcd_client_port_holds_the_established_connections(cluster: Cluster) -> None:
    socks = tcp_sockets(cluster.plan.netns(cluster.plan.controlplane))
    clients = [s for s in socks if s.established and s.local_port == 2379]
    assert len(clients) >= 2 and all(s.process == "etcd" for s in clients)
    assert not [s for s in socks if s.established and s.local_port == 2380]


def test_nothing_listens_in_this_machines_namespace(cluster: Cluster) -> None:
    live = components.running()
    pids = {pid for token, found in live.items() if f"={cluster.plan.lab_id}/" in token
            for pid in found}
    assert len(pids) == 8  # 4 control-plane components + kubelet and kube-proxy on two nodes
    assert not [s for s in tcp_sockets(None) if s.pid in pids]


def test_quiz_grades_right_and_wrong_answers(cluster: Cluster) -> None:
    from cnilab.cluster.quiz import grade, questions

    asked = {q.id: q for q in questions(read_status(cluster), "en", {"exec": "x", "lan": "y"})}
    assert grade(asked["scheduler_port"], "10259").correct
    assert not grade(asked["scheduler_port"], "10257").correct
    assert grade(asked["etcd_port"], "2379").correct
    assert not grade(asked["etcd_port"], "2380").correct
    assert grade(asked["node01_pods_route"], "172.17.0.40").correct
