"""What a trace will do, checked before anything is touched: FROM, TO, the probe, what to watch.

Packets stay inside the lab: TO must be an address of the site's own subnets (the bridge's, the
uplink's in the isolated lab, loopback; the cluster's LAN, pod network and outside world), so a
trace never sends anything off the machine, not even in --in-place mode where the node is the
machine itself.
"""

from __future__ import annotations

import random
from ipaddress import IPv4Address, ip_address

from cnilab.compat import valueclass
from cnilab.errors import ConfigError
from cnilab.ops.trace import TABLE, AddTraceTable
from cnilab.state import Snapshot
from cnilab.trace.site import Site

PROTOS = ("icmp", "tcp", "udp")
# Hooks whose chain only reports (priority 350: after filter and NAT, so a packet seen there
# was let through, with its addresses as rewritten) and hooks whose chain marks (-350: first).
REPORT, MARK = 350, -350


@valueclass(frozen=True)
class TracePlan:
    """One trace: who sends what to where, and the namespaces that watch for it."""

    source: str  # the role: red, blue (any container), host, internet; a node or pod name
    netns: str | None  # the source's namespace (None: the namespace cnilab runs in)
    dst: str
    proto: str  # icmp / tcp / udp
    port: int | None  # the destination port (tcp / udp)
    ident: int  # the ICMP echo id, or the probe's own source port
    watch: tuple[str | None, ...]  # every namespace of the site that exists, routers first


def check_args(site: Site, source: str, dst: str, proto: str | None, port: int | None
               ) -> tuple[str | None, str, str]:
    """(source namespace, address, protocol) from the command line, or ConfigError. No kernel."""
    try:
        netns = site.netns(source)
    except KeyError:
        raise ConfigError.of("trace_from", role=source,
                             roles=", ".join(site.roles.values())) from None
    try:
        address = ip_address(dst)
    except ValueError:
        raise ConfigError.of("trace_to", to=dst) from None
    if not isinstance(address, IPv4Address) or not any(address in n for n in site.networks):
        raise ConfigError.of("trace_outside", to=dst,
                             nets=", ".join(str(n) for n in site.networks))
    proto = proto or ("tcp" if port is not None else "icmp")
    if proto not in PROTOS:
        raise ConfigError.of("trace_proto", proto=proto)
    if proto == "icmp" and port is not None:
        raise ConfigError.of("trace_port_icmp")
    if proto != "icmp" and port is None:
        raise ConfigError.of("trace_needs_port", proto=proto)
    if port is not None and not 1 <= port <= 65535:
        raise ConfigError.of("trace_port_range", port=port)
    return netns, str(address), proto


def plan_trace(site: Site, snap: Snapshot, source: str, dst: str, proto: str | None,
               port: int | None, ident: int | None = None) -> TracePlan:
    """Check every input against the site and the observed state; the plan, or ConfigError."""
    netns, address, proto = check_args(site, source, dst, proto, port)
    if netns is not None and netns not in snap.netns:
        raise ConfigError.of("no_netns", name=netns)
    watch = tuple(ns for ns in site.roles if snap.ns(ns) is not None)
    if ident is None:
        ident = random.randint(1, 0xFFFF) if proto == "icmp" else random.randint(33000, 60999)
    return TracePlan(source, netns, address, proto, port, ident, watch)


def matches(plan: TracePlan) -> tuple[str, ...]:
    """nft matches for the probe's packets both ways, and the ICMP errors they may cause."""
    errors = "icmp type { destination-unreachable, time-exceeded }"
    if plan.proto == "icmp":
        return (f"icmp id {plan.ident}", errors)
    return (f"{plan.proto} sport {plan.ident}", f"{plan.proto} dport {plan.ident}", errors)


def _table(family: str, chains: list[tuple[str, int, tuple[str, ...]]], mark: str
           ) -> list[str]:
    # The mark is made in the same transaction as the table: a table is never ours unmarked.
    cmds = [f'create table {family} {TABLE} {{ comment "{mark}"; }}']
    for hook, prio, marks in chains:
        cmds.append(f"add chain {family} {TABLE} {hook} "
                    f"{{ type filter hook {hook} priority {prio}; }}")
        cmds += [f"add rule {family} {TABLE} {hook} {m} meta nftrace set 1" for m in marks]
    return cmds


def trace_ops(plan: TracePlan, snap: Snapshot, mark: str) -> list[AddTraceTable]:
    """One trace table op per watched namespace (inet, arp, and bridge where there is one),
    each table carrying the lab's `mark`."""
    m = matches(plan)
    ops = []
    for ns in plan.watch:
        observed = snap.ns(ns)
        cmds = _table("inet", [("prerouting", MARK, m), ("output", MARK, m),
                               ("forward", REPORT, ()), ("input", REPORT, ()),
                               ("postrouting", REPORT, ())], mark)
        # ARP has its own family: who asks for which address, and who answers.
        cmds += _table("arp", [("input", 0, ("",)), ("output", 0, ("",))], mark)
        families = ["inet", "arp"]
        if observed is not None and any(ln.kind == "bridge" for ln in observed.links):
            # The bridge family shows the switching itself: in port, out port(s), flooding.
            cmds += _table("bridge", [("prerouting", MARK, (*m, "ether type arp")),
                                      ("forward", REPORT, ()), ("input", REPORT, ()),
                                      ("output", REPORT, ()), ("postrouting", REPORT, ())],
                            mark)
            families.append("bridge")
        script = "; ".join(c.replace("  ", " ") for c in cmds)
        ops.append(AddTraceTable(ns, " ".join(families), script, mark))
    return ops
