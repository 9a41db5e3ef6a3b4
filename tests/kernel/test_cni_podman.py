"""cnilab as the network of a real libcni-based runtime: Podman with its CNI backend.

Podman runs inside a node namespace this test made (so every bridge, veth and rule it asks the
plugins for lands there), from a local root filesystem (no image registry), with its storage, its
config and its network config folder in the test's own directory. Podman validates every
conflist with libcni (VERSION with placeholders) when it loads it, runs the chain on `run`,
`network connect` and `rm`, and keeps its own cache: nothing here calls the plugins directly.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest
from podman_box import (
    GATEWAY1,
    GATEWAY2,
    NET1,
    NET2,
    NODE_IP,
    PODMAN,
    RUNC,
    WORLD_IP,
    CannotRun,
    Podman,
    podman_box,
    portmap_skip,
)

from cnilab.cni.bridge import host_veth_name
from cnilab.kernel import Kernel
from cnilab.lab.proofs import http_get, ping

pytestmark = pytest.mark.skipif(
    not (PODMAN and RUNC), reason="the libcni runtime test needs podman and runc "
    "(apt-get install podman runc): not installed here")


@pytest.fixture
def podman(prefix: str) -> Iterator[Podman]:
    """Podman set up to use cnilab for its networks, in a node with an outside world."""
    try:
        with podman_box(prefix) as box:
            yield box
    except CannotRun as e:
        pytest.skip(f"podman cannot run a container here: {e}")


def leftovers(box: Podman) -> dict[str, Any]:
    """What the plugins could leave behind: veths on the node, leases, NAT rules to pods."""
    with Kernel() as k:
        links = [ln.name for ln in k.observe([box.node]).ns(box.node).links  # type: ignore
                 if ln.kind == "veth" and ln.name != "uplink0"]
        nat = k.iptables(box.node, ["-t", "nat", "-S"]).splitlines()
    return {"veths": links,
            "leases": sorted(p.name for p in (box.dir / "ipam").rglob("10.*")),
            "rules": [r for r in nat if "cnilab net " in r or "--to-destination" in r]}


def test_podman_runs_containers_on_a_cnilab_network(podman: Podman) -> None:
    if not podman.portmap:
        pytest.skip(f"the published port needs portmap at CNI 1.0.0: {portmap_skip()}")
    drivers = podman.drivers()
    assert drivers[NET1] == drivers[NET2] == "cnilab"  # libcni loaded both
    a = podman.start("a", "--network", NET1)
    b = podman.start("b", "--network", NET1, "--mac-address", "02:42:0a:58:07:99",
                     "-p", "8080:80")
    ip_a, ip_b = podman.ip("a"), podman.ip("b")
    assert ping(a, ip_b) is None and ping(b, ip_a) is None  # the containers reach each other
    assert ping(a, GATEWAY1) is None  # and the node
    assert ping(podman.node, ip_a) is None  # the node reaches them
    assert ping(a, WORLD_IP) is None  # and, through cnilab's NAT, the outside world
    with Kernel(podman.dir) as k:
        eth0 = k.get_link(b, "eth0")
        assert eth0 is not None and eth0.mac == "02:42:0a:58:07:99"  # the requested MAC
        # A web server in b's network namespace; the node's 8080 is published by portmap.
        k.start_server(b, 80, "hello from b")
        try:
            body, why = http_get(podman.world, NODE_IP, 8080)
        finally:
            k.stop_server(b, 80)
    assert body == "hello from b", why
    podman.run("network", "connect", NET2, "a")  # a second cnilab network, default route too
    with Kernel() as k:
        defaults = [(r.gateway, r.dev) for r in k.observe([a]).ns(a).routes  # type: ignore
                    if r.dst == "default"]
    assert defaults == [(GATEWAY2, "eth1"), (GATEWAY1, "eth0")]  # as the reference adds it
    assert ping(a, GATEWAY2) is None
    podman.run("rm", "--force", "--time", "0", "a", "b")
    assert not os.path.exists(a) and not os.path.exists(b)
    assert leftovers(podman) == {"veths": [], "leases": [], "rules": []}


def test_the_gateway_keeps_answering_while_other_containers_leave(podman: Podman) -> None:
    spaces = {n: podman.start(n, "--network", NET1) for n in ("a", "b", "c")}
    with Kernel() as k:
        gateway_mac = k.mac_of(podman.node, "cni0")
        # An unpinned bridge takes the lowest MAC of its ports: remove that container. Podman
        # passes its container ID as CNI_CONTAINERID, which names the node's end of the veth.
        ports = {n: k.mac_of(podman.node, host_veth_name(NET1, podman.inspect(n)["Id"], "eth0"))
                 for n in spaces}
    assert None not in ports.values()
    leaving = min(ports, key=lambda n: ports[n] or "")
    staying = [n for n in spaces if n != leaving]
    for n in staying:
        assert ping(spaces[n], GATEWAY1) is None  # ARP entries for the gateway now cached
    podman.run("rm", "--force", "--time", "0", leaving)
    with Kernel() as k:
        assert k.mac_of(podman.node, "cni0") == gateway_mac
    for n in staying:
        assert ping(spaces[n], GATEWAY1, tries=1) is None  # the cached MAC still works
    podman.run("rm", "--force", "--time", "0", *staying)
    assert leftovers(podman) == {"veths": [], "leases": [], "rules": []}
