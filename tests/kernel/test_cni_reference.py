"""cnilab next to the reference plugins (containernetworking-plugins): the same state as
bridge + host-local, host-local's role played by cnilab-ipam, and tuning + portmap chained
after cnilab. Every plugin runs inside node namespaces this test made; the reference plugins
speak CNI up to 1.0.0, so that is the version used here."""

from __future__ import annotations

import shlex
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers import reference_skip

from cnilab.cni import spec
from cnilab.kernel import run_in_netns
from cnilab.lab.proofs import ping
from cnilab.state import Namespace
from tests.kernel.cni_sandbox import Sandbox

SKIP = reference_skip("bridge", "host-local", "tuning", "portmap")
pytestmark = pytest.mark.skipif(SKIP is not None, reason=SKIP or "")

SUBNET = "10.78.0.0/24"
POD_IP = "10.78.0.2"


@pytest.fixture
def boxes(prefix: str, tmp_path: Path) -> Iterator[tuple[Sandbox, Sandbox]]:
    """Two nodes: one for cnilab, one for the reference plugins."""
    made: list[Sandbox] = []
    try:
        for side in ("a-", "b-"):
            made.append(Sandbox(prefix + side, tmp_path / "bin"))
        yield made[0], made[1]
    finally:
        for box in made:
            box.close()


def config(plugin: str, ipam: str, data_dir: Path) -> dict[str, Any]:
    """The same network for every plugin pair; only the types differ."""
    return {"cniVersion": "1.0.0", "name": "testnet", "type": plugin, "bridge": "cni0",
            "isGateway": True, "ipMasq": True,
            "ipam": {"type": ipam, "subnet": SUBNET, "routes": [{"dst": "0.0.0.0/0"}],
                     "dataDir": str(data_dir)}}


def masquerades(ns: Namespace, ip: str) -> bool:
    """Whether NAT POSTROUTING sends traffic from `ip` to MASQUERADE (directly or via a chain)."""
    rules = [shlex.split(r) for r in ns.nat or ()]

    def target(r: list[str]) -> str:
        return r[r.index("-j") + 1] if "-j" in r else ""

    mine = [r for r in rules if r[:2] == ["-A", "POSTROUTING"] and "-s" in r
            and r[r.index("-s") + 1] == f"{ip}/32"]
    return any(target(r) == "MASQUERADE"
               or any(x[1] == target(r) and target(x) == "MASQUERADE" for x in rules)
               for r in mine)


def shape(box: Sandbox, pod: str, result: dict[str, Any]) -> dict[str, Any]:
    """What must match between two plugins: kinds, names, addresses, routes, NAT, result keys."""
    snap = box.kernel.observe([box.node, pod], nat_in=[box.node])
    node, inside = snap.ns(box.node), snap.ns(pod)
    assert node is not None and inside is not None
    return {
        "bridges": [(ln.name, ln.up, ln.addresses) for ln in node.links if ln.kind == "bridge"],
        "ports": [(ln.kind, ln.master, ln.up) for ln in node.links if ln.master],
        "node routes": sorted((r.dst, r.gateway, r.dev) for r in node.routes),
        "ip_forward": node.sysctls["net.ipv4.ip_forward"],
        "pod links": sorted((ln.name, ln.kind, ln.up, ln.addresses) for ln in inside.links),
        "pod routes": sorted((r.dst, r.gateway, r.dev) for r in inside.routes),
        "masquerade": masquerades(node, POD_IP),
        "result interfaces": [sorted(i) for i in result["interfaces"]],
        "result ips": result["ips"],
        "result routes": result["routes"],
        "valid 1.0.0": spec.validate_result(result, "1.0.0"),
    }


def test_same_state_as_reference_bridge_and_host_local(boxes: tuple[Sandbox, Sandbox],
                                                       tmp_path: Path) -> None:
    ours, ref = boxes
    shapes = []
    for box, plugin, ipam in ((ours, "cnilab", "cnilab-ipam"), (ref, "bridge", "host-local")):
        cfg = config(plugin, ipam, tmp_path / plugin)
        pod = box.pod("pod")
        add = box.call(plugin, "ADD", cfg, "c1", pod)
        assert add.ok, add.stdout
        assert ping(box.prefix + "pod", "10.78.0.1") is None  # the gateway answers
        shapes.append(shape(box, pod, add.answer or {}))
        assert box.call(plugin, "DEL", cfg, "c1", pod).ok
        node = box.kernel.observe([box.node], nat_in=[box.node]).ns(box.node)
        assert node is not None and not masquerades(node, POD_IP)
        assert [ln for ln in node.links if ln.kind == "veth"] == []
    assert shapes[0]["masquerade"] and shapes[0]["ports"] == [("veth", "cni0", True)]
    assert shapes[0] == shapes[1]


