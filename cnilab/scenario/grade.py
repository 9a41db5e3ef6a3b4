"""Grading a scenario: real packets for the symptom, kernel facts for its cause.

The packets are the same for every scenario of a lesson (so `check` never says which fault it
looks for): the healthy lab's connectivity, NAT and neighbourhood. The causes are facts about
the observed kernel that hold however the student fixed it (any default route via the bridge,
any ACCEPT rule or an ACCEPT policy), and fail when the symptom was only hidden.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from ipaddress import IPv4Address, IPv4Network
from typing import Any

from cnilab.cluster.plan import GATEWAY, OUTSIDE_HOST, POD_IF, ClusterPlan
from cnilab.compat import field, valueclass
from cnilab.i18n import t
from cnilab.kernel import Kernel
from cnilab.lab import proofs
from cnilab.lab.proofs import Proof
from cnilab.lab.topology import Topology
from cnilab.ops import FORWARDING, ns_of, rule_tokens
from cnilab.ops.faults import policy_of
from cnilab.scenario.catalog import BRIDGE_NF, Plan, red_blue
from cnilab.state import Namespace, Route, Snapshot, first_ip

ELSEWHERE = "198.51.100.1"  # TEST-NET-2: "any address off the lab", only looked up, never sent to


@valueclass(frozen=True)
class Cause:
    """One fact about the kernel that must hold once the fault is really fixed."""

    key: str
    params: dict[str, Any]
    ok: bool

    def claim(self, lang: str = "en") -> str:
        """The fact, in `lang`."""
        return t(f"scenario.cause_{self.key}", lang, **self.params)


@valueclass
class Verdict:
    """The packets (the symptom) and the causes (the fault) as the kernel shows them now."""

    packets: list[Proof] = field(default_factory=list)
    causes: list[Cause] = field(default_factory=list)

    @property
    def symptom_gone(self) -> bool:
        """Every packet got through as in a healthy lab."""
        return all(p.ok for p in self.packets)

    @property
    def fixed(self) -> bool:
        """The symptom is gone and so is its cause (graded only once the symptom is gone)."""
        return self.symptom_gone and bool(self.causes) and all(c.ok for c in self.causes)


@valueclass(frozen=True)
class Context:
    """What a cause looks at: the observed state, the kernel (for filter rules), the plan."""

    snap: Snapshot
    kernel: Kernel
    plan: Plan
    values: dict[str, str]

    def ns(self, name: str | None) -> Namespace:
        """An observed namespace (empty when it is gone)."""
        return ns_of(self.snap, name)


def route_to(routes: tuple[Route, ...], address: str) -> Route | None:
    """The route the kernel picks for `address`: the longest prefix that holds it."""
    ip = IPv4Address(address)
    best: tuple[int, Route] | None = None
    for r in routes:
        net = IPv4Network("0.0.0.0/0" if r.dst == "default" else r.dst, strict=False)
        if ip in net and (best is None or net.prefixlen > best[0]):
            best = (net.prefixlen, r)
    return best[1] if best else None


# -- packets -------------------------------------------------------------------------------------

Probe = Callable[[], list[Proof]]


def run_probes(jobs: list[Probe]) -> list[Proof]:
    """Run the probes at once (a lost packet waits for its timeout), results in their order.

    A probe that fails runs once more: a fix typed a moment ago may not have settled yet (the
    kernel tells a bridge about a veth's new carrier up to a second later, and a neighbour
    that failed to resolve is retried only when the next packet comes).
    """
    def run(job: Probe) -> list[Proof]:
        first = job()
        return first if all(p.ok for p in first) else job()

    with ThreadPoolExecutor(max_workers=len(jobs) or 1) as pool:
        return [p for done in pool.map(run, jobs) for p in done]


def _ping(src: str, who: str, dst: str, to: str) -> Probe:
    return lambda: [proofs.ping_proof(src, who, dst, to, True)]


def lab_probes(topo: Topology) -> list[Probe]:
    """A healthy lab: each container reaches the bridge, the other and the outside; NAT right."""
    red, blue = red_blue(topo)
    gw, outside = str(topo.bridge_address.ip), str(topo.internet_address.ip)
    jobs: list[Probe] = []
    for c, other in ((red, blue), (blue, red)):
        ns = topo.netns(c)
        jobs += [_ping(ns, c.name, gw, "@bridge"),
                 _ping(ns, c.name, str(other.address.ip), other.name),
                 _ping(ns, c.name, outside, "@outside_host")]
    jobs.append(lambda: proofs.nat_sources(topo))
    return jobs


def cluster_probes(plan: ClusterPlan, snap: Snapshot) -> list[Probe]:
    """A healthy cluster: pods reach each other across nodes and on one node, and the outside."""
    cp, n1 = plan.nodes[0], plan.nodes[1]
    first = [plan.pods(n)[0] for n in (cp, n1)]
    pairs = [(first[0], first[1]), (first[1], first[0])] + [
        (first[0], p) for p in plan.pods(cp)[1:2]]
    jobs: list[Probe] = []
    for src, dst in pairs:
        ip = first_ip(ns_of(snap, plan.pod_netns(dst)).link(POD_IF))
        jobs.append(_ping(plan.pod_netns(src), src.name, ip, dst.name) if ip else
                    _no_address(plan.pod_netns(src), src.name, dst.name))
    for pod in first:
        jobs.append(_ping(plan.pod_netns(pod), pod.name, str(OUTSIDE_HOST.ip), "@outside_host"))
    return jobs


def _no_address(src: str, who: str, to: str) -> Probe:
    return lambda: [Proof("ping_ok", {"who": who, "to": to, "address": "?"}, False,
                          ("no_address", {}), f"ip netns exec {src} ip -4 addr")]


# -- causes --------------------------------------------------------------------------------------


def _topo(ctx: Context) -> Topology:
    assert isinstance(ctx.plan, Topology)
    return ctx.plan


def _forwarding(ctx: Context) -> Cause:
    value = ctx.ns(_topo(ctx).node).sysctls.get(FORWARDING)
    return Cause("forwarding", {"node": ctx.values["node"]}, value == "1")


def _ports_up(ctx: Context) -> Cause:
    topo = _topo(ctx)
    links = [ctx.ns(topo.node).link(c.peer) for c in topo.containers]
    return Cause("ports_up", {"bridge": topo.bridge}, all(ln is not None and ln.up for ln in links))


def _ports_attached(ctx: Context) -> Cause:
    topo = _topo(ctx)
    links = [ctx.ns(topo.node).link(c.peer) for c in topo.containers]
    return Cause("ports_attached", {"bridge": topo.bridge},
                 all(ln is not None and ln.master == topo.bridge for ln in links))


def _default_routes(ctx: Context) -> Cause:
    topo, gw = _topo(ctx), ctx.values["gw"]
    ok = True
    for c in topo.containers:
        routes = ctx.ns(topo.netns(c)).routes
        for address in (ctx.values["outside_ip"], ELSEWHERE):
            r = route_to(routes, address)
            ok = ok and r is not None and r.gateway == gw
    return Cause("default_routes", {"gw": gw}, ok)


def _masks(ctx: Context) -> Cause:
    topo = _topo(ctx)
    ok = True
    for c in topo.containers:
        link = ctx.ns(topo.netns(c)).link(c.veth)
        ok = ok and link is not None and str(c.address) in link.addresses
    return Cause("masks", {"subnet": ctx.values["subnet"]}, ok)


def _masquerade(ctx: Context) -> Cause:
    rules = ctx.ns(_topo(ctx).node).nat or ()
    nat = [rule_tokens(r) for r in rules if r.startswith("-A POSTROUTING ")]
    ok = any(tokens[-1] == "MASQUERADE" or "SNAT" in tokens for tokens in nat)
    return Cause("masquerade", {"subnet": ctx.values["subnet"]}, ok)


def _bridge_nf(ctx: Context) -> Cause:
    node = _topo(ctx).node
    present = ctx.kernel.has_sysctl(node, BRIDGE_NF)
    value = ctx.kernel.read_sysctl(node, BRIDGE_NF) if present else None
    return Cause("bridge_nf", {}, value in (None, "1"))


def _forward_accepts(ctx: Context) -> Cause:
    rules = ctx.kernel.iptables(_topo(ctx).node, ["-S", "FORWARD"])
    ok = policy_of(rules, "FORWARD") == "ACCEPT" or any(
        line.startswith("-A FORWARD ") and rule_tokens(line)[-2:] == ("-j", "ACCEPT")
        for line in rules.splitlines())
    return Cause("forward_accepts", {}, ok)


def _unique_addresses(ctx: Context) -> Cause:
    topo = _topo(ctx)
    wanted = [str(c.address.ip) for c in topo.containers] + [str(topo.bridge_address.ip)]
    held = [a.split("/")[0] for ns in ctx.snap.spaces.values() for ln in ns.links
            for a in ln.addresses]
    return Cause("unique_addresses", {}, all(held.count(ip) == 1 for ip in wanted))


def _pod_routes(ctx: Context) -> Cause:
    plan = ctx.plan
    assert isinstance(plan, ClusterPlan)
    lan = ctx.ns(plan.lan_netns).routes
    ok = True
    for a in plan.nodes:
        for b in plan.nodes:
            if a is b:
                continue
            target = str(b.pod_cidr.network_address + 2)
            r = route_to(ctx.ns(plan.netns(a)).routes, target)
            # Straight to the node, or to the LAN's router when the router knows the way.
            if r is not None and r.gateway == str(GATEWAY.ip):
                r = route_to(lan, target)
            ok = ok and r is not None and r.gateway == str(b.address.ip)
    return Cause("pod_routes", {}, ok)


CAUSES: dict[str, Callable[[Context], Cause]] = {
    "forwarding": _forwarding,
    "ports_up": _ports_up,
    "ports_attached": _ports_attached,
    "default_routes": _default_routes,
    "masks": _masks,
    "masquerade": _masquerade,
    "bridge_nf": _bridge_nf,
    "forward_accepts": _forward_accepts,
    "unique_addresses": _unique_addresses,
    "pod_routes": _pod_routes,
}


def grade_causes(keys: tuple[str, ...], ctx: Context) -> list[Cause]:
    """The scenario's causes, checked against the kernel."""
    return [CAUSES[key](ctx) for key in keys]

