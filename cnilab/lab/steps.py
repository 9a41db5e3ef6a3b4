"""The eight steps as plans: each step is a number and the ops it needs, built from the topology."""

from __future__ import annotations

from cnilab.compat import valueclass
from cnilab.lab.topology import Container, Topology
from cnilab.ops import (
    AddAddress,
    AddBridge,
    AddNetns,
    AddRoute,
    AddRule,
    AddVeth,
    LinkUp,
    MoveToNetns,
    Op,
    SetMaster,
    SetSysctl,
    StartServer,
    Step,
)
from cnilab.ops.system import FORWARDING
from cnilab.state import Snapshot

HTTP_PORT, PUBLISHED_PORT = 80, 8080


@valueclass(frozen=True)
class FreshNodeSysctl(SetSysctl):
    """sysctl -w KEY=VALUE in the node cnilab has just made: how a fresh machine starts.

    A new namespace copies the IPv4 settings of the machine's own, and on a Docker or podman host
    ip_forward is already 1 there: step 8's `sysctl -w net.ipv4.ip_forward=1` would silently have
    nothing to do. Held as long as the node exists (step 8 then sets the value it teaches).
    """

    def satisfied(self, snap: Snapshot) -> bool:
        return self.netns in snap.netns

    undo = Op.undo  # the node's namespace takes it along


def setup_ops(topo: Topology) -> tuple[Op, ...]:
    """The isolated lab's stage: the node namespace and an outside world linked to its eth0."""
    if topo.in_place:
        return ()
    node, inet, mark = topo.node, topo.internet, topo.identity.mark
    assert node is not None and inet is not None
    return (
        AddNetns(None, node),
        FreshNodeSysctl(node, FORWARDING, "0"),
        AddNetns(None, inet),
        AddVeth(inet, topo.uplink, topo.uplink, peer_netns=node, mark=mark),
        AddAddress(inet, topo.uplink, str(topo.internet_address)),
        AddAddress(node, topo.uplink, str(topo.uplink_address)),
        LinkUp(inet, "lo"),
        LinkUp(inet, topo.uplink),
        LinkUp(node, "lo"),
        LinkUp(node, topo.uplink),
    )


def build_steps(topo: Topology) -> tuple[Step, ...]:
    """Steps 1..8, and the bonus step 9, for this topology."""
    node, cs, mark = topo.node, topo.containers, topo.identity.mark
    return (
        Step(1, tuple(AddNetns(None, topo.netns(c)) for c in cs)),
        Step(2, (AddBridge(node, topo.bridge, mark),
                 AddAddress(node, topo.bridge, str(topo.bridge_address)))),
        Step(3, tuple(AddVeth(node, c.veth, c.peer, mark=mark) for c in cs)),
        Step(4, tuple(MoveToNetns(node, c.veth, topo.netns(c)) for c in cs)),
        Step(5, tuple(SetMaster(node, c.peer, topo.bridge) for c in cs)),
        Step(6, tuple(AddAddress(topo.netns(c), c.veth, str(c.address)) for c in cs)),
        Step(7, (LinkUp(node, topo.bridge),
                 *(LinkUp(node, c.peer) for c in cs),
                 *(op for c in cs for op in (LinkUp(topo.netns(c), "lo"),
                                              LinkUp(topo.netns(c), c.veth))))),
        Step(8, (SetSysctl(node, FORWARDING, "1"),
                 *(AddRoute(topo.netns(c), "default", str(topo.bridge_address.ip)) for c in cs),
                 # `! -o bridge`: with bridge netfilter on, traffic between two containers on the
                 # bridge also crosses POSTROUTING; it must keep its source address.
                 AddRule(node, "nat", "POSTROUTING",
                         ("-s", str(topo.subnet), "!", "-o", topo.bridge, "-j", "MASQUERADE"),
                         mark))),
        Step(9, (StartServer(topo.netns(server := web_server(topo)), HTTP_PORT,
                             f"Hello from {server.name} ({server.address.ip})"),
                 # `-p tcp` is required: iptables knows --dport only once the protocol is given.
                 AddRule(node, "nat", "PREROUTING",
                         ("-i", topo.uplink, "-p", "tcp", "--dport", str(PUBLISHED_PORT),
                          "-j", "DNAT", "--to-destination",
                          f"{server.address.ip}:{HTTP_PORT}"), mark))),
    )


def web_server(topo: Topology) -> Container:
    """The container whose web server step 9 publishes: blue (the second), as in the lecture."""
    return topo.containers[1] if len(topo.containers) > 1 else topo.containers[0]


def observed_namespaces(topo: Topology) -> tuple[str | None, ...]:
    """The namespaces a snapshot of this lab looks at."""
    node_first: tuple[str | None, ...] = (topo.node,)
    inet: tuple[str | None, ...] = () if topo.internet is None else (topo.internet,)
    return node_first + tuple(topo.netns(c) for c in topo.containers) + inet


def server_namespaces(steps: tuple[Step, ...]) -> set[str | None]:
    """Where a step starts a server: the only namespaces whose listening sockets are read."""
    return {op.netns for s in steps for op in s.ops if isinstance(op, StartServer)}
