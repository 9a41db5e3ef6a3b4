"""From trace events to the packet's path: chain visits, request or reply, hops in order.

A "visit" is one pass of the packet through one base chain: the first event of it carries the
headers and the interfaces, the last one says what decided (a rule or the chain's policy). The
path is walked from the sender, namespace by namespace, following the veth cable out of which
the packet left; the bridge family shows the switching, the inet family the routing.
"""

from __future__ import annotations

from typing import Any, Protocol

from cnilab.compat import field, replace, valueclass
from cnilab.kernel.nftrace import TraceEvent
from cnilab.ops.trace import TABLE
from cnilab.state import Link, RouteDecision, Snapshot
from cnilab.trace.packets import ACK, ECHO_REPLY, ECHO_REQUEST, ICMP, RST, SYN, Packet, parse
from cnilab.trace.plan import TracePlan

DECISIVE = ("accept", "drop", "queue", "stolen")
Note = tuple[str, dict[str, Any]]  # a sentence key of [trace] and its parameters


@valueclass(frozen=True)
class Visit:
    """One pass through one base chain."""

    netns: str | None
    family: str
    table: str
    chain: str
    iif: str | None
    oif: str | None
    packet: Packet
    verdict: str = "accept"
    handle: int | None = None  # the rule that decided; None: the chain's policy
    rules: tuple[tuple[str, int, str], ...] = ()  # (chain, handle, verdict) of each rule hit

    @property
    def ours(self) -> bool:
        """A chain of the trace's own table (it only watches)."""
        return self.table == TABLE

    def at(self, family: str, chain: str) -> bool:
        """Our table's chain of this family and hook."""
        return self.ours and self.family == family and self.chain == chain


@valueclass
class Hop:
    """The packet at one interface, in or out, with its addresses as seen there."""

    netns: str | None
    dev: str
    direction: str  # in / out
    src: str
    dst: str
    notes: list[Note] = field(default_factory=list)


def _names(snap: Snapshot, netns: str | None) -> dict[int, str]:
    ns = snap.ns(netns)
    return {} if ns is None else {ln.index: ln.name for ln in ns.links}


def visits(events: dict[str | None, list[TraceEvent]], before: Snapshot
           ) -> dict[str | None, list[Visit]]:
    """Each namespace's events grouped into chain visits, in the kernel's order."""
    found: dict[str | None, list[Visit]] = {}
    for ns, evs in events.items():
        names = _names(before, ns)
        out: list[Visit] = []
        current: Visit | None = None
        for e in evs:
            if e.network or e.ll:  # the first event of a visit carries the packet
                if current is not None:
                    out.append(current)
                current = Visit(ns, e.family, e.table, e.chain, names.get(e.iif or -1),
                                names.get(e.oif or -1),
                                parse(e.family, e.ll, e.network, e.transport))
            if current is None:
                continue
            current = _decide(current, e)
        if current is not None:
            out.append(current)
        found[ns] = out
    return found


def _decide(v: Visit, e: TraceEvent) -> Visit:
    if e.kind == "rule" and e.handle is not None and not v.ours:
        v = replace(v, rules=(*v.rules, (e.chain, e.handle, e.verdict)))
    if e.kind == "policy" or (e.kind == "rule" and e.verdict in DECISIVE):
        return replace(v, verdict=e.verdict, handle=e.handle if e.kind == "rule" else None)
    return v


def role(plan: TracePlan, p: Packet) -> str | None:
    """request, reply, error (an ICMP error about the probe), arp, or None (not ours)."""
    if p.kind == "arp":
        return "arp"
    if p.kind != "ip":
        return None
    proto = {"icmp": ICMP, "tcp": 6, "udp": 17}[plan.proto]
    if p.is_icmp_error:
        return "error" if p.inner_proto in (None, proto) else None
    if p.proto != proto:
        return None
    if plan.proto == "icmp":
        if p.sport != plan.ident:
            return None
        return {ECHO_REQUEST: "request", ECHO_REPLY: "reply"}.get(
            -1 if p.icmp_type is None else p.icmp_type)
    if plan.proto == "tcp":
        if p.sport == plan.ident and p.flags & SYN and not p.flags & ACK:
            return "request"
        if p.dport == plan.ident and (p.flags & RST or p.flags & SYN):
            return "reply"
        return None  # the handshake's last ACK, a reset on close: not the probe's story
    return "request" if p.sport == plan.ident else "reply" if p.dport == plan.ident else None


