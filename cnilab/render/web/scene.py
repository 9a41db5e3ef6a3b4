"""The lab as the page draws it: plain data (JSON) built from the live model, in one language.

A scene is boxes (one per namespace: its links, routes, NAT rules, sysctls, ARP and FDB entries)
placed in columns (containers above their node) and a bottom row (the outside world), cables
(veth pairs, named by both ends), the steps the kernel satisfies and the last changes. What
changed in the last seconds carries `lit`. The page only draws it: every word comes from here,
from lessons/ui, so the page has none of its own.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping
from typing import Any

from cnilab.i18n import t
from cnilab.kernel.events import Observed
from cnilab.lab.topology import Topology
from cnilab.ops import Key, rule_tokens
from cnilab.render.live import describe_change
from cnilab.state import Link, Namespace, Route
from cnilab.watch import Change, LiveLab

LABELS = ("routes", "nat", "sysctls", "arp", "steps", "changes", "trace", "connected",
          "disconnected", "down", "no_carrier", "ports_more", "nat_rewrite", "reply",
          "trace_none", "traced_at")
# The page fills these in itself: a label keeps them as they are.
PLACEHOLDERS = {name: "{" + name + "}" for name in ("count", "at", "netns", "before", "after",
                                                    "rule")}


def end_id(netns: str | None, link: str) -> str:
    """How the page names one end of a cable: 'netns/link' ('' for cnilab's own namespace)."""
    return f"{netns or ''}/{link}"


def peer_end(netns: str | None, link: Link) -> str | None:
    """The other end of a veth as end_id() names it; None when its peer is not known."""
    if not link.peer:
        return None
    other, sep, name = link.peer.rpartition(":")
    if not sep:
        return end_id(netns, link.peer)
    return end_id(None if other == "." else other, name)


def link_data(netns: str, link: Link, lit: Collection[Key]) -> dict[str, Any]:
    """One link as the page draws it."""
    return {"name": link.name, "kind": link.kind, "up": link.up, "carrier": link.carrier,
            "addresses": list(link.addresses), "mac": link.mac, "master": link.master,
            "end": end_id(netns, link.name), "lit": ("link", netns, link.name) in lit}


def route_text(r: Route) -> str:
    """A route as `ip route` prints it."""
    via = f" via {r.gateway}" if r.gateway else ""
    dev = f" dev {r.dev}" if r.dev else ""
    return f"{r.dst}{via}{dev}"


def _line(text: str, lit: bool) -> dict[str, Any]:
    return {"text": text, "lit": lit}


def box(ns: Namespace, seen: Observed | None, role: str, title: str, lit: Collection[Key],
        hide: Collection[str] = ()) -> dict[str, Any]:
    """One namespace as a box; links named in `hide` are counted, not drawn (a big bridge)."""
    key = ns.name or ""
    seen = seen or Observed()
    nat_lit = ("rule", key, "nat") in lit
    return {
        "id": key, "role": role, "title": title, "lit": ("netns", key) in lit,
        "links": [link_data(key, ln, lit) for ln in ns.links if ln.name not in hide],
        "hidden": {br: sum(1 for ln in ns.links if ln.master == br and ln.name in hide)
                   for br in {ln.master for ln in ns.links if ln.name in hide and ln.master}},
        "routes": [_line(route_text(r), ("route", key, r.dst) in lit) for r in ns.routes],
        "nat": [_line(" ".join(rule_tokens(rule)), nat_lit) for rule in ns.nat or ()],
        "sysctls": [_line(f"{k} = {v}", ("sysctl", key, k) in lit)
                    for k, v in sorted(ns.sysctls.items())
                    if v != "0" or ("sysctl", key, k) in lit],
        "arp": [_line(f"{n.ip} → {n.mac or '?'} ({n.dev})", ("neighbour", key, n.ip) in lit)
                for n in seen.neighbours],
        "fdb": [{**_line(f"{f.mac} → {f.port}", ("fdb", key, f.mac) in lit), "port": f.port,
                 "bridge": f.bridge} for f in seen.fdb],
    }


def cables(boxes: Iterable[dict[str, Any]], spaces: Mapping[str | None, Namespace]
           ) -> list[dict[str, Any]]:
    """Every veth pair whose two ends are both drawn, once; up when both ends carry."""
    drawn = {ln["end"]: ln for b in boxes for ln in b["links"]}
    found, seen = [], set()
    for netns, ns in spaces.items():
        for link in ns.links:
            a, b = end_id(netns, link.name), peer_end(netns, link)
            if b is None or a not in drawn or b not in drawn or (b, a) in seen:
                continue
            seen.add((a, b))
            ends = (drawn[a], drawn[b])
            found.append({"a": a, "b": b, "up": all(e["up"] and e["carrier"] is not False
                                                    for e in ends),
                          "lit": any(e["lit"] for e in ends)})
    return found


def labels(lang: str) -> dict[str, str]:
    """The page's own words in `lang`."""
    return {k: t(f"serve.{k}", lang, **PLACEHOLDERS) for k in LABELS}


def changes(log: Iterable[Change], lit: Collection[Key], lang: str,
            describe: Callable[[Change, str], str] = describe_change) -> list[dict[str, Any]]:
    """The last changes, newest first, in words."""
    return [_line(describe(c, lang), c.key() in lit) for c in reversed(list(log))]


def lab_scene(live: LiveLab, topo: Topology, titles: Mapping[int, str], lang: str,
              lit: Collection[Key]) -> dict[str, Any]:
    """The eight-step lab as the page draws it: the containers above the node, then outside."""
    snap = live.current
    containers = {topo.netns(c) for c in topo.containers}

    def make(netns: str | None, role: str, title: str) -> dict[str, Any] | None:
        ns = snap.ns(netns)
        return None if ns is None else box(ns, live.seen.get(netns), role, title, lit)

    node_title = (t("ui.diagram_node", lang, name=topo.node) if topo.node
                  else t("ui.diagram_node_in_place", lang))
    top = [make(topo.netns(c), "container", t("ui.diagram_container", lang, name=topo.netns(c)))
           for c in topo.containers]
    middle = [make(topo.node, "node", node_title)]
    bottom = [make(topo.internet, "outside", t("ui.diagram_outside", lang, name=topo.internet))
              ] if topo.internet else []
    known = {topo.node, topo.internet, *containers}
    others = [make(n, "other", n or "") for n in sorted(snap.spaces, key=str) if n not in known]
    drawn_top, drawn_middle = [b for b in top if b], [b for b in middle if b]
    column = {"id": topo.node or "", "top": drawn_top, "middle": drawn_middle}
    shown = [*drawn_top, *drawn_middle, *(b for b in bottom + others if b)]
    return {
        "kind": "lab", "lang": lang, "title": t("serve.title_lab", lang, lab=topo.lab_id),
        "columns": [column] if drawn_top or drawn_middle else [],
        "bottom": [b for b in bottom if b], "others": [b for b in others if b],
        "cables": cables(shown, snap.spaces),
        "steps": [{"n": s.number, "title": titles.get(s.number, ""), "done": s.number in live.done,
                   "lit": ("step", "", str(s.number)) in lit} for s in live.steps],
        "changes": changes(live.log, lit, lang),
        "empty": t("watch.waiting", lang) if not shown else "",
        "labels": labels(lang),
    }
