"""What the node's filter table does to the lab's packets: a Docker host's FORWARD policy.

Docker sets the FORWARD chain's policy to DROP when it starts (and loads br_netfilter, so even
packets between two containers on one bridge cross FORWARD): in place on such a machine the
containers' packets are dropped unless a rule accepts them. cnilab changes no rule of Docker's;
it says so, and what Kubernetes nodes do about it (ACCEPT rules for the pod network in
DOCKER-USER, the chain Docker leaves to its users).
"""

from __future__ import annotations

from cnilab.compat import valueclass
from cnilab.errors import CnilabError
from cnilab.kernel import Kernel
from cnilab.lab.topology import Topology
from cnilab.ops.faults import policy_of

USER_CHAIN = "DOCKER-USER"  # Docker jumps here from FORWARD before its own rules


@valueclass(frozen=True)
class ForwardDrop:
    """The FORWARD policy drops forwarded packets; where an ACCEPT rule for the lab would go."""

    policy: str
    chain: str  # DOCKER-USER where Docker made it, else FORWARD itself

    def params(self, topo: Topology) -> dict[str, str]:
        """The sentences' parameters: the policy, the chain and the two rules that let the
        lab's subnet through."""
        rule = f"iptables -I {self.chain} {{}} {topo.subnet} -j ACCEPT"  # -s, then -d
        return {"policy": self.policy, "chain": self.chain, "subnet": str(topo.subnet),
                "accept_from": rule.format("-s"), "accept_to": rule.format("-d")}


def forward_drop(kernel: Kernel, topo: Topology) -> ForwardDrop | None:
    """In place, when the node's FORWARD policy drops what it forwards: what and where; None
    when it accepts, in the isolated lab (a fresh node accepts), or without iptables."""
    if not topo.in_place or not kernel.has_iptables:
        return None
    try:
        rules = kernel.iptables(topo.node, ["-t", "filter", "-S"])
    except (CnilabError, OSError):
        return None  # no filter table to read: nothing there drops
    policy = policy_of(rules, "FORWARD")
    if policy in (None, "ACCEPT"):
        return None
    lines = rules.splitlines()
    found = ForwardDrop(str(policy), USER_CHAIN if f"-N {USER_CHAIN}" in lines else "FORWARD")
    # The rules the advice prints (as `iptables -S` lists them): the lab's packets go through.
    accepted = {f"-A {found.chain} {way} {topo.subnet} -j ACCEPT" for way in ("-s", "-d")}
    return None if accepted <= set(lines) else found


def forward_notes(kernel: Kernel, topo: Topology) -> list[tuple[str, dict[str, str]]]:
    """The step's note (ui key, params) when the node's FORWARD policy drops the lab's packets."""
    found = forward_drop(kernel, topo)
    return [] if found is None else [("ui.forward_drop", found.params(topo))]
