"""The cluster looks like the course's nodes, and the quiz grades what students type, on a real
cluster: route, kubectl, ifconfig, netstat as a student runs them inside a node, and what the
lesson says about bridges and carrier checked against the kernel."""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import Cnilab, cluster_up

from cnilab.cluster.cluster import Cluster
from cnilab.cluster.status import read_status
from cnilab.lessons import load


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("cluster-run")


@pytest.fixture(scope="module")
def cluster(run_dir: Path) -> Iterator[Cluster]:
    with cluster_up(run_dir) as c:
        yield c


@pytest.fixture(scope="module")
def cli(cluster: Cluster, run_dir: Path) -> Cnilab:
    return Cnilab(cluster.plan.prefix, run_dir)


def in_node(cli: Cnilab, node: str, *argv: str) -> str:
    """What a command prints inside a node, run as a student does (`cnilab cluster exec`)."""
    done = cli.run("cluster", "exec", node, "--", *argv)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_route_in_a_node_names_the_gateway_and_node01_as_the_course_does(cli: Cnilab) -> None:
    lines = [ln.split() for ln in in_node(cli, "controlplane", "route").splitlines()]
    assert lines[2][:4] == ["default", "_gateway", "0.0.0.0", "UG"]
    assert ["10.244.1.0", "node01", "255.255.255.0", "UG"] in [ln[:4] for ln in lines]
    assert "172.17.0.1" in in_node(cli, "controlplane", "route", "-n")  # -n: numbers only
    for lang in ("en", "ko"):  # what the lesson says `route` prints
        why = load("cluster", lang).step(2).why
        assert "`_gateway`" in why and "`node01`" in why and "/etc/netns/controlplane/hosts" in why


def test_the_hosts_file_is_seen_only_inside_the_node_and_down_removes_it(
        cluster: Cluster, cli: Cnilab) -> None:
    path = Path("/etc/netns", cluster.plan.prefix + "node01", "hosts")
    assert path.exists() and (path.stat().st_mode & 0o777) == 0o644
    assert "_gateway" in in_node(cli, "node01", "cat", "/etc/hosts")
    assert "_gateway" not in Path("/etc/hosts").read_text(encoding="utf-8")  # the machine's
    assert in_node(cli, "node01", "hostname").strip() == "node01"


def test_a_planted_hosts_file_stops_up_and_survives_down(run_dir: Path) -> None:
    from tests.conftest import remove_prefixed_netns

    prefix = f"ct{uuid.uuid4().hex[:6]}-"
    folder = Path("/etc/netns", prefix + "controlplane")
    folder.mkdir(parents=True)
    planted = folder / "hosts"
    planted.write_text("10.9.9.9 not-cnilabs\n", encoding="utf-8")
    runner = Cnilab(prefix, run_dir / "planted")
    try:
        done = runner.run("cluster", "up", "--nodes", "1", "--pods-per-node", "0")
        assert done.returncode == 4 and str(planted) in done.stderr, done.stderr
        assert not [n for n in os.listdir("/run/netns") if n.startswith(prefix)]
        runner.run("cluster", "down")
        assert planted.read_text(encoding="utf-8") == "10.9.9.9 not-cnilabs\n"
    finally:
        runner.run("cluster", "down")
        planted.unlink()
        folder.rmdir()
        remove_prefixed_netns(prefix)