def test_reference_bridge_uses_cnilab_ipam(boxes: tuple[Sandbox, Sandbox],
                                           tmp_path: Path) -> None:
    box = boxes[1]
    cfg = config("bridge", "cnilab-ipam", tmp_path / "ipam")
    pod = box.pod("pod")
    add = box.call("bridge", "ADD", cfg, "c1", pod, args="IgnoreUnknown=1;IP=10.78.0.42")
    assert add.ok, add.stdout
    assert add.answer is not None and add.answer["ips"][0]["address"] == "10.78.0.42/24"
    lease = tmp_path / "ipam" / "testnet" / "10.78.0.42"
    assert lease.read_bytes() == b"c1\r\neth0"
    assert ping(box.prefix + "pod", "10.78.0.1") is None
    assert box.call("bridge", "CHECK", {**cfg, "prevResult": add.answer}, "c1", pod).ok
    assert box.call("bridge", "DEL", cfg, "c1", pod).ok
    assert not lease.exists()


def _request(client: str, pod: str, node_ip: str) -> tuple[str, str]:
    """A TCP request from `client` to node_ip:8080, answered by a server on the pod's port 80."""

    def listen() -> socket.socket:
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # past requests' TIME_WAIT
        s.bind(("0.0.0.0", 80))
        s.listen(1)
        return s

    server = run_in_netns(pod, listen)
    conn_to = run_in_netns(client, socket.socket)
    with server, conn_to:
        conn_to.settimeout(2)
        try:
            conn_to.connect((node_ip, 8080))
        except OSError as e:
            return "", e.strerror or "timed out"
        server.settimeout(2)
        conn, (src, _) = server.accept()
        with conn:
            conn.sendall(b"hello from the pod")
        return conn_to.recv(100).decode(), src


def test_tuning_and_portmap_chain_after_cnilab(boxes: tuple[Sandbox, Sandbox],
                                               tmp_path: Path) -> None:
    box = boxes[0]
    cfg = config("cnilab", "cnilab-ipam", tmp_path / "ipam")
    pod = box.pod("pod")
    client = box.prefix + "client"
    box.pod("client")
    # The client reaches the node over a cable of its own (TEST-NET-1 addresses).
    box.kernel.add_link(box.node, "up0", "veth", peer="up1", peer_netns=client)
    box.kernel.add_address(box.node, "up0", "192.0.2.1/24")
    box.kernel.add_address(client, "up1", "192.0.2.2/24")
    box.kernel.set_up(box.node, "up0")
    box.kernel.set_up(client, "up1")

    first = box.call("cnilab", "ADD", cfg, "c1", pod)
    assert first.ok, first.stdout
    assert _request(client, pod, "192.0.2.1")[0] == ""  # no port mapping yet: refused
    tuning = {"cniVersion": "1.0.0", "name": "testnet", "type": "tuning",
              "sysctl": {"net.core.somaxconn": "512"}}
    second = box.call("tuning", "ADD", {**tuning, "prevResult": first.answer}, "c1", pod)
    assert second.ok, second.stdout
    assert box.kernel.read_sysctl(pod, "net.core.somaxconn") == "512"
    portmap = {"cniVersion": "1.0.0", "name": "testnet", "type": "portmap",
               "capabilities": {"portMappings": True},
               "runtimeConfig": {"portMappings": [
                   {"hostPort": 8080, "containerPort": 80, "protocol": "tcp"}]}}
    third = box.call("portmap", "ADD", {**portmap, "prevResult": second.answer}, "c1", pod)
    assert third.ok, third.stdout
    assert spec.validate_result(third.answer, "1.0.0") == []

    answer, seen = _request(client, pod, "192.0.2.1")
    assert answer == "hello from the pod" and seen == "192.0.2.2"

    for plugin, conf in (("portmap", portmap), ("tuning", tuning), ("cnilab", cfg)):
        done = box.call(plugin, "DEL", {**conf, "prevResult": third.answer}, "c1", pod)
        assert done.ok, f"{plugin}: {done.stdout}"
    node = box.kernel.observe([box.node], nat_in=[box.node]).ns(box.node)
    assert node is not None
    assert [r for r in node.nat or () if 'id: \\"c1\\"' in r] == []
    assert _request(client, pod, "192.0.2.1")[0] == ""
