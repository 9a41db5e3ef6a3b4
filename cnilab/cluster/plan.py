"""The cluster as data: nodes, addresses, MACs, pod CIDRs, pods, validated; no kernel here.

The defaults are the course lab's output: controlplane 172.17.0.24 and node01 172.17.0.40 on
ens3, MACs made from the address as Docker does, cni0 10.244.K.1/24, docker0 172.18.0.1/24 (up,
no carrier), a gateway 172.17.0.1 that NATs to an emulated outside world in 203.0.113.0/24.
"""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Interface, IPv4Network

from cnilab.compat import sha256, valueclass
from cnilab.errors import ConfigError
from cnilab.names import Identity, check_netns_name, check_prefix

LAN = IPv4Network("172.17.0.0/16")
GATEWAY = IPv4Interface("172.17.0.1/16")
CONTROLPLANE_HOST = 24  # 172.17.0.24, as in the course's `kubectl get nodes -o wide`
WORKER_BASE = 39  # node01 is 172.17.0.40, node02 .41, ...
POD_NETWORK = IPv4Network("10.244.0.0/16")  # flannel's default --pod-network-cidr
DOCKER0 = IPv4Interface("172.18.0.1/24")
OUTSIDE_HOST = IPv4Interface("203.0.113.1/24")
GATEWAY_UPLINK = IPv4Interface("203.0.113.2/24")

LESSON = "cluster"  # the ledger's lesson name
LAN_NETNS = "cnilab-lan"
WORLD_NETNS = "cnilab-world"
LAN_BRIDGE = "lan0"  # the cluster's switch, in LAN_NETNS
UPLINK = "wan0"  # the gateway's leg to the outside world, in LAN_NETNS
WORLD_IF = "eth0"  # the outside host's interface, in WORLD_NETNS
NODE_IF = "ens3"
POD_BRIDGE = "cni0"
DOCKER_BRIDGE = "docker0"
POD_IF = "eth0"

MAX_NODES = 200
MAX_PODS_PER_NODE = 250  # a /24 has 253 hosts once the network, broadcast and cni0 are taken


def lab_id(prefix: str) -> str:
    """The cluster's name in its processes' tokens (the ledger's identity is LESSON + prefix)."""
    return f"{prefix}cluster"


def docker_mac(address: IPv4Address) -> str:
    """The MAC Docker derives from an IPv4 address: 02:42 then the four address bytes."""
    return "02:42:" + ":".join(f"{b:02x}" for b in address.packed)


def node_name(index: int) -> str:
    """controlplane for 0, then node01, node02, ... as kubeadm labs name them."""
    return "controlplane" if index == 0 else f"node{index:02d}"


@valueclass(frozen=True)
class Node:
    """One node: a namespace with ens3 on the LAN, a pod bridge and a pod CIDR."""

    name: str
    index: int
    address: IPv4Interface
    pod_cidr: IPv4Network

    @property
    def mac(self) -> str:
        """ens3's MAC, derived from its address."""
        return docker_mac(self.address.ip)

    @property
    def docker0_mac(self) -> str:
        """docker0's MAC: Docker gives its bridge a random one in 02:42:..; here the random part
        comes from the node's name, so a second `up` finds the same."""
        digest = sha256(self.name.encode()).digest()
        return "02:42:" + ":".join(f"{b:02x}" for b in digest[:4])

    @property
    def bridge_address(self) -> IPv4Interface:
        """cni0's address: the first host of the pod CIDR, the pods' default gateway."""
        return IPv4Interface(f"{self.pod_cidr.network_address + 1}/{self.pod_cidr.prefixlen}")

    @property
    def is_controlplane(self) -> bool:
        """Whether the control-plane components run here."""
        return self.index == 0


@valueclass(frozen=True)
class Pod:
    """One pod: its own namespace, attached to its node's cni0 by the CNI plugin."""

    name: str
    node: str