def first_pass(plan: TracePlan, vs: list[Visit], which: str) -> list[Visit]:
    """The visits of the first packet of this role (a retransmission repeats them: cut)."""
    seen: set[tuple[str, str, str, str | None, str | None]] = set()
    out = []
    for v in vs:
        if role(plan, v.packet) != which:
            continue
        key = (v.family, v.table, v.chain, v.iif, v.oif)
        if key in seen:
            break
        seen.add(key)
        out.append(v)
    return out


def peer_of(snap: Snapshot, netns: str | None, dev: str) -> tuple[str | None, str] | None:
    """Where the other end of a veth is: (namespace, name)."""
    ns = snap.ns(netns)
    link = ns.link(dev) if ns else None
    if link is None or not link.peer:
        return None
    if ":" not in link.peer:
        return netns, link.peer
    where, name = link.peer.split(":", 1)
    return (None if where == "." else where), name


def link_in(snap: Snapshot, netns: str | None, dev: str | None) -> Link | None:
    """A link of a namespace as observed."""
    ns = snap.ns(netns)
    return ns.link(dev) if ns is not None and dev else None


def bridged(vs: list[Visit]) -> bool:
    """Whether the bridge switched this packet through (not up to the node's own stack)."""
    return any(v.at("bridge", "forward") for v in vs) and not any(
        v.at("bridge", "input") for v in vs)


class Lookup(Protocol):
    """What reading a trace asks the kernel afterwards (KernelLookup, or a recording)."""

    def route(self, netns: str | None, dst: str, src: str | None = None,
              iif: str | None = None) -> RouteDecision: ...
    def rule(self, netns: str | None, family: str, table: str, handle: int) -> str | None: ...


def route_text(r: RouteDecision) -> str:
    """A routing decision as `ip route get` prints it."""
    if r.error:
        return r.error
    text = ("local " if r.kind == "local" else "") + r.dst
    for word, value in (("via", r.gateway), ("dev", r.dev), ("src", r.src)):
        if value:
            text += f" {word} {value}"
    return text


@valueclass
class Walk:
    """One direction of the trace: the namespaces crossed (with their visits) and the hops."""

    legs: list[tuple[str | None, list[Visit]]]
    hops: list[Hop]
    delivered: bool = False
    delivered_at: str | None = None  # the namespace whose stack took the packet in

    @property
    def last(self) -> tuple[str | None, list[Visit]] | None:
        """The namespace where the packet was seen last, with its visits there."""
        return self.legs[-1] if self.legs else None


def walk(obs: Any, vis: dict[str | None, list[Visit]], which: str, start: str | None,
         lookup: Lookup) -> Walk:
    """Follow one direction from `start`, through the veth each time it left by."""
    plan = obs.plan
    result = Walk([], [])
    ns: str | None = start
    seen: set[str | None] = set()
    while ns not in seen:
        seen.add(ns)
        vs = first_pass(plan, vis.get(ns, []), which)
        if not vs:
            break
        result.legs.append((ns, vs))
        result.hops += hops_in(obs, ns, vs, vis.get(ns, []), lookup, which)
        if any(v.at("inet", "input") for v in vs):
            result.delivered, result.delivered_at = True, ns
            break
        peer = _next_peer(obs, vis, ns, vs, which)
        if peer is None:
            break
        ns = peer[0]  # may be None: this namespace, the node in place
    return result


def _next_peer(obs: Any, vis: dict[str | None, list[Visit]], ns: str | None,
               vs: list[Visit], which: str) -> tuple[str | None, str] | None:
    """The other end (namespace, name) of the veth the packet left `ns` by, if seen there."""
    for v in reversed(vs):
        if not (v.oif and v.ours and v.chain == "postrouting"):
            continue
        peer = peer_of(obs.before, ns, v.oif)
        if peer and peer[0] != ns and first_pass(obs.plan, vis.get(peer[0], []), which):
            return peer
    return None


