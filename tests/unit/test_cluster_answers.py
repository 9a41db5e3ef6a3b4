"""What students type, question by question: accepted or rejected, as data.

Graded against recorded/cluster_status.json, a RECORDED cluster (not synthetic): `cnilab cluster
--prefix P up --pods-per-node 1`, then `cnilab cluster --prefix P status --json` with the prefix
removed (Linux 6.18). The rule: one answer, one value; what a hint command prints around the
value is fine, a list of candidates is not.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from cnilab.cluster import answers
from cnilab.cluster.quiz import Question, grade, questions

RECORDED = Path(__file__).parent / "recorded" / "cluster_status.json"
NAMES = {"exec": "cnilab cluster exec", "shell": "cnilab cluster shell", "lan": "cnilab-lan"}

# (question, what the student typed, accepted)
TYPED: list[tuple[str, str, bool]] = [
    # how many nodes
    ("nodes", "2", True),
    ("nodes", "two", True),
    ("nodes", "Two", True),
    ("nodes", "2 nodes", True),
    ("nodes", "2개", True),
    ("nodes", "두 개", True),
    ("nodes", "노드 2대", True),
    ("nodes", "3", False),
    ("nodes", "three", False),
    ("nodes", "2 or 3", False),
    # controlplane's address
    ("controlplane_ip", "172.17.0.24", True),
    ("controlplane_ip", "172.17.0.24/16", True),
    ("controlplane_ip", "ens3@if3 UP 172.17.0.24/16 fe80::42:acff:fe11:18/64", True),
    ("controlplane_ip", "inet 172.17.0.24  netmask 255.255.0.0  broadcast 172.17.255.255", True),
    ("controlplane_ip", "inet 172.17.0.24/16 brd 172.17.255.255 scope global ens3", True),
    ("controlplane_ip", "controlplane Ready control-plane 5m v1 172.17.0.24 <none>", True),
    ("controlplane_ip", "172.17.0.24 172.17.0.40", False),
    ("controlplane_ip", "172.17.0.2", False),
    # controlplane's interface
    ("controlplane_interface", "ens3", True),
    ("controlplane_interface", "ens3@if3", True),
    ("controlplane_interface", "ens3:", True),
    ("controlplane_interface", "interface ens3", True),
    ("controlplane_interface", "2: ens3@if3: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1500 "
                               "qdisc noqueue state UP mode DEFAULT group default qlen 1000",
     True),
    ("controlplane_interface", "ens3: flags=4163<UP,BROADCAST,RUNNING,MULTICAST>  mtu 1500",
     True),
    ("controlplane_interface", "ens3 cni0 docker0", False),
    ("controlplane_interface", "ens3, cni0", False),
    ("controlplane_interface", "eth0", False),
    ("controlplane_interface", "it's ens3", True),
    ("controlplane_interface", "lo", False),
    ("controlplane_interface", "ens3 or lo", False),
    # MACs
    ("controlplane_mac", "02:42:ac:11:00:18", True),
    ("controlplane_mac", "02-42-AC-11-00-18", True),
    ("controlplane_mac", "link/ether 02:42:ac:11:00:18 brd ff:ff:ff:ff:ff:ff", True),
    ("controlplane_mac", "02:42:ac:11:00:18 02:42:ac:11:00:28", False),
    ("controlplane_mac", "02:42:ac:11:00:28", False),
    ("node01_mac", "ether 02:42:ac:11:00:28  txqueuelen 1000  (Ethernet)", True),
    ("node01_mac", "02:42:ac:11:00:18, 02:42:ac:11:00:28", False),
    # node01's address
    ("node01_ip", "172.17.0.40", True),
    ("node01_ip", "172.17.0.40 172.17.0.24", False),
    # the runtime's bridge and its state
    ("runtime_bridge", "cni0", True),
    ("runtime_bridge", "CNI0", True),
    ("runtime_bridge", "cni0 docker0", False),
    ("runtime_bridge", "docker0", False),
    ("runtime_bridge", "the bridge is called cni0.", True),
    ("bridge_state", "UP", True),
    ("bridge_state", "up", True),
    ("bridge_state", "state UP", True),
    ("bridge_state", "UP,LOWER_UP", True),
    ("bridge_state", "<BROADCAST,MULTICAST,UP,LOWER_UP>", True),
    ("bridge_state", "flags=4163<UP,BROADCAST,RUNNING,MULTICAST>", True),
    ("bridge_state", "DOWN", False),
    ("bridge_state", "UP or DOWN", False),
    ("bridge_state", "<BROADCAST,MULTICAST>", False),
    # the default gateway
    ("default_gateway", "172.17.0.1", True),
    ("default_gateway", "default via 172.17.0.1 dev ens3", True),
    ("default_gateway", "_gateway", True),  # what `route` prints, from the node's hosts file
    ("default_gateway", "default         _gateway        0.0.0.0         UG", True),
    ("default_gateway", "0.0.0.0         172.17.0.1      0.0.0.0         UG", True),
    ("default_gateway", "172.17.0.1 172.17.0.24", False),
    ("default_gateway", "172.17.0.24", False),
    ("default_gateway", "node01", False),
    # ports
    ("scheduler_port", "10259", True),
    ("scheduler_port", "10259/tcp", True),
    ("scheduler_port", "tcp 10259", True),
    ("scheduler_port", "10259번", True),
    ("scheduler_port", "port 10259", True),
    ("scheduler_port", "127.0.0.1:10259", True),
    ("scheduler_port", "10251", False),
    ("scheduler_port", "10259 10257", False),
    ("etcd_port", "2379", True),
    ("etcd_port", "port 2379", True),
    ("etcd_port", "2379 (client)", True),
    ("etcd_port", "2380", False),
    ("etcd_port", "2379 2380", False),
    # the route to node01's pods
    ("node01_pods_route", "172.17.0.40", True),
    ("node01_pods_route", "node01", True),
    ("node01_pods_route", "10.244.1.0/24 via 172.17.0.40 dev ens3", True),
    ("node01_pods_route", "172.17.0.40 172.17.0.1", False),
    ("node01_pods_route", "_gateway", False),
    ("node01_pods_route", "node01 controlplane", False),
    ("node01_pods_route", "node01 or _gateway", False),
    ("default_gateway", "_gateway node01", False),
    # the NodePort range
    ("nodeport_range", "30000-32767", True),
    ("nodeport_range", "30000 to 32767", True),
    ("nodeport_range", "30000~32767", True),
    ("nodeport_range", "30000부터 32767까지", True),
    ("nodeport_range", "--service-node-port-range=30000-32767", True),
    ("nodeport_range", "30000", False),
    ("nodeport_range", "30000-32767 or 30000-32768", False),
]


@pytest.fixture(scope="module")
def asked() -> dict[str, Question]:
    status: dict[str, Any] = json.loads(RECORDED.read_text(encoding="utf-8"))
    return {q.id: q for q in questions(status, "en", NAMES)}


@pytest.mark.parametrize(("qid", "typed", "accepted"), TYPED,
                         ids=[f"{q}:{t}" for q, t, _ in TYPED])
def test_a_typed_answer_is_graded_as_a_student_means_it(asked: dict[str, Question], qid: str,
                                                        typed: str, accepted: bool) -> None:
    assert grade(asked[qid], typed).correct is accepted


def test_every_question_has_cases_both_ways() -> None:
    for qid in {q for q, _, _ in TYPED}:
        assert {ok for q, _, ok in TYPED if q == qid} == {True, False} or qid in (
            "node01_mac", "node01_ip"), qid


@pytest.mark.parametrize("typed", ["ens3 cni0 docker0", "172.17.0.1 172.17.0.24", "2379 2380"])
def test_a_list_of_candidates_gives_no_value(typed: str) -> None:
    kind = {"e": "name", "1": "ip", "2": "number"}[typed[0]]
    assert answers.read(typed, kind) is None
