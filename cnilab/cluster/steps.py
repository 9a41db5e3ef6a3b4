"""The cluster lesson's sections as ops built from the plan: LAN, gateway, bridges, routes, ..."""

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
from cnilab.compat import valueclass
from cnilab.ops import (
    FORWARDING,
    AddAddress,
    AddBridge,
    AddNetns,
    AddRoute,
    AddRule,
    AddVeth,
    KernelApi,
    LinkUp,
    Op,
    SetMac,
    SetMaster,
    SetSysctl,
    Step,
)
from cnilab.ops.files import NetnsEtcFile
from cnilab.state import Snapshot

GONE_PORT = ("vethgone", "vethgone-c")  # the veth of a container that came and went


@valueclass(frozen=True)
class UnplugLastPort(Op):
    """Plug a veth into a (still down) bridge and pull it out again: up, it has no carrier.

    A bridge that never had a port has carrier once up (`state UNKNOWN`); one whose last port
    went away has none, which is docker0 on a node where Docker's containers have stopped: the
    course's `flags=4099<UP,BROADCAST,MULTICAST>` and its route marked `linkdown` (by the
    kernel's link-watch queue, which runs at most once a second: some time after `up`).
    """

    bridge: str = ""

    def apply(self, kernel: KernelApi) -> None:
        port, peer = GONE_PORT
        kernel.delete_link(self.netns, port)  # left by an `up` killed right here
        kernel.add_link(self.netns, port, "veth", peer)
        kernel.set_master(self.netns, port, self.bridge)
        kernel.delete_link(self.netns, port)  # its peer goes with it

    def satisfied(self, snap: Snapshot) -> bool:
        ns = snap.ns(self.netns)
        link = ns.link(self.bridge) if ns else None
        return link is not None and link.up and link.carrier is False

    def argv(self) -> list[str]:
        return ["ip", "link", "add", GONE_PORT[0], "type", "veth", "peer", "name", GONE_PORT[1]]

    def command(self, here: str | None) -> str:
        port = GONE_PORT[0]
        return " && ".join(self._typed(argv, here) for argv in (
            self.argv(), ["ip", "link", "set", port, "master", self.bridge],
            ["ip", "link", "del", port]))


def lan_ops(plan: ClusterPlan) -> list[Op]:
    """Section 1: the LAN switch, and every node's ens3 plugged into it."""
    lan, mark = plan.lan_netns, plan.identity.mark
    ops: list[Op] = [
        AddNetns(None, lan),
        AddBridge(lan, LAN_BRIDGE, mark),
        AddAddress(lan, LAN_BRIDGE, str(GATEWAY), broadcast=True),
        *(LinkUp(lan, n) for n in ("lo", LAN_BRIDGE)),
    ]
    for node in plan.nodes:
        ns = plan.netns(node)
        ops += [
            AddNetns(None, ns),
            # The LAN end is named after the node, so `bridge link` in the LAN says who is where.
            AddVeth(ns, NODE_IF, node.name, peer_netns=lan, mark=mark),
            # Every node's MAC differs (as its hostname does): a switch that saw one MAC on two
            # ports would send one node's frames to the other.
            SetMac(ns, NODE_IF, node.mac),
            AddAddress(ns, NODE_IF, str(node.address), broadcast=True),
            SetMaster(lan, node.name, LAN_BRIDGE),
            LinkUp(lan, node.name),
            LinkUp(ns, "lo"),
            LinkUp(ns, NODE_IF),
        ]
    return ops


def hosts_lines(plan: ClusterPlan, node: Node) -> tuple[str, ...]:
    """A node's /etc/hosts: every node's name, and _gateway, which `route` prints for 172.17.0.1.

    On the course's (systemd) nodes _gateway comes from nss-myhostname, which names the default
    gateway so; here the node's hosts file says it, as `ip netns exec` shows it as /etc/hosts.
    """
    down = "cnilab " + (f"--prefix {plan.prefix} " if plan.prefix else "") + "cluster down"
    return (f"# /etc/hosts of the cluster node {plan.netns(node)}, written by cnilab "
            f"(`{down}` removes it)",
            "127.0.0.1 localhost",
            *(f"{n.address.ip} {n.name}" for n in plan.nodes),
            f"{GATEWAY.ip} _gateway",
            "::1 localhost ip6-localhost ip6-loopback")


def hosts_ops(plan: ClusterPlan) -> list[Op]:
    """Each node's own hosts file (/etc/netns/NODE/hosts): `route` shows names, as in the course."""
    return [NetnsEtcFile(plan.netns(n), hosts_lines(plan, n), name="hosts") for n in plan.nodes]


