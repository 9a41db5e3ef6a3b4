"""Pods: a namespace each, attached to the node's cni0 by the cnilab CNI plugin, in process.

As a runtime does: the pod's namespace is made first (AddNetns), then the plugin is called with
CNI ADD for it. Each node has its own IPAM store (host-local keeps one per host) under the
cluster's run dir. `down` removes whole nodes, so it deletes the namespaces and the stores rather
than calling CNI DEL per pod (AttachPod.undo, CNI DEL, is for a pod leaving a node that stays).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from cnilab.cluster.plan import POD_BRIDGE, POD_IF, ClusterPlan, Node, Pod
from cnilab.compat import valueclass
from cnilab.kernel import netns_path
from cnilab.ledger import Ledger
from cnilab.ops import Evidence, KernelApi, Op
from cnilab.runfiles import safe_dir
from cnilab.state import Snapshot

CNI_VERSION = "1.0.0"
NETWORK = "cbr0"  # the network name flannel's bridge config uses on kubeadm nodes


def network_config(node: Node, data_dir: str) -> dict[str, Any]:
    """The CNI network config a node's runtime would pass: bridge cni0, host-local style IPAM."""
    return {
        "cniVersion": CNI_VERSION,
        "name": NETWORK,
        "type": "cnilab",
        "bridge": POD_BRIDGE,
        "isGateway": True,
        "ipMasq": False,  # the node masquerades for its whole pod CIDR (steps.route_ops)
        "ipam": {
            "type": "cnilab-ipam",
            "ranges": [[{"subnet": str(node.pod_cidr),
                         "gateway": str(node.bridge_address.ip)}]],
            "routes": [{"dst": "0.0.0.0/0"}],
            "dataDir": data_dir,
        },
    }


def store_dir(ledger: Ledger) -> str:
    """Where the nodes' IPAM stores live: beside the cluster's ledger, one folder per node."""
    return str(ledger.path.with_suffix("")) + "-ipam"


@valueclass(frozen=True)
class IpamStore(Op):
    """The folder holding every node's IPAM store (undo: removed with what is left in it)."""

    path: str = ""

    def apply(self, kernel: KernelApi) -> None:
        safe_dir(self.path)

    def undo(self, kernel: KernelApi) -> None:
        shutil.rmtree(self.path, ignore_errors=True)

    def owned(self, kernel: KernelApi, done: bool, proof: Evidence | None) -> bool:
        # Made in the cluster's run directory, where no one else writes.
        return done or Path(self.path).is_dir()

    def satisfied(self, snap: Snapshot) -> bool:
        return Path(self.path).is_dir()

    def argv(self) -> list[str]:
        return ["mkdir", "-p", self.path]


@valueclass(frozen=True)
class AttachPod(Op):
    """CNI ADD of a pod's namespace (netns) to its node's cni0; undo is CNI DEL."""

    node_netns: str = ""
    pod: str = ""
    config: str = ""  # the network config as JSON: the ledger keeps plain data

    def apply(self, kernel: KernelApi) -> None:
        from cnilab.cni import plugin

        plugin.add(json.loads(self.config), self.pod, self.netns or "", POD_IF,
                   node=self.node_netns, kernel=kernel)  # type: ignore[arg-type]

    def undo(self, kernel: KernelApi) -> None:
        from cnilab.cni import plugin

        plugin.delete(json.loads(self.config), self.pod, self.netns or "", POD_IF,
                      node=self.node_netns, kernel=kernel)  # type: ignore[arg-type]

    def lives_in(self) -> tuple[str | None, ...]:
        # The pod's end is in the pod, the other in the node, the lease in the IPAM store:
        # only when both namespaces go is there nothing left for CNI DEL to do.
        return (self.netns, self.node_netns)

    def satisfied(self, snap: Snapshot) -> bool:
        ns = snap.ns(self.netns)
        link = ns.link(POD_IF) if ns else None
        return link is not None and bool(link.addresses)

    def argv(self) -> list[str]:
        return ["cnilab", "ADD", self.pod, netns_path(self.netns or ""), POD_IF]

    def command(self, here: str | None) -> str:
        path = netns_path(self.netns or "")
        return (f"CNI_COMMAND=ADD CNI_CONTAINERID={self.pod} CNI_NETNS={path} "
                f"CNI_IFNAME={POD_IF} CNI_PATH=/opt/cni/bin cnilab < {NETWORK}.conf")


def attach_op(plan: ClusterPlan, node: Node, pod: Pod, ledger: Ledger) -> AttachPod:
    """The CNI ADD that attaches `pod` on `node`."""
    conf = network_config(node, f"{store_dir(ledger)}/{node.name}")
    return AttachPod(plan.pod_netns(pod), plan.netns(node), pod.name, json.dumps(conf))
