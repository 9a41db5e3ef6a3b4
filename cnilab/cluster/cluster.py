"""The cluster as a domain object: up, down, observe. No printing, no exiting.

Everything cluster makes is recorded in its own ledger (lesson "cluster", the exact prefix) before
it is made,
so `down` removes exactly that, also after a SIGKILL during `up`. The first entry records the
plan's options, so status, exec, quiz and down know the cluster without being told its size.
"""

from __future__ import annotations

import sys
from ipaddress import IPv4Network

from cnilab.cluster import components, kubectl, pods
from cnilab.cluster.components import StartComponent
from cnilab.cluster.plan import LESSON, ClusterPlan, build_plan
from cnilab.cluster.steps import UnplugLastPort, network_ops
from cnilab.compat import field, valueclass
from cnilab.errors import ConfigError
from cnilab.kernel import Kernel
from cnilab.ledger import Ledger
from cnilab.names import Identity
from cnilab.ops import OPS, AddNetns, AddRule, KernelApi, Op, registry_of
from cnilab.ops.faults import FAULT_OPS
from cnilab.ops.files import NetnsEtcFile
from cnilab.ops.trace import AddTraceTable
from cnilab.owner import Owner
from cnilab.state import Snapshot


@valueclass(frozen=True)
class PlanCluster(Op):
    """The options the cluster was built with (a ledger entry; changes nothing in the kernel)."""

    nodes: int = 0
    pods_per_node: int = 0
    pod_network: str = ""

    def apply(self, kernel: KernelApi) -> None:
        pass

    def satisfied(self, snap: Snapshot) -> bool:
        return True

    def argv(self) -> list[str]:
        return ["cnilab", "cluster", "up", "--nodes", str(self.nodes),
                "--pods-per-node", str(self.pods_per_node), "--pod-network", self.pod_network]


# Every op a cluster ledger may hold: the engine's and the cluster's own, listed.
CLUSTER_OPS = {**OPS, **registry_of(PlanCluster, StartComponent, UnplugLastPort, pods.AttachPod,
                                    pods.IpamStore, AddTraceTable, NetnsEtcFile,
                                    kubectl.KubectlScript), **FAULT_OPS}


def cluster_ledger(prefix: str, run_dir: str | None = None) -> Ledger:
    """The ledger of the cluster under exactly `prefix`, reading the cluster's ops."""
    return Ledger.of(Identity(LESSON, prefix), run_dir, ops=CLUSTER_OPS)


@valueclass
class UpReport:
    """What `up` changed: network ops, component processes, pods attached, the kubectl."""

    network: list[Op] = field(default_factory=list)
    components: list[Op] = field(default_factory=list)
    pods: list[str] = field(default_factory=list)
    tools: list[Op] = field(default_factory=list)  # the nodes' kubectl

    @property
    def changed(self) -> bool:
        """Whether anything at all was made."""
        return bool(self.network or self.components or self.pods or self.tools)


def recorded_plan(ledger: Ledger, prefix: str) -> ClusterPlan | None:
    """The plan of the cluster this ledger records, if one is up."""
    first = next((op for op in ledger.ops() if isinstance(op, PlanCluster)), None)
    if first is None:
        return None
    return build_plan(first.nodes, first.pods_per_node, prefix, IPv4Network(first.pod_network))


