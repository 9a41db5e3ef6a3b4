"""A trace against the kernel: tables made (owned), the probe sent, every namespace watched.

Everything the kernel showed is kept as plain data (an Observation), so the reading of it
(path.py, verdict.py) runs the same on recorded observations in unit tests.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from cnilab.compat import field, valueclass
from cnilab.errors import CnilabError
from cnilab.kernel.conntrack import Connection
from cnilab.kernel.nftrace import TraceEvent, find_nft
from cnilab.ops import rule_tokens, shell_join
from cnilab.ops.trace import AddTraceTable
from cnilab.owner import Owner
from cnilab.state import RouteDecision, Snapshot
from cnilab.trace.plan import TracePlan, plan_trace, trace_ops
from cnilab.trace.probe import TIMEOUT, Probe, ProbeResult
from cnilab.trace.site import Site

if TYPE_CHECKING:
    from cnilab.kernel import Kernel

IPTABLES_TABLES = ("filter", "nat", "mangle", "raw", "security")


@valueclass
class Observation:
    """What one trace saw: the state before and after, the trace events, conntrack's entries."""

    plan: TracePlan
    before: Snapshot
    after: Snapshot
    events: dict[str | None, list[TraceEvent]]
    probe: ProbeResult
    conntrack: dict[str | None, list[Connection]] = field(default_factory=dict)


class KernelLookup:
    """Questions the reading of a trace asks the kernel afterwards: routes and rule texts."""

    def __init__(self, kernel: Kernel) -> None:
        self.kernel = kernel
        self._rules: dict[tuple[str | None, str, str], dict[int, tuple[str, int, str]]] = {}
        self.routes: dict[str, RouteDecision] = {}  # what was asked, kept for recordings
        self.rules: dict[str, str] = {}
        self._backend: str | None = None

    def route(self, netns: str | None, dst: str, src: str | None = None,
              iif: str | None = None) -> RouteDecision:
        """`ip route get DST [from SRC iif IIF]` inside `netns`."""
        key = route_key(netns, dst, src, iif)
        if key not in self.routes:
            self.routes[key] = self.kernel.route_get(netns, dst, src, iif)
        return self.routes[key]

    def rule(self, netns: str | None, family: str, table: str, handle: int) -> str | None:
        """A rule as its maker wrote it: `iptables -S` form for iptables' tables, else nft's."""
        key = rule_key(netns, family, table, handle)
        if key not in self.rules:
            self.rules[key] = self._rule(netns, family, table, handle) or ""
        return self.rules[key] or None

    def _rule(self, netns: str | None, family: str, table: str, handle: int) -> str | None:
        cache = (netns, family, table)
        if cache not in self._rules:
            self._rules[cache] = self.kernel.nft_rules(netns, family, table)
        found = self._rules[cache].get(handle)
        if found is None:
            return None
        chain, position, text = found
        if self._backend is None:
            self._backend = self.kernel.iptables_backend() or ""
        if family == "ip" and table in IPTABLES_TABLES and self._backend == "nf_tables":
            # iptables-nft keeps the rules in nftables, in order: the Nth rule of the chain
            # is the Nth `-A CHAIN` line of `iptables -S`, the form the lesson printed.
            lines = [ln for ln in self.kernel.iptables(netns, ["-t", table, "-S", chain])
                     .splitlines() if ln.startswith("-A ")]
            if position < len(lines):  # as typed: no ownership comment, no implied -m tcp
                return shell_join(list(rule_tokens(lines[position])))
        return text


def route_key(netns: str | None, dst: str, src: str | None, iif: str | None) -> str:
    """How a route question is keyed in a recording."""
    return f"{netns or ''}|{dst}|{src or ''}|{iif or ''}"


def rule_key(netns: str | None, family: str, table: str, handle: int) -> str:
    """How a rule question is keyed in a recording."""
    return f"{netns or ''}|{family}|{table}|{handle}"


def clean_leftovers(owner: Owner) -> None:
    """Remove the tables of a trace that was killed before it could (they are in the ledger);
    a table of that name without our mark stays (the trace then says it is taken)."""
    owner.ledger.teardown(owner.kernel,
                          [op for op in owner.ledger.ops() if isinstance(op, AddTraceTable)])


def observe(owner: Owner, site: Site, source: str, dst: str, proto: str | None,
            port: int | None, timeout: float = TIMEOUT) -> Observation:
    """Send one probe and watch it in every namespace of the site; hold the owner's lock."""
    find_nft()  # before anything is made: a missing nft says how to install it
    clean_leftovers(owner)
    before = owner.snapshot()
    plan = plan_trace(site, before, source, dst, proto, port)
    kernel, made = owner.kernel, []
    probe = Probe(plan)
    try:
        with kernel.trace_listener(list(plan.watch)) as listener:
            for op in trace_ops(plan, before, owner.ledger.mark):
                # Counted as made before nft runs: a Ctrl-C while nft works may still leave
                # the table (undo is harmless if not); one the kernel refused is not ours.
                made.append(op)
                try:
                    owner.apply([op])  # recorded in the ledger before it is made
                except CnilabError:
                    made.pop()
                    raise
            listener.drain()
            result = probe.send(timeout)
            events = listener.drain()
        after = kernel.observe(plan.watch)
        conntrack = {ns: [c for c in kernel.connections(ns) if _ours(plan, c)]
                     for ns in plan.watch}
    finally:
        probe.close()
        _undo_all(made, kernel)
        owner.ledger.forget(made)
    return Observation(plan, before, after, events, result, conntrack)


def _undo_all(made: list[AddTraceTable], kernel: Kernel) -> None:
    """Delete the tables, one thread per namespace (independent; each is one nft process)."""
    errors: list[BaseException] = []

    def undo(op: AddTraceTable) -> None:
        try:
            op.undo(kernel)
        except BaseException as e:  # re-raised below, in the caller's thread
            errors.append(e)

    threads = [threading.Thread(target=undo, args=(op,), daemon=True) for op in made]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    if errors:
        raise errors[0]


def _ours(plan: TracePlan, conn: Connection) -> bool:
    proto = {"icmp": 1, "tcp": 6, "udp": 17}[plan.proto]
    return conn.proto == proto and conn.orig.sport == plan.ident
