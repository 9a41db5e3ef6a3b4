"""Trace recordings for unit tests: an observation as plain data and back, and the lookups a
recording kept, asked again without a kernel (recorded kernel states; see recorded/README.md)."""

from __future__ import annotations

import json
from typing import Any

from cnilab.compat import asdict
from cnilab.kernel.conntrack import Connection, Tuple
from cnilab.kernel.nftrace import TraceEvent
from cnilab.state import RouteDecision, Snapshot
from cnilab.trace.observe import KernelLookup, Observation, route_key, rule_key
from cnilab.trace.plan import TracePlan
from cnilab.trace.probe import ProbeResult


def to_dict(obs: Observation, lookup: KernelLookup | None = None) -> dict[str, Any]:
    """An observation as plain data (with the lookups made while reading it): a recording."""
    return {
        "plan": asdict(obs.plan),
        "before": obs.before.to_dict(), "after": obs.after.to_dict(),
        "events": [asdict(e) for evs in obs.events.values() for e in evs],
        "probe": asdict(obs.probe),
        "conntrack": [{"netns": ns, **asdict(c)} for ns, cs in obs.conntrack.items() for c in cs],
        "routes": {k: asdict(v) for k, v in (lookup.routes if lookup else {}).items()},
        "rules": dict(lookup.rules) if lookup else {},
    }


def from_dict(data: dict[str, Any]) -> Observation:
    """An observation back from its recording."""
    plan = data["plan"]
    events: dict[str | None, list[TraceEvent]] = {ns: [] for ns in plan["watch"]}
    for e in data["events"]:
        events.setdefault(e["netns"], []).append(TraceEvent(**e))
    conntrack: dict[str | None, list[Connection]] = {}
    for c in data["conntrack"]:
        conntrack.setdefault(c["netns"], []).append(Connection(
            c["proto"], Tuple(**c["orig"]), Tuple(**c["reply"]), c["snat"], c["dnat"]))
    return Observation(
        TracePlan(**{**plan, "watch": tuple(plan["watch"])}),
        Snapshot.from_json(json.dumps(data["before"])),
        Snapshot.from_json(json.dumps(data["after"])), events,
        ProbeResult(**data["probe"]), conntrack)


class RecordedLookup:
    """The answers a recording kept, asked again in a unit test (no kernel)."""

    def __init__(self, data: dict[str, Any]) -> None:
        self.routes = {k: RouteDecision(**v) for k, v in data.get("routes", {}).items()}
        self.rules: dict[str, str] = data.get("rules", {})

    def route(self, netns: str | None, dst: str, src: str | None = None,
              iif: str | None = None) -> RouteDecision:
        """The recorded answer; a question the recording never asked is an error, not a guess."""
        key = route_key(netns, dst, src, iif)
        if key not in self.routes:
            raise KeyError(f"this recording never asked: ip route get {key}")
        return self.routes[key]

    def rule(self, netns: str | None, family: str, table: str, handle: int) -> str | None:
        """The recorded rule text."""
        return self.rules.get(rule_key(netns, family, table, handle)) or None
