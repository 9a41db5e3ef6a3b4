"""The cluster as a place to trace packets: its namespaces by name, the addresses of the lesson."""

from __future__ import annotations

from cnilab.cluster.plan import LAN, OUTSIDE_HOST, ClusterPlan
from cnilab.trace.site import LOOPBACK, Site


def cluster_site(plan: ClusterPlan) -> Site:
    """Routers first (the LAN's gateway, the nodes), then the pods and the outside world.

    A trace may send to the LAN, the pod network and the outside host's subnet; the outside
    world can answer neither the LAN nor a pod (only the gateway's NAT makes that work).
    """
    roles: dict[str | None, str] = {plan.lan_netns: "lan"}
    roles.update({plan.netns(n): n.name for n in plan.nodes})
    roles.update({plan.pod_netns(p): p.name for p in plan.all_pods()})
    roles[plan.world_netns] = "world"
    return Site(roles, (LAN, plan.pod_network, OUTSIDE_HOST.network, LOOPBACK),
                plan.world_netns, (LAN, plan.pod_network))
