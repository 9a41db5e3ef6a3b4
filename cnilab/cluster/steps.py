"""The cluster network as ops built from the plan: the LAN and its gateway, nodes, routes."""

from __future__ import annotations

from cnilab.cluster.plan import (
    DOCKER0,
    DOCKER_BRIDGE,
    GATEWAY,
    GATEWAY_UPLINK,
    LAN,
    LAN_BRIDGE,
    NODE_IF,
    OUTSIDE_HOST,
    POD_BRIDGE,
    UPLINK,
    WORLD_IF,
    ClusterPlan,
    Node,
)
from cnilab.ops import (
    AddAddress,
    AddBridge,
    AddNetns,
    AddRoute,
    AddRule,
    AddVeth,
    LinkUp,
    Op,
    SetMac,
    SetMaster,
    SetSysctl,
)

FORWARD = "net.ipv4.ip_forward"


def lan_ops(plan: ClusterPlan) -> list[Op]:
    """The LAN switch with the gateway on it, and the outside world behind the gateway's NAT."""
    lan, world = plan.lan_netns, plan.world_netns
    return [
        AddNetns(None, lan),
        AddNetns(None, world),
        AddBridge(lan, LAN_BRIDGE),
        AddAddress(lan, LAN_BRIDGE, str(GATEWAY)),
        AddVeth(lan, UPLINK, WORLD_IF, peer_netns=world),
        AddAddress(lan, UPLINK, str(GATEWAY_UPLINK)),
        AddAddress(world, WORLD_IF, str(OUTSIDE_HOST)),
        *(LinkUp(lan, n) for n in ("lo", LAN_BRIDGE, UPLINK)),
        *(LinkUp(world, n) for n in ("lo", WORLD_IF)),
        # The gateway routes between the LAN and the outside, and hides the LAN behind its
        # uplink address: the outside has no route back to 172.17.0.0/16.
        SetSysctl(lan, FORWARD, "1"),
        AddRule(lan, "nat", "POSTROUTING", ("-s", str(LAN), "-o", UPLINK, "-j", "MASQUERADE")),
    ]


def node_ops(plan: ClusterPlan, node: Node) -> list[Op]:
    """One node: ens3 plugged into the LAN switch, cni0 for its pods, docker0 left down."""
    ns, lan = plan.netns(node), plan.lan_netns
    return [
        AddNetns(None, ns),
        # The LAN end is named after the node, so `bridge link` in the LAN says who is where.
        AddVeth(ns, NODE_IF, node.name, peer_netns=lan),
        SetMac(ns, NODE_IF, node.mac),
        AddAddress(ns, NODE_IF, str(node.address)),
        SetMaster(lan, node.name, LAN_BRIDGE),
        LinkUp(lan, node.name),
        LinkUp(ns, "lo"),
        LinkUp(ns, NODE_IF),
        AddRoute(ns, "default", str(GATEWAY.ip)),
        AddBridge(ns, POD_BRIDGE),
        AddAddress(ns, POD_BRIDGE, str(node.bridge_address)),
        LinkUp(ns, POD_BRIDGE),
        # docker0 exists but stays down, as on the course's nodes (containerd does not use it).
        AddBridge(ns, DOCKER_BRIDGE),
        AddAddress(ns, DOCKER_BRIDGE, str(DOCKER0)),
        # The node forwards between cni0 and ens3; pod traffic leaving the pod network takes the
        # node's address (as flannel's ipMasq does), pod-to-pod traffic keeps its own.
        SetSysctl(ns, FORWARD, "1"),
        AddRule(ns, "nat", "POSTROUTING", ("-s", str(node.pod_cidr), "!", "-d",
                                           str(plan.pod_network), "-j", "MASQUERADE")),
    ]


def route_ops(plan: ClusterPlan, node: Node) -> list[Op]:
    """On `node`, every other node's pod CIDR via that node's address."""
    ns = plan.netns(node)
    return [AddRoute(ns, str(other.pod_cidr), str(other.address.ip))
            for other in plan.nodes if other != node]


def network_ops(plan: ClusterPlan) -> list[Op]:
    """Everything but the components and the pods, in the order it must be made."""
    ops = lan_ops(plan)
    for node in plan.nodes:
        ops += node_ops(plan, node)
    for node in plan.nodes:
        ops += route_ops(plan, node)
    return ops