class Cluster(Owner):
    """One cluster (plan + kernel + ledger). Call its methods under `with cluster.locked():`."""

    def __init__(self, plan: ClusterPlan, kernel: Kernel | None = None,
                 ledger: Ledger | None = None) -> None:
        self.plan = plan
        self.kernel = kernel or Kernel()
        self.ledger = ledger or cluster_ledger(plan.prefix)

    def snapshot(self, with_pods: bool = True) -> Snapshot:
        """Observe the cluster's namespaces (NAT rules of the gateway and the nodes)."""
        plan = self.plan
        nodes = [plan.netns(n) for n in plan.nodes]
        pod_names = [plan.pod_netns(p) for p in plan.all_pods()] if with_pods else []
        snap = self.kernel.observe([plan.lan_netns, plan.world_netns, *nodes, *pod_names],
                                   nat_in=[plan.lan_netns, *nodes], listen_in=())
        for name in pod_names:  # a thousand pods would hold thousands of descriptors open
            self.kernel.close_netns(name)
        return snap

    # -- up --------------------------------------------------------------------------------------

    def up(self) -> UpReport:
        """Make what the kernel does not hold yet of the cluster; a second call changes nothing."""
        self._check_same_plan()
        snap = self.snapshot(with_pods=False)
        report = UpReport()
        network = network_ops(self.plan)
        missing = [op for op in network if not op.satisfied(snap)]
        pod_netns = [AddNetns(None, self.plan.pod_netns(p)) for p in self.plan.all_pods()]
        # Before anything is touched, and for every name, present or not: a namespace that
        # already exists satisfies AddNetns, but it is only ours if the ledger says so.
        self.ledger.check_free([*network, *pod_netns], snap, self.kernel)
        for op in missing:  # a file in /etc/netns that is not ours: refused before anything
            if isinstance(op, NetnsEtcFile):
                op.refuse_other()
        if any(isinstance(op, AddRule) for op in missing):
            self.kernel.require_iptables()
        if recorded_plan(self.ledger, self.plan.prefix) is None:  # (a scenario records first)
            self.apply([PlanCluster(None, len(self.plan.nodes), self.plan.pods_per_node,
                                     str(self.plan.pod_network))])
        report.network = self.apply(missing)
        script = kubectl.script_op(self.ledger, self.plan.prefix, sys.executable)
        if not script.satisfied(snap):
            report.tools = self.apply([script])
        live = components.running()
        start = [op for op in self.component_ops() if op.token not in live]
        try:
            report.components = self.apply(start)
        finally:
            components.wait_ready()
        report.pods = self._attach_pods()
        return report

    def component_ops(self) -> list[StartComponent]:
        """One StartComponent per component of every node, etcd before its clients."""
        return components.component_ops(self.plan)

    def _attach_pods(self) -> list[str]:
        if not self.plan.pods_per_node:
            return []
        snap = self.snapshot()
        store = pods.IpamStore(None, pods.store_dir(self.ledger))
        if not store.satisfied(snap):
            self.apply([store])
        attached = []
        for node in self.plan.nodes:
            for pod in self.plan.pods(node):
                attach = pods.attach_op(self.plan, node, pod, self.ledger)
                if attach.satisfied(snap):
                    continue
                ns = self.plan.pod_netns(pod)
                ops: list[Op] = [attach]
                if ns not in snap.netns:
                    ops.insert(0, AddNetns(None, ns))
                self.apply(ops)
                attached.append(pod.name)
        return attached

    def _check_same_plan(self) -> None:
        up = recorded_plan(self.ledger, self.plan.prefix)
        if up is not None and (len(up.nodes), up.pods_per_node, up.pod_network) != (
                len(self.plan.nodes), self.plan.pods_per_node, self.plan.pod_network):
            raise ConfigError.of("cluster_other_up", nodes=len(up.nodes), pods=up.pods_per_node,
                                 network=up.pod_network)

    # -- down ------------------------------------------------------------------------------------

    def down(self) -> list[Op]:
        """Remove what the ledger recorded and the kernel proves the cluster's, nothing else.

        The one teardown path (Ledger.teardown): component processes first (they would keep
        their node's namespace alive), then newest first; what lives in the cluster's own
        namespaces goes with them, pods' attachments too (the nodes go; the IPAM store goes
        whole). Idempotent. The lock file goes with the ledger (see Ledger.lock).
        """
        undone = self.ledger.teardown(self.kernel).undone
        self.ledger.clear()
        return undone
