"""Where the packet died and why, in the student's terms; the NAT rewrites; the whole result.

Reasons, each a sentence and a hint in lessons/ui ([trace_reason], [trace_hint]): no_route,
forwarding_off, link_down, no_carrier, not_bridge_port, arp_unanswered, rule_drop, policy_drop,
no_listener, no_way_back, no_answer, lost.
"""

from __future__ import annotations

from ipaddress import ip_address, ip_interface
from typing import Any

from cnilab.compat import field, valueclass
from cnilab.state import Snapshot
from cnilab.trace.observe import Observation
from cnilab.trace.path import Hop, Lookup, Visit, Walk, link_in, peer_of, visits, walk
from cnilab.trace.plan import TracePlan
from cnilab.trace.probe import ProbeResult
from cnilab.trace.site import Site


@valueclass(frozen=True)
class Dropped:
    """Where the packet died (namespace, interface) and why (a reason key and its parameters)."""

    netns: str | None
    dev: str | None
    reason: str
    params: dict[str, Any] = field(default_factory=dict)


@valueclass
class Leg:
    """One direction: its hops, whether it arrived, and where it died if it did not."""

    hops: list[Hop]
    delivered: bool
    dropped: Dropped | None = None


@valueclass(frozen=True)
class Nat:
    """A NAT rewrite conntrack holds: the packet before and after, and the rule that made it."""

    netns: str | None
    rules: tuple[str, ...]
    before: tuple[str, str]  # (src, dst), with ports for TCP/UDP
    after: tuple[str, str]


@valueclass
class TraceResult:
    """Everything `cnilab trace` shows."""

    plan: TracePlan
    probe: ProbeResult
    request: Leg
    reply: Leg | None
    nat: list[Nat]
    roles: dict[str | None, str]

    @property
    def delivered(self) -> bool:
        """The probe reached its destination and was taken in there."""
        return self.request.delivered


def analyse(obs: Observation, lookup: Lookup, site: Site) -> TraceResult:
    """Read an observation into hops, NAT rewrites and a verdict for each direction."""
    plan = obs.plan
    vis = visits(obs.events, obs.before)
    out = walk(obs, vis, "request", plan.netns, lookup)
    refused = _refused(obs, out)
    request = Leg(out.hops, out.delivered and refused is None)
    request.dropped = refused or (None if request.delivered else
                                  _why(obs, lookup, site, out, "request"))
    reply = None
    if out.delivered:
        back = walk(obs, vis, "reply" if refused is None or plan.proto == "tcp" else "error",
                    out.delivered_at, lookup)
        if back.legs or plan.proto != "udp":
            reply = Leg(back.hops, back.delivered and back.delivered_at == plan.netns)
            if not reply.delivered:
                reply.dropped = (_no_way_back(obs, lookup, site, out) if not back.legs
                                 else _why(obs, lookup, site, back, "reply"))
    return TraceResult(plan, obs.probe, request, reply, _nats(obs, vis, lookup),
                       dict(site.roles))


def _refused(obs: Observation, out: Walk) -> Dropped | None:
    """Delivered to a namespace where nothing listens: TCP answers RST, UDP an ICMP error."""
    if not out.delivered or obs.probe.answer != "refused":
        return None
    dev = out.hops[-1].dev if out.hops else None
    return Dropped(out.delivered_at, dev, "no_listener",
                   {"proto": obs.plan.proto, "port": obs.plan.port})