def test_kubectl_get_node_wide_prints_kubectls_columns_from_the_kernel(
        cluster: Cluster, cli: Cnilab) -> None:
    header, *rows = in_node(cli, "controlplane", "kubectl", "get", "node", "-o", "wide"
                            ).splitlines()
    assert header.split() == ["NAME", "STATUS", "ROLES", "AGE", "VERSION", "INTERNAL-IP",
                              "EXTERNAL-IP", "OS-IMAGE", "KERNEL-VERSION", "CONTAINER-RUNTIME"]
    ip_col, kernel_col = header.index("INTERNAL-IP"), header.index("KERNEL-VERSION")
    for row in rows:  # every address as `ip` shows it in that node
        name = row.split()[0]
        brief = in_node(cli, name, "ip", "-br", "-4", "addr", "show", "ens3").split()
        assert row[ip_col:].split()[0] == brief[2].split("/")[0]
        assert row[kernel_col:].split()[0] == os.uname().release
        assert row.split()[1] == "Ready"
    quiz = {q["id"]: q["answer"] for q in json.loads(
        cli.run("cluster", "quiz", "--answers", "--json").stdout)}
    assert str(len(rows)) == quiz["nodes"]  # question 1, answered the course's way


def test_kubectl_follows_the_kernel_a_node_without_kubelet_is_not_ready(
        cluster: Cluster, cli: Cnilab) -> None:
    from cnilab.cluster import components

    token = f"{components.TOKEN}{cluster.plan.lab_id}/node01/kubelet"
    try:
        components.stop({token: components.running().get(token, [])})
        rows = in_node(cli, "controlplane", "kubectl", "get", "nodes").splitlines()[1:]
        assert {r.split()[0]: r.split()[1] for r in rows} == {
            "controlplane": "Ready", "node01": "NotReady"}
    finally:
        with cluster.locked():
            cluster.up()  # starts node01's kubelet again
    assert "not found" in cli.run("cluster", "exec", "node01", "--", "kubectl", "get", "node",
                                  "node09").stderr


def test_kubectl_is_there_inside_a_cluster_shell(cli: Cnilab) -> None:
    done = subprocess.run(cli.argv("cluster", "shell", "node01"), input="kubectl get nodes\n",
                          capture_output=True, text=True, env=cli.env(), timeout=60,
                          check=False)
    assert re.search(r"^node01\s+Ready\s+<none>", done.stdout, re.M), done.stdout + done.stderr


def test_ifconfig_shows_broadcasts_and_a_docker_mac_on_docker0(cli: Cnilab) -> None:
    ens3 = in_node(cli, "controlplane", "ifconfig", "ens3")
    assert "inet 172.17.0.24  netmask 255.255.0.0  broadcast 172.17.255.255" in ens3
    docker0 = in_node(cli, "controlplane", "ifconfig", "docker0")
    assert "broadcast 172.18.0.255" in docker0
    assert re.search(r"ether 02:42(:[0-9a-f]{2}){4} ", docker0), docker0
    assert docker0.startswith("docker0: flags=4099<UP,BROADCAST,MULTICAST>")  # still no carrier
    assert "broadcast 10.244.0.255" in in_node(cli, "controlplane", "ifconfig", "cni0")


def test_netstat_shows_the_api_server_on_ipv6s_any_address(cluster: Cluster, cli: Cnilab) -> None:
    lines = in_node(cli, "controlplane", "netstat", "-ntlp").splitlines()
    for port, name in ((6443, "kube-apiserve"), (10250, "kubelet"), (10256, "kube-proxy")):
        assert any(ln.split()[0] == "tcp6" and ln.split()[3] == f":::{port}"
                   and name in ln for ln in lines), (port, lines)
    ports = {(p["address"], p["port"]): p for p in read_status(cluster)["nodes"][0]["ports"]}
    # node01's kubelet and kube-proxy (IPv4 clients of a socket on ::) are counted too
    assert ports[("::", 6443)]["established"] >= 6


def ip(*args: str) -> str:
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=True).stdout


def wait_link(netns: str, name: str, wanted: str) -> str:
    """`ip link show` once the kernel's link-watch has settled on `wanted` (bounded)."""
    deadline = time.monotonic() + 10
    while True:
        shown = ip("-n", netns, "link", "show", name)
        if wanted in shown or time.monotonic() > deadline:
            return shown
        time.sleep(0.05)


