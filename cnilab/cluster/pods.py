"""Pods: a namespace each, attached to the node's cni0 by the cnilab CNI plugin, in process.

As a runtime does: the pod's namespace is made first (AddNetns), then the plugin is called with
CNI ADD for it; `down` calls CNI DEL, which releases the pod's address, before the namespace goes.
Each node has its own IPAM store (host-local keeps one per host), under the cluster's run dir.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cnilab.cluster.plan import POD_BRIDGE, POD_IF, ClusterPlan, Node, Pod
from cnilab.kernel import netns_path
from cnilab.ledger import Ledger
from cnilab.ops import Kernel, Op
from cnilab.state import Snapshot

CNI_VERSION = "1.0.0"
NETWORK = "cbr0"  # the network name flannel's bridge config uses on kubeadm nodes


def network_config(plan: ClusterPlan, node: Node, data_dir: str) -> dict[str, Any]:
    """The CNI network config a node's runtime would pass: bridge cni0, host-local style IPAM."""
    return {
        "cniVersion": CNI_VERSION,
        "name": NETWORK,
        "type": "cnilab-cni",
        "bridge": POD_BRIDGE,
        "isGateway": True,
        "ipMasq": False,  # the node masquerades for the whole pod CIDR (steps.node_ops)
        "ipam": {
            "type": "cnilab-ipam",
            "ranges": [[{"subnet": str(node.pod_cidr),
                         "gateway": str(node.bridge_address.ip)}]],
            "routes": [{"dst": "0.0.0.0/0"}],
            "dataDir": data_dir,
        },
    }


def ipam_dir(ledger: Ledger, node: str) -> str:
    """Where a node's IPAM store lives: beside the cluster's ledger."""
    return str(ledger.path.with_suffix("") ) + f"-ipam/{node}"


@dataclass(frozen=True)
class AttachPod(Op):
    """CNI ADD of a pod's namespace to its node's cni0 (undo: CNI DEL, then the store goes)."""

    node_netns: str = ""
    pod: str = ""
    config: str = ""  # the network config, as JSON (the ledger keeps plain data)

    def _conf(self) -> dict[str, Any]:
        import json

        return dict(json.loads(self.config))

    def apply(self, kernel: Kernel) -> None:
        from cnilab.cni import plugin

        Path(self._conf()["ipam"]["dataDir"]).mkdir(parents=True, exist_ok=True)
        plugin.add(self._conf(), self.pod, netns_path(self.netns or ""), POD_IF, kernel,
                   host_netns=self.node_netns)

    def undo(self, kernel: Kernel) -> None:
        from cnilab.cni import plugin

        plugin.delete(self._conf(), self.pod, netns_path(self.netns or ""), POD_IF, kernel,
                      host_netns=self.node_netns)
        store = Path(self._conf()["ipam"]["dataDir"])
        if store.is_dir() and not any(p.name[0].isdigit() for p in store.rglob("*")):
            shutil.rmtree(store.parent if store.parent.name.endswith("-ipam") else store,
                          ignore_errors=True)

    def satisfied(self, snap: Snapshot) -> bool:
        ns = snap.ns(self.netns)
        link = ns.link(POD_IF) if ns else None
        return link is not None and bool(link.addresses)

    def argv(self) -> list[str]:
        return ["cnilab-cni", "ADD", self.pod]


def attach_op(plan: ClusterPlan, node: Node, pod: Pod, ledger: Ledger) -> AttachPod:
    """The CNI ADD that attaches `pod` on `node`."""
    import json

    conf = network_config(plan, node, ipam_dir(ledger, node.name))
    return AttachPod(plan.pod_netns(pod), plan.netns(node), pod.name, json.dumps(conf))


def attached(kernel: Any, netns: str) -> bool:
    """Whether the pod's namespace already has its eth0 with an address."""
    snap = kernel.observe([netns])
    ns = snap.ns(netns)
    link = ns.link(POD_IF) if ns else None
    return link is not None and bool(link.addresses)