def gateway_ops(plan: ClusterPlan) -> list[Op]:
    """Section 2: the gateway's way out to an emulated outside world, each node's default route."""
    lan, world, mark = plan.lan_netns, plan.world_netns, plan.identity.mark
    return [
        AddNetns(None, world),
        AddVeth(lan, UPLINK, WORLD_IF, peer_netns=world, mark=mark),
        AddAddress(lan, UPLINK, str(GATEWAY_UPLINK)),
        AddAddress(world, WORLD_IF, str(OUTSIDE_HOST)),
        LinkUp(lan, UPLINK),
        *(LinkUp(world, n) for n in ("lo", WORLD_IF)),
        # The gateway routes between the LAN and the outside, and hides the LAN behind its
        # uplink address: the outside has no route back to 172.17.0.0/16.
        SetSysctl(lan, FORWARDING, "1"),
        AddRule(lan, "nat", "POSTROUTING", ("-s", str(LAN), "-o", UPLINK, "-j", "MASQUERADE"),
                mark),
        *(AddRoute(plan.netns(node), "default", str(GATEWAY.ip)) for node in plan.nodes),
        *hosts_ops(plan),
    ]


def bridge_ops(plan: ClusterPlan, node: Node) -> list[Op]:
    """Section 3 on one node: cni0 for its pods, docker0 up with nothing plugged in."""
    ns, mark = plan.netns(node), plan.identity.mark
    return [
        AddBridge(ns, POD_BRIDGE, mark),
        AddAddress(ns, POD_BRIDGE, str(node.bridge_address), broadcast=True),
        LinkUp(ns, POD_BRIDGE),
        # docker0 as on the course's nodes: Docker made it and brought it up, but containerd
        # plugs nothing into it. A bridge whose last port went has no carrier (one that never
        # had a port keeps the carrier it began with): UP but not RUNNING (`ifconfig`:
        # flags=4099<UP,BROADCAST,MULTICAST>), and its route is marked linkdown.
        AddBridge(ns, DOCKER_BRIDGE, mark),
        # Docker pins its bridge's MAC (02:42:...): without it, a bridge takes its ports' MAC
        # and is left with 00:00:00:00:00:00 when the last one goes.
        SetMac(ns, DOCKER_BRIDGE, node.docker0_mac),
        AddAddress(ns, DOCKER_BRIDGE, str(DOCKER0), broadcast=True),
        UnplugLastPort(ns, DOCKER_BRIDGE),
        LinkUp(ns, DOCKER_BRIDGE),
    ]


def route_ops(plan: ClusterPlan, node: Node) -> list[Op]:
    """Section 4 on one node: forwarding, NAT out of the pod network, other nodes' pod CIDRs."""
    ns = plan.netns(node)
    return [
        # The node forwards between cni0 and ens3; pod traffic leaving the pod network takes the
        # node's address (as flannel's ipMasq does), pod-to-pod traffic keeps its own.
        SetSysctl(ns, FORWARDING, "1"),
        AddRule(ns, "nat", "POSTROUTING", ("-s", str(node.pod_cidr), "!", "-d",
                                           str(plan.pod_network), "-j", "MASQUERADE"),
                plan.identity.mark),
        *(AddRoute(ns, str(other.pod_cidr), str(other.address.ip))
          for other in plan.nodes if other != node),
    ]


def network_steps(plan: ClusterPlan) -> tuple[Step, ...]:
    """Sections 1-4 of the cluster lesson: the network, as ops in the order they are made."""
    return (
        Step(1, tuple(lan_ops(plan))),
        Step(2, tuple(gateway_ops(plan))),
        Step(3, tuple(op for node in plan.nodes for op in bridge_ops(plan, node))),
        Step(4, tuple(op for node in plan.nodes for op in route_ops(plan, node))),
    )


def network_ops(plan: ClusterPlan) -> list[Op]:
    """Everything but the components and the pods, in the order it must be made."""
    return [op for step in network_steps(plan) for op in step.ops]


def lesson_steps(plan: ClusterPlan) -> tuple[Step, ...]:
    """Every section of the cluster lesson as ops: the network, the components, the pods."""
    # Imported here: both start processes or call the plugin, through the kernel module.
    from cnilab.cluster import pods
    from cnilab.cluster.components import component_ops
    from cnilab.ledger import Ledger

    ledger = Ledger.of(plan.identity)  # only its path: where the IPAM stores go
    pod_ops = tuple(op for node in plan.nodes for pod in plan.pods(node)
                    for op in (AddNetns(None, plan.pod_netns(pod)),
                               pods.attach_op(plan, node, pod, ledger)))
    return (*network_steps(plan), Step(5, tuple(component_ops(plan))), Step(6, pod_ops))