@valueclass(frozen=True)
class ClusterPlan:
    """Every name and address of the cluster; `prefix` goes before every namespace name."""

    nodes: tuple[Node, ...]
    pods_per_node: int = 2
    prefix: str = ""
    pod_network: IPv4Network = POD_NETWORK

    @property
    def lab_id(self) -> str:
        """The cluster's name in its processes' tokens."""
        return lab_id(self.prefix)

    @property
    def identity(self) -> Identity:
        """This cluster as a lab: the cluster lesson under its exact prefix (ledger, mark)."""
        return Identity(LESSON, self.prefix)

    @property
    def lan_netns(self) -> str:
        """The namespace holding the LAN switch and the gateway."""
        return self.prefix + LAN_NETNS

    @property
    def world_netns(self) -> str:
        """The namespace playing the outside world."""
        return self.prefix + WORLD_NETNS

    def netns(self, node: Node) -> str:
        """A node's namespace."""
        return self.prefix + node.name

    def pod_netns(self, pod: Pod) -> str:
        """A pod's namespace."""
        return self.prefix + pod.name

    def node(self, name: str) -> Node:
        """A node by its name, or a ConfigError listing the nodes."""
        for n in self.nodes:
            if n.name == name:
                return n
        raise ConfigError.of("cluster_no_node", name=name,
                             nodes=", ".join(n.name for n in self.nodes))

    @property
    def controlplane(self) -> Node:
        """The first node."""
        return self.nodes[0]

    def pods(self, node: Node) -> tuple[Pod, ...]:
        """The pods scheduled on `node`."""
        return tuple(Pod(f"{node.name}-pod{j}", node.name)
                     for j in range(1, self.pods_per_node + 1))

    def all_pods(self) -> tuple[Pod, ...]:
        """Every pod, node by node."""
        return tuple(p for n in self.nodes for p in self.pods(n))

    def namespaces(self) -> tuple[str, ...]:
        """Every namespace of the cluster: LAN, outside world, nodes, pods."""
        return (self.lan_netns, self.world_netns, *(self.netns(n) for n in self.nodes),
                *(self.pod_netns(p) for p in self.all_pods()))


def parse_network(text: str, what: str) -> IPv4Network:
    """An IPv4 network in CIDR form, or a ConfigError saying what is wrong."""
    try:
        return IPv4Network(text, strict=True)
    except ValueError as e:
        raise ConfigError.of("cluster_bad_network", what=what, text=text, detail=e) from e


def build_plan(nodes: int = 2, pods_per_node: int = 2, prefix: str = "",
               pod_network: IPv4Network = POD_NETWORK) -> ClusterPlan:
    """The cluster for these options, validated before anything touches the kernel."""
    if not 1 <= nodes <= MAX_NODES:
        raise ConfigError.of("cluster_nodes_range", limit=MAX_NODES, nodes=nodes)
    if not 0 <= pods_per_node <= MAX_PODS_PER_NODE:
        raise ConfigError.of("cluster_pods_range", limit=MAX_PODS_PER_NODE, pods=pods_per_node)
    check_prefix(prefix)
    if pod_network.prefixlen > 24 or 2 ** (24 - pod_network.prefixlen) < nodes:
        raise ConfigError.of("cluster_few_cidrs", network=pod_network, nodes=nodes)
    for other, key in ((LAN, "cluster_overlap_lan"), (DOCKER0.network, "cluster_overlap_docker0"),
                       (OUTSIDE_HOST.network, "cluster_overlap_world")):
        if pod_network.overlaps(other):
            raise ConfigError.of(key, network=pod_network, other=other)
    cidrs = list(pod_network.subnets(new_prefix=24))
    made = []
    for i in range(nodes):
        host = CONTROLPLANE_HOST if i == 0 else WORKER_BASE + i
        made.append(Node(node_name(i), i, IPv4Interface(f"{LAN.network_address + host}/"
                                                         f"{LAN.prefixlen}"), cidrs[i]))
    plan = ClusterPlan(tuple(made), pods_per_node, prefix, pod_network)
    for ns in plan.namespaces():
        check_netns_name(ns, "the")
    return plan