def _why(obs: Observation, lookup: Lookup, site: Site, w: Walk, which: str) -> Dropped:
    """The reason a direction stopped where it did."""
    for ns, vs in w.legs:  # a rule or a policy that said drop explains itself
        for v in vs:
            if v.verdict == "drop" and not v.ours:
                dev = v.iif or v.oif
                where = {"table": v.table, "chain": v.rules[-1][0] if v.rules else v.chain}
                if v.handle is not None:
                    rule = lookup.rule(ns, v.family, v.table, v.handle) or f"handle {v.handle}"
                    return Dropped(ns, dev, "rule_drop", {**where, "rule": rule})
                return Dropped(ns, dev, "policy_drop", where)
    if not w.legs:
        return _at_source(obs, lookup)
    ns, vs = w.legs[-1]
    last = vs[-1]
    out_dev = next((v.oif for v in reversed(vs) if v.ours and v.chain == "postrouting"), None)
    if out_dev is not None:
        return _after_leaving(obs, lookup, ns, out_dev, vs)
    src, dst = last.packet.src, last.packet.dst
    in_dev = next((v.iif for v in vs if v.at("inet", "prerouting")), None)
    if in_dev is not None and (trouble := _not_a_port(obs.before, ns, in_dev)):
        return trouble
    decision = lookup.route(ns, dst, src, in_dev)
    if decision.error:
        space = obs.before.ns(ns)
        forwarding = space.sysctls.get("net.ipv4.ip_forward") if space else None
        if forwarding == "0" and not lookup.route(ns, dst).error:
            return Dropped(ns, in_dev, "forwarding_off", {})
        return Dropped(ns, in_dev, "no_route", {"dst": dst, "said": decision.error})
    if trouble := _holder_trouble(obs.before, dst):
        return trouble  # e.g. a frame the bridge had no port to send to
    return Dropped(ns, in_dev, "lost", {})


def _at_source(obs: Observation, lookup: Lookup) -> Dropped:
    """Nothing left the sender: its own routing (or its own link) stopped the packet."""
    ns, plan = obs.plan.netns, obs.plan
    space = obs.before.ns(ns)
    for link in (space.links if space else ()):
        if link.name != "lo" and link.addresses and not link.up:
            return Dropped(ns, link.name, "link_down", {"dev": link.name})
    decision = lookup.route(ns, plan.dst)
    if decision.error:
        gateway = _gateway(obs.before, ns)
        return Dropped(ns, None, "no_route", {"dst": plan.dst, "said": decision.error,
                                               "hint": "default" if gateway else "",
                                               "gateway": gateway or ""})
    return Dropped(ns, decision.dev, "lost", {"said": obs.probe.detail or ""})


def _gateway(snap: Snapshot, netns: str | None) -> str | None:
    """The address of the bridge this namespace is cabled to (the gateway a default route needs).

    A container's subnet is its bridge's subnet: the bridge's own address in it is the gateway.
    """
    space = snap.ns(netns)
    nets = {ip_interface(a).network for ln in (space.links if space else ()) if ln.name != "lo"
            for a in ln.addresses}
    for other, ns in snap.spaces.items():
        for link in ns.links:
            for a in link.addresses:
                if other != netns and link.kind == "bridge" and ip_interface(a).network in nets:
                    return str(ip_interface(a).ip)
    return None


def _after_leaving(obs: Observation, lookup: Lookup, ns: str | None, dev: str,
                   vs: list[Visit]) -> Dropped:
    """It left `ns` by `dev` and no one saw it after: the cable, the bridge or ARP."""
    before = obs.before
    link = link_in(before, ns, dev)
    if link is not None and not link.up:
        return Dropped(ns, dev, "link_down", {"dev": dev})
    peer = peer_of(before, ns, dev)
    if peer is not None:
        other = link_in(before, peer[0], peer[1])
        if other is not None and not other.up:
            return Dropped(ns, dev, "no_carrier", {"dev": dev, "peer": other.name})
        if trouble := _not_a_port(before, peer[0], peer[1]):
            return trouble
    last = vs[-1].packet
    hop = next((p for _, p in _nexthop(lookup, ns, last.dst, dev)), last.dst)
    if trouble := _holder_trouble(before, hop):
        return trouble
    after = obs.after.ns(ns)
    entry = next((n for n in (after.neigh if after else ()) if n.ip == hop), None)
    if entry is None or entry.state in ("INCOMPLETE", "FAILED"):
        return Dropped(ns, dev, "arp_unanswered",
                       {"ip": hop, "nobody": _holder(before, hop) is None})
    return Dropped(ns, dev, "lost", {})