def hops_in(obs: Any, ns: str | None, vs: list[Visit], all_visits: list[Visit],
            lookup: Lookup, which: str = "request") -> list[Hop]:
    """The hops of one namespace, with what happened there as notes."""
    hops: list[Hop] = []
    pending: list[Note] = []
    is_bridged, told_brnf = bridged(vs), False
    bridge_fwd = [v for v in vs if v.at("bridge", "forward")]
    route_note: Note | None = None
    nexthop: str | None = None
    in_dev: str | None = None

    def add(dev: str | None, direction: str, v: Visit, extra: list[Note],
            first: list[Note] | None = None) -> None:
        hop = Hop(ns, dev or "?", direction, v.packet.endpoint(True), v.packet.endpoint(False))
        hop.notes += (first or []) + pending + extra
        pending.clear()
        hops.append(hop)

    for v in vs:
        if not v.ours:
            for chain, handle, verdict in v.rules:
                text = lookup.rule(ns, v.family, v.table, handle)
                pending.append(("rule", {"table": v.table, "chain": chain,
                                         "rule": text or f"handle {handle}",
                                         "verdict": verdict}))
            continue
        if v.family == "bridge":
            master = _master(obs.before, ns, v.iif or v.oif)
            if v.chain == "prerouting":
                add(v.iif, "in", v, [("bridge_port", {"bridge": master or "?"})])
            elif v.chain == "input":
                port = next((h for h in reversed(hops) if h.dev == v.iif), None)
                (port.notes if port else pending).append(("bridge_up", {"bridge": master or "?"}))
            elif v.chain == "postrouting":
                add(v.oif, "out", v, [_switching(obs, ns, v, bridge_fwd, master)])
            continue
        if v.family != "inet":
            continue
        bridge_dev = _is_bridge(obs.before, ns, v.iif) or _is_bridge(obs.before, ns, v.oif)
        if is_bridged and bridge_dev:
            if not told_brnf:
                pending.append(("brnf", {}))
                told_brnf = True
            continue
        if v.chain == "prerouting":
            in_dev = v.iif
            add(v.iif, "in", v, [])
        elif v.chain in ("output", "forward"):
            decision = (lookup.route(ns, v.packet.dst) if v.chain == "output" else
                        lookup.route(ns, v.packet.dst, v.packet.src, in_dev))
            route_note = ("route", {"route": route_text(decision)})
            nexthop = decision.gateway or v.packet.dst
        elif v.chain == "input":
            pending.append(("delivered", {}))
        elif v.chain == "postrouting":
            extra = arp_notes(ns, all_visits, nexthop or v.packet.dst)
            first = next((h for h in hops if h.direction == "in"), None)
            if which != "request" and first and (first.src, first.dst) != (
                    v.packet.endpoint(True), v.packet.endpoint(False)):
                # No rule runs for a reply: conntrack itself reverses the connection's NAT.
                extra.append(("nat_undone", {"before": f"{first.src} → {first.dst}",
                                             "after": f"{v.packet.endpoint(True)} → "
                                                      f"{v.packet.endpoint(False)}"}))
            add(v.oif, "out", v, extra, [route_note] if route_note else [])
    # The netfilter hooks it passed here, in order: the chains iptables rules hang on.
    for family, label in (("inet", "ip"), ("bridge", "bridge")):
        hooks = [v.chain for v in vs if v.ours and v.family == family and not (
            family == "inet" and is_bridged and (_is_bridge(obs.before, ns, v.iif)
                                                 or _is_bridge(obs.before, ns, v.oif)))]
        if hooks:
            pending.append(("hooks", {"family": label, "hooks": " → ".join(hooks)}))
    if pending and hops:
        hops[-1].notes += pending
    return hops


def _master(snap: Snapshot, ns: str | None, dev: str | None) -> str | None:
    link = link_in(snap, ns, dev)
    return link.master if link else None


def _is_bridge(snap: Snapshot, ns: str | None, dev: str | None) -> bool:
    link = link_in(snap, ns, dev)
    return link is not None and link.kind == "bridge"


def _switching(obs: Any, ns: str | None, v: Visit, fwd: list[Visit], bridge: str | None
               ) -> Note:
    """How the bridge chose this port: its FDB knew the MAC, or it flooded every port."""
    mac = v.packet.mac_dst or "?"
    ports = sorted({f.oif for f in fwd if f.oif})
    flooded = len(ports) > 1 or mac == "ff:ff:ff:ff:ff:ff"
    after = obs.after.ns(ns)
    known = after is not None and any(e.mac == mac and e.port == v.oif for e in after.fdb)
    if flooded or not known:
        return ("bridge_flood", {"bridge": bridge or "?", "mac": mac,
                                 "ports": ", ".join(ports) or (v.oif or "?")})
    return ("bridge_fdb", {"bridge": bridge or "?", "mac": mac, "port": v.oif or "?"})


def arp_notes(ns: str | None, all_visits: list[Visit], nexthop: str) -> list[Note]:
    """Whether this namespace asked ARP for the next hop during the trace, and got an answer."""
    asked = [v.packet for v in all_visits if v.at("arp", "output") and v.packet.arp_op == 1
             and v.packet.dst == nexthop]
    answers = {v.packet.src: v.packet.mac_src for v in all_visits
               if v.at("arp", "input") and v.packet.arp_op == 2}
    notes: list[Note] = []
    for target in dict.fromkeys(p.dst for p in asked):
        if target in answers:
            notes.append(("arp_answered", {"ip": target, "mac": answers[target] or "?"}))
        else:
            notes.append(("arp_unanswered", {"ip": target}))
    return notes