def test_the_lessons_carrier_sentences_are_what_the_kernel_does(prefix: str) -> None:
    ns = prefix + "br"
    subprocess.run(["ip", "netns", "add", ns], check=True)
    ip("-n", ns, "link", "add", "br9", "type", "bridge")
    ip("-n", ns, "link", "set", "br9", "up")
    never = wait_link(ns, "br9", "state UNKNOWN")  # never had a port: the carrier it began with
    assert "<BROADCAST,MULTICAST,UP,LOWER_UP>" in never and "state UNKNOWN" in never
    ip("-n", ns, "link", "add", "p1", "type", "veth", "peer", "name", "p1c")
    ip("-n", ns, "link", "set", "p1", "master", "br9")
    ip("-n", ns, "link", "set", "p1", "up")
    ip("-n", ns, "link", "set", "p1c", "up")
    with_port = wait_link(ns, "br9", "state UP")  # a port with carrier
    assert "LOWER_UP" in with_port and "state UP" in with_port
    ip("-n", ns, "link", "del", "p1")
    gone = wait_link(ns, "br9", "state DOWN")  # the last port went: docker0's case
    assert "<NO-CARRIER,BROADCAST,MULTICAST,UP>" in gone and "state DOWN" in gone
    for lang in ("en", "ko"):
        why = load("cluster", lang).step(3).why
        assert "`<BROADCAST,MULTICAST,UP,LOWER_UP>`" in why and "`state UNKNOWN`" in why
        assert "ip link add br9 type bridge; ip link set br9 up" in why
        assert "NO-CARRIER" in why


def test_the_interface_feedback_names_the_peer_index_ip_prints(cluster: Cluster,
                                                               cli: Cnilab) -> None:
    from cnilab.cluster.quiz import questions

    brief = in_node(cli, "controlplane", "ip", "-br", "link", "show", "ens3").split()[0]
    peer = re.fullmatch(r"ens3@if(\d+)", brief)
    assert peer is not None
    for lang in ("en", "ko"):
        q = next(q for q in questions(read_status(cluster), lang, {"exec": "x", "shell": "y",
                                                                   "lan": "z"})
                 if q.id == "controlplane_interface")
        assert set(re.findall(r"ens3@if\d+", q.explanation)) == {brief}
        assert set(re.findall(r"@if(\d+)", q.explanation)) == {peer.group(1)}


# What students type, graded by `cnilab cluster quiz --answer` on the real cluster.
TYPED = [
    ("scheduler_port", "10259/tcp", 0), ("scheduler_port", "tcp 10259", 0),
    ("scheduler_port", "10259번", 0), ("etcd_port", "port 2379", 0),
    ("etcd_port", "2379 (client)", 0), ("nodes", "two", 0), ("nodes", "2 nodes", 0),
    ("bridge_state", "state UP", 0), ("bridge_state", "UP,LOWER_UP", 0),
    ("bridge_state", "<BROADCAST,MULTICAST,UP,LOWER_UP>", 0),
    ("nodeport_range", "30000 to 32767", 0), ("default_gateway", "_gateway", 0),
    ("controlplane_interface", "ens3 cni0 docker0", 1),
    ("controlplane_mac", "02:42:ac:11:00:18 02:42:ac:11:00:28", 1),
    ("default_gateway", "172.17.0.1 172.17.0.24", 1),
]


@pytest.mark.parametrize(("qid", "typed", "code"), TYPED)
def test_the_quiz_on_a_real_cluster_grades_what_students_type(cli: Cnilab, qid: str,
                                                               typed: str, code: int) -> None:
    done = cli.run("cluster", "quiz", "--answer", f"{qid}={typed}")
    assert done.returncode == code, done.stdout + done.stderr


def test_a_wrong_node_count_says_where_the_answer_was_read(cli: Cnilab) -> None:
    done = cli.run("cluster", "quiz", "--answer", "nodes=3")
    shown = " ".join(done.stdout.split())
    assert done.returncode == 1 and "the kernel says" not in shown
    assert "lan0 has 2 ports, one per node" in shown and "lists 2 nodes" in shown
