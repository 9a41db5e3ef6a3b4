"""The live cluster's model: which namespace is which node or pod, and what each node passes of
what the cluster lesson checks (LAN address, cni0, forwarding, routes to the other nodes' pods).

Built on the lab's live model (cnilab.watch.LiveLab: readings in, one Change per object out); this
adds, from the same observed state, a view per node and a `checks` change when a node's checks
move. Names come from the namespaces that exist, never from the plan: a cluster made or resized
while watching shows as it is. No printing here: cli/watch.py prints, render/cluster.py draws.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from ipaddress import IPv4Interface
from typing import Any

from cnilab.cluster.plan import LAN_NETNS, NODE_IF, POD_BRIDGE, POD_IF, WORLD_NETNS
from cnilab.compat import field, valueclass
from cnilab.kernel.events import Observed
from cnilab.ops import FORWARDING
from cnilab.state import Link, Namespace, Snapshot, first_ip
from cnilab.watch import Change, LiveLab, diff


def _names(prefix: str) -> re.Pattern[str]:
    # controlplane, node01 ... and their pods: controlplane-pod1, node01-pod2 (plan.node_name)
    return re.compile(re.escape(prefix) + r"(controlplane|node\d{2,})(?:-pod(\d+))?")


def follows(prefix: str) -> Callable[[str], bool]:
    """Which namespaces `cluster watch` follows: any under --prefix; without one, the cluster's."""
    names = _names(prefix)

    def follow(name: str) -> bool:
        if prefix:
            return name.startswith(prefix)
        return name in (LAN_NETNS, WORLD_NETNS) or names.fullmatch(name) is not None

    return follow


@valueclass(frozen=True)
class PodView:
    """A pod as its namespace holds it: eth0's address and state."""

    name: str
    netns: str
    ip: str | None
    up: bool


@valueclass(frozen=True)
class NodeView:
    """A node as its namespace holds it, and its pods."""

    name: str
    netns: str
    lan: Link | None  # ens3, the node's leg on the cluster LAN
    bridge: Link | None  # cni0, its pods' bridge
    forward: bool
    default: str | None  # the default route's gateway
    via: dict[str, str]  # destination -> gateway, of the routes through a gateway
    pods: tuple[PodView, ...] = ()

    @property
    def ip(self) -> str | None:
        """ens3's address, without its prefix length."""
        return first_ip(self.lan)

    @property
    def pod_cidr(self) -> str | None:
        """The network of cni0's address: this node's pod CIDR."""
        if self.bridge is None or not self.bridge.addresses:
            return None
        return str(IPv4Interface(self.bridge.addresses[0]).network)

    def missing_routes(self, nodes: Iterable[NodeView]) -> list[NodeView]:
        """The other nodes whose pod CIDR this node does not send to that node's address."""
        return [o for o in nodes if o.name != self.name and o.pod_cidr and o.ip
                and self.via.get(o.pod_cidr) != o.ip]

    def route_count(self, nodes: Iterable[NodeView]) -> tuple[int, int]:
        """(routes present, routes needed) to the other nodes' pod CIDRs."""
        others = [o for o in nodes if o.name != self.name and o.pod_cidr and o.ip]
        return len(others) - len(self.missing_routes(others)), len(others)

    def pods_ready(self) -> int:
        """Pods whose eth0 is up with an address."""
        return sum(1 for p in self.pods if p.up and p.ip)

    def checks(self, nodes: Iterable[NodeView]) -> dict[str, bool]:
        """What the cluster lesson checks on this node, check by check, in the lesson's order."""
        return {
            "lan": bool(self.lan and self.lan.up and self.lan.addresses),
            "bridge": bool(self.bridge and self.bridge.up and self.bridge.addresses),
            "forward": self.forward,
            "default": self.default is not None,
            "routes": not self.missing_routes(nodes),
            "pods": self.pods_ready() == len(self.pods),
        }


@valueclass(frozen=True)
class ClusterView:
    """The cluster in the observed state: nodes with their pods, LAN gateway, outside world."""

    prefix: str
    nodes: tuple[NodeView, ...]
    lan: Namespace | None
    world: Namespace | None
    others: tuple[str, ...]  # followed namespaces that are none of these (e.g. orphan pods)

    def checks(self) -> dict[str, dict[str, bool]]:
        """Every node's checks, by node name."""
        return {n.name: n.checks(self.nodes) for n in self.nodes}


def _node(name: str, ns: Namespace, pods: list[PodView]) -> NodeView:
    default = next((r for r in ns.routes if r.dst == "default"), None)
    return NodeView(name, ns.name or "", ns.link(NODE_IF), ns.link(POD_BRIDGE),
                    ns.sysctls.get(FORWARDING) == "1", default.gateway if default else None,
                    {r.dst: r.gateway for r in ns.routes if r.gateway},
                    tuple(sorted(pods, key=lambda p: (len(p.name), p.name))))


def cluster_view(snap: Snapshot, prefix: str) -> ClusterView:
    """Sort the observed namespaces into nodes, pods, the LAN gateway and the outside world."""
    names = _names(prefix)
    nodes: dict[str, Namespace] = {}
    pods: dict[str, list[PodView]] = {}
    others = []
    lan_name, world_name = prefix + LAN_NETNS, prefix + WORLD_NETNS
    for netns, ns in snap.spaces.items():
        found = names.fullmatch(netns or "")
        if netns in (lan_name, world_name) or netns is None:
            continue
        if found is None:
            others.append(netns)
        elif found.group(2) is None:
            nodes[found.group(1)] = ns
        else:
            eth0 = ns.link(POD_IF)
            pod = netns[len(prefix):]
            pods.setdefault(found.group(1), []).append(
                PodView(pod, netns, first_ip(eth0), bool(eth0 and eth0.up)))
    others += [p.netns for node, ps in pods.items() if node not in nodes for p in ps]
    views = tuple(_node(n, nodes[n], pods.get(n, [])) for n in sorted(nodes))
    return ClusterView(prefix, views, snap.ns(lan_name), snap.ns(world_name),
                       tuple(sorted(others)))


def _objects(view: ClusterView) -> dict[str, dict[tuple[str, str, str], dict[str, Any]]]:
    """Each node's checks as the objects diff() compares: one `checks` object per node."""
    return {n.netns: {("checks", n.name, ""): dict(c)}
            for n, c in zip(view.nodes, view.checks().values())}


@valueclass
class ClusterLive(LiveLab):
    """The cluster as the events say it is now, and its nodes' checks."""

    prefix: str = ""
    view: ClusterView = field(default_factory=lambda: ClusterView("", (), None, None, ()))

    def start(self, readings: dict[str | None, Observed]) -> None:
        """The state when watching starts: nothing counts as changed."""
        super().start(readings)
        self.view = cluster_view(self.current, self.prefix)

    def update(self, readings: dict[str | None, Observed], vanished: Iterable[str],
               at: float) -> list[Change]:
        """The lab's changes (one per object), then one `checks` change per node that moved."""
        changes = super().update(readings, vanished, at)
        if not changes:  # the checks are read from the objects: none changed, none moved
            return changes
        before, self.view = _objects(self.view), cluster_view(self.current, self.prefix)
        after = _objects(self.view)
        moved = [c for ns in sorted(before.keys() | after.keys())
                 for c in diff(ns, before.get(ns, {}), after.get(ns, {}), at)]
        self.record(moved, at)
        return changes + moved