def _holder_trouble(before: Snapshot, address: str) -> Dropped | None:
    """The namespace holding `address` cannot be reached: its cable is down or unplugged."""
    holder = _holder(before, address)
    if holder is None:
        return None
    h_ns, h_link = holder
    if not h_link.up:
        return Dropped(h_ns, h_link.name, "link_down", {"dev": h_link.name})
    h_peer = peer_of(before, h_ns, h_link.name)
    if h_peer is None:
        return None
    other = link_in(before, h_peer[0], h_peer[1])
    if other is not None and not other.up:
        return Dropped(h_peer[0], other.name, "link_down", {"dev": other.name})
    return _not_a_port(before, h_peer[0], h_peer[1])


def _nexthop(lookup: Lookup, ns: str | None, dst: str, dev: str) -> list[tuple[str, str]]:
    decision = lookup.route(ns, dst)
    if decision.error or decision.dev != dev:
        return []
    return [(dev, decision.gateway or dst)]


def _holder(snap: Snapshot, address: str) -> tuple[str | None, Any] | None:
    """The namespace and link that hold an address."""
    for ns_name, ns in snap.spaces.items():
        for link in ns.links:
            if any(ip_interface(a).ip == ip_address(address) for a in link.addresses):
                return ns_name, link
    return None


def _not_a_port(snap: Snapshot, ns: str | None, dev: str) -> Dropped | None:
    """A container's cable whose host end was never plugged into the bridge of its subnet.

    The host end has no master, and the container end holds an address of a bridge's subnet in
    this namespace (an uplink's peer, in another subnet, is not meant to be a port).
    """
    link, peer = link_in(snap, ns, dev), peer_of(snap, ns, dev)
    if link is None or link.kind != "veth" or link.master or peer is None:
        return None
    other = link_in(snap, peer[0], peer[1])
    theirs = {ip_interface(a).network for a in (other.addresses if other else ())}
    space = snap.ns(ns)
    for bridge in (ln for ln in (space.links if space else ()) if ln.kind == "bridge"):
        if any(ip_interface(a).network in theirs for a in bridge.addresses):
            return Dropped(ns, dev, "not_bridge_port", {"dev": dev, "bridge": bridge.name})
    return None


def _no_way_back(obs: Observation, lookup: Lookup, site: Site, out: Walk) -> Dropped:
    """Delivered, but the answer never left: the destination cannot route back to the source."""
    ns = out.delivered_at
    seen = out.legs[-1][1][-1].packet if out.legs else None
    src = seen.src if seen else obs.plan.dst
    decision = lookup.route(ns, src)
    if not decision.error:
        return Dropped(ns, None, "no_answer", {})
    gateway = _gateway(obs.before, ns)
    if ns == site.outside and any(ip_address(src) in n for n in site.private):
        hint = "masquerade"
    else:
        hint = "default_route" if gateway else ""
    return Dropped(ns, None, "no_way_back", {"src": src, "said": decision.error, "hint": hint,
                                             "gateway": gateway or ""})


def _nats(obs: Observation, vis: dict[str | None, list[Visit]], lookup: Lookup) -> list[Nat]:
    """Each NAT rewrite conntrack made for the probe, with the nat rules it hit there."""
    found = []
    ports = obs.plan.proto in ("tcp", "udp")

    def ep(addr: str, port: int) -> str:
        return f"{addr}:{port}" if ports else addr

    for ns, conns in obs.conntrack.items():
        for c in conns:
            if not (c.snat or c.dnat):
                continue
            rules = tuple(lookup.rule(ns, v.family, v.table, h) or f"handle {h}"
                          for v in vis.get(ns, []) if v.table == "nat" and not v.ours
                          for _, h, verdict in v.rules if verdict == "accept")
            found.append(Nat(ns, tuple(dict.fromkeys(rules)),
                             (ep(c.orig.src, c.orig.sport), ep(c.orig.dst, c.orig.dport)),
                             (ep(c.reply.dst, c.reply.dport), ep(c.reply.src, c.reply.sport))))
    return found

