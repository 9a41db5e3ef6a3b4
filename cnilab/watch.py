"""The live view's model: what each watched namespace holds, what just changed, which steps are
done.

Fed by cnilab.kernel.events (namespaces appearing, parts read again after the kernel announced a
change); it turns each new reading into changes, one per object (a link, an address, a route, a
neighbour, an FDB entry, a sysctl, a NAT rule), by comparing it with the previous one. No
printing here: cli/watch.py prints the changes as JSON lines or redraws render/live, cli/serve.py
hands them to the page. follow() is the loop that feeds it.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any

from cnilab.compat import asdict, field, valueclass
from cnilab.kernel.events import NamespaceEvents, Observed
from cnilab.kernel.messages import NsidMap, resolve_peers
from cnilab.ops import Key, Step
from cnilab.state import Namespace, Snapshot

ObjKey = tuple[str, str, str]  # kind, name, what tells two of the same name apart (dev, route)
LOG_SIZE = 8


@valueclass(frozen=True)
class Change:
    """One object added, removed or changed in one namespace (netns None: cnilab's own)."""

    netns: str | None
    kind: str  # netns, link, address, route, neighbour, fdb, sysctl, nat, steps
    name: str
    change: str  # added, removed, changed
    old: dict[str, Any] | None = None
    new: dict[str, Any] | None = None
    at: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """The JSON line: what changed, where; only the fields that differ for a change."""
        netns = None if self.kind == "steps" else self.netns or ""  # "": cnilab's own
        data: dict[str, Any] = {"netns": netns, "kind": self.kind,
                                "name": self.name, "change": self.change}
        if self.old is not None:
            data["old"] = self.old
        if self.new is not None:
            data["new"] = self.new
        return data

    def key(self) -> Key:
        """What the diagram highlights for this change (an address lights up its link)."""
        ns = self.netns or ""
        if self.kind == "netns":
            return ("netns", self.name)
        if self.kind == "address":
            return ("link", ns, str((self.new or self.old or {}).get("dev")))
        if self.kind == "nat":
            return ("rule", ns, "nat")
        return (self.kind, ns, self.name)


def objects(ns: Namespace, seen: Observed) -> dict[ObjKey, dict[str, Any]]:
    """Every object of one namespace with the fields a change is told by."""
    found: dict[ObjKey, dict[str, Any]] = {}
    for link in ns.links:
        fields = {k: v for k, v in asdict(link).items() if k not in ("name", "addresses", "index")}
        found["link", link.name, ""] = fields
        for cidr in link.addresses:
            found["address", cidr, link.name] = {"dev": link.name}
    for r in ns.routes:
        found["route", r.dst, f"{r.gateway} {r.dev}"] = {"gateway": r.gateway, "dev": r.dev}
    for n in seen.neighbours:
        found["neighbour", n.ip, n.dev or ""] = {"dev": n.dev, "mac": n.mac}
    for f in seen.fdb:
        found["fdb", f.mac, f.port or ""] = {"port": f.port, "bridge": f.bridge}
    for key, value in ns.sysctls.items():
        found["sysctl", key, ""] = {"value": value}
    for rule in ns.nat or ():
        found["nat", rule, ""] = {}
    return found


def diff(netns: str | None, old: dict[ObjKey, dict[str, Any]],
         new: dict[ObjKey, dict[str, Any]], at: float) -> list[Change]:
    """The changes from one set of objects to the next, in a stable order."""
    changes = []
    for key in sorted(old.keys() | new.keys()):
        before, after = old.get(key), new.get(key)
        if before == after:
            continue
        kind, name, _ = key
        if before is None:
            changes.append(Change(netns, kind, name, "added", None, after, at))
        elif after is None:
            changes.append(Change(netns, kind, name, "removed", before, None, at))
        else:
            differ = [k for k in after if before.get(k) != after.get(k)]
            changes.append(Change(netns, kind, name, "changed", {k: before.get(k) for k in differ},
                                  {k: after[k] for k in differ}, at))
    return changes


@valueclass
class LiveLab:
    """The lab as the events say it is now, the changes of the last seconds, the steps done."""

    steps: tuple[Step, ...]
    highlight_for: float = 3.0
    seen: dict[str | None, Observed] = field(default_factory=dict)
    done: tuple[int, ...] = ()
    log: deque[Change] = field(default_factory=lambda: deque(maxlen=LOG_SIZE))
    _objects: dict[str | None, dict[ObjKey, dict[str, Any]]] = field(default_factory=dict)
    current: Snapshot = field(default_factory=lambda: Snapshot(frozenset(), {}))  # as of now
    _lit: dict[Key, float] = field(default_factory=dict)  # highlighted key: until when
    nsid_map: NsidMap | None = None  # names veth peers across namespaces (None: a recording)

    def snapshot(self) -> Snapshot:
        """The watched state as a Snapshot (veth peers named across namespaces, as in observe())."""
        named = resolve_peers({name: seen.links for name, seen in self.seen.items()},
                              self.nsid_map)
        spaces = {}
        for name, seen in self.seen.items():
            # NAT is read only where it is watched (NamespaceEvents' nat_in): None elsewhere.
            spaces[name] = Namespace(name, named[name], seen.routes, seen.sysctls, seen.nat,
                                     seen.listening)
        return Snapshot(frozenset(n for n in self.seen if n is not None), spaces)

    def start(self, readings: dict[str | None, Observed]) -> None:
        """The state when watching starts: nothing counts as changed."""
        self.seen = dict(readings)
        snap = self.current = self.snapshot()
        self._objects = {n: objects(ns, self.seen[n]) for n, ns in snap.spaces.items()}
        self.done = self._done(snap)

    def update(self, readings: dict[str | None, Observed], vanished: Iterable[str],
               at: float) -> list[Change]:
        """Take new readings (namespaces new or read again) and gone namespaces; the changes."""
        vanished = [n for n in vanished if n in self.seen]
        if not vanished and all(n in self.seen and self.seen[n] == r
                                for n, r in readings.items()):
            # Read again and found as it was (an ARP entry going STALE, a message about
            # something the view does not show): no need to compare every namespace again.
            return []
        changes: list[Change] = []
        for gone in vanished:
            if self.seen.pop(gone, None) is not None:
                self._objects.pop(gone, None)
                changes.append(Change(gone, "netns", gone, "removed", at=at))
        appeared = [n for n in readings if n not in self.seen]
        self.seen.update(readings)
        snap = self.current = self.snapshot()
        for name, ns in snap.spaces.items():
            # Every namespace is compared, not only those read: a veth's peer is named from
            # the other end, so moving one end changes how the other one reads.
            now = objects(ns, self.seen[name])
            if name in appeared:
                changes.append(Change(name, "netns", name or "", "added", None,
                                      {"links": [ln.name for ln in ns.links]}, at))
            else:
                changes += diff(name, self._objects.get(name, {}), now, at)
            self._objects[name] = now
        done = self._done(snap)
        if done != self.done:
            changes.append(Change(None, "steps", "done", "changed", {"done": list(self.done)},
                                  {"done": list(done)}, at))
            for n in set(done) - set(self.done):  # each step the kernel now satisfies, lit
                self._lit["step", "", str(n)] = at + self.highlight_for
            self.done = done
        self.record(changes, at)
        return changes

    def record(self, changes: list[Change], at: float) -> None:
        """Log the changes and light what each names for `highlight_for` seconds."""
        for c in changes:
            self.log.append(c)
            self._lit[c.key()] = at + self.highlight_for

    def _done(self, snap: Snapshot) -> tuple[int, ...]:
        return tuple(s.number for s in self.steps if s.done(snap))

    def lit(self, now: float) -> set[Key]:
        """The keys still highlighted at `now`."""
        for key in [k for k, until in self._lit.items() if until <= now]:
            del self._lit[key]
        return set(self._lit)

    def next_dim(self, now: float) -> float | None:
        """Seconds until the next highlight fades (the view redraws then); None: none lit."""
        return max(0.0, min(self._lit.values()) - now) if self._lit else None


def follow(events: NamespaceEvents, live: LiveLab, show: Callable[[list[Change]], None],
           timed: bool) -> None:
    """Read what the kernel says changed, update `live`, hand the changes to `show`; forever.

    timed: wake up when a highlight fades too (a screen, a page); JSON lines sleep until an event.
    """
    while True:
        batch = events.wait(live.next_dim(time.monotonic()) if timed else None)
        readings: dict[str | None, Observed] = {ns: events.read(ns) for ns in batch.appeared}
        for ns, parts in batch.dirty.items():
            if ns in live.seen and ns not in readings:
                readings[ns] = events.read(ns, parts, live.seen[ns])
        show(live.update(readings, batch.vanished, time.monotonic()))
