"""The screen of `cnilab cluster watch`: one row per node (ens3, cni0, forwarding, routes to the
other nodes' pods, pods ready), the LAN gateway and the outside world, the last changes.

A row summarises a node's pods (ready / present) instead of drawing each: the screen stays one
screen for 200 nodes of 250 pods. Given a height, it fits it: nodes that changed or fail a check
first, the others counted on one line; then as many of the last changes as there is room for.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

from rich import box
from rich.console import Group, RenderableType
from rich.markup import escape
from rich.rule import Rule
from rich.table import Table
from rich.text import Text

from cnilab.cluster.live import ClusterLive, ClusterView, NodeView
from cnilab.cluster.plan import LAN_BRIDGE, LAN_NETNS, UPLINK, WORLD_IF, WORLD_NETNS, lab_id
from cnilab.i18n import t
from cnilab.ops import Key
from cnilab.render.diagram import NEW
from cnilab.render.live import describe_change
from cnilab.state import Link, Namespace
from cnilab.watch import Change

FIXED = 9  # title, table head (2), gateway, outside, changes title, footer, room for two changes
MAX_PROBLEMS = 3


def _lit_in(lit: Collection[Key], netns: str) -> set[tuple[str, str]]:
    """(kind, name) of what is highlighted in one namespace."""
    return {(k[0], k[2]) for k in lit if len(k) == 3 and k[1] == netns}


def _mark(ok: bool, text: str = "", lit: bool = False) -> Text:
    shown = f"{text} {'✔' if ok else '✘'}".strip()
    return Text(shown, style=NEW if lit else ("green" if ok else "bold red"))


def _cell(link: Link | None, lit: bool) -> Text:
    """A link as a cell: its address, red when it is missing, down or has none."""
    if link is None:
        return Text("-", style=NEW if lit else "red")
    shown = link.addresses[0] if link.addresses else link.name
    if not link.up:
        shown += " ↓"
    return Text(shown, style=NEW if lit else ("" if link.up and link.addresses else "red"))


def _row(node: NodeView, view: ClusterView, lit: Collection[Key]) -> list[Text]:
    here = _lit_in(lit, node.netns)
    checks = node.checks(view.nodes)
    kinds = {kind for kind, _ in here}
    pods_lit = any(k[1] in {p.netns for p in node.pods} for k in lit if len(k) == 3) or any(
        k == ("netns", p.netns) for p in node.pods for k in lit)
    have, need = node.route_count(view.nodes)
    return [
        Text(node.name, style=NEW if ("checks", node.name) in here or ("netns", node.netns)
             in lit else "bold"),
        _cell(node.lan, ("link", node.lan.name if node.lan else "") in here),
        _cell(node.bridge, ("link", node.bridge.name if node.bridge else "") in here),
        _mark(checks["forward"], lit="sysctl" in kinds),
        _mark(checks["default"], lit=any(k == ("route", "default") for k in here)),
        _mark(checks["routes"], f"{have}/{need}",
              lit=any(kind == "route" and name != "default" for kind, name in here)),
        _mark(checks["pods"], f"{node.pods_ready()}/{len(node.pods)}", lit=pods_lit),
    ]


def _shown(view: ClusterView, lit: Collection[Key], rows: int | None) -> list[NodeView]:
    """The nodes that fit: those lit or failing a check first, then in order; shown in order."""
    if rows is None or len(view.nodes) <= rows:
        return list(view.nodes)
    keep = max(rows - 1, 1)  # one line says how many more
    spaces = {k[1] for k in lit if len(k) == 3} | {k[1] for k in lit if k[0] == "netns"}

    def urgent(n: NodeView) -> bool:
        return (n.netns in spaces or any(p.netns in spaces for p in n.pods)
                or not all(n.checks(view.nodes).values()))

    first = [n for n in view.nodes if urgent(n)][:keep]
    rest = [n for n in view.nodes if n not in first][:keep - len(first)]
    picked = {n.name for n in first + rest}
    return [n for n in view.nodes if n.name in picked]


def render_nodes(view: ClusterView, lang: str, lit: Collection[Key],
                 rows: int | None = None) -> list[RenderableType]:
    """The node table, a line for the nodes left out, a line per missing pod route (a few)."""
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, padding=(0, 1, 0, 0))
    for key in ("node", "lan", "bridge", "forward", "default", "routes", "pods"):
        table.add_column(t(f"cluster_watch.col_{key}", lang), no_wrap=True)
    shown = _shown(view, lit, rows)
    for node in shown:
        table.add_row(*_row(node, view, lit))
    parts: list[RenderableType] = [table]
    left = [n for n in view.nodes if n not in shown]
    if left:
        ok = sum(1 for n in left if all(n.checks(view.nodes).values()))
        parts.append(Text(t("cluster_watch.more_nodes", lang, count=len(left), ok=ok),
                          style="dim"))
    missing = [(n, o) for n in view.nodes for o in n.missing_routes(view.nodes)]
    for n, o in missing[:MAX_PROBLEMS]:
        parts.append(_line(t("cluster_watch.no_route", lang, node=n.name, cidr=o.pod_cidr,
                             via=o.ip, other=o.name), "red"))
    if len(missing) > MAX_PROBLEMS:
        parts.append(_line(t("cluster_watch.more_missing", lang,
                             count=len(missing) - MAX_PROBLEMS), "red"))
    return parts


def _line(text: str, style: str = "") -> Text:
    """One screen line: cut with … rather than wrapped (the height is counted in lines)."""
    return Text(text, style=style, no_wrap=True, overflow="ellipsis")


def _addr(ns: Namespace | None, name: str) -> str:
    link = ns.link(name) if ns else None
    if link is None:
        return "-"
    return (link.addresses[0] if link.addresses else name) + ("" if link.up else " ↓")


def render_edges(view: ClusterView, lang: str, lit: Collection[Key]) -> list[Text]:
    """The LAN gateway and the outside world, a line each."""
    lan, world = view.lan, view.world
    lan_name, world_name = view.prefix + LAN_NETNS, view.prefix + WORLD_NETNS
    ports = sum(1 for ln in lan.links if ln.master == LAN_BRIDGE) if lan else 0
    gateway = t("cluster_watch.gateway", lang, netns=lan_name, bridge=LAN_BRIDGE,
                ip=_addr(lan, LAN_BRIDGE), ports=ports, uplink=UPLINK, uplink_ip=_addr(lan, UPLINK))
    outside = t("cluster_watch.outside", lang, netns=world_name, dev=WORLD_IF,
                ip=_addr(world, WORLD_IF))
    return [_line(text, NEW if _lit_in(lit, name) or ("netns", name) in lit
                  else ("" if ns else "dim"))
            for text, name, ns in ((gateway, lan_name, lan), (outside, world_name, world))]


def describe(c: Change, lang: str) -> str:
    """One change in words; a node's checks as ✔/✘ ('~ checks node01: routes ✔ → ✘')."""
    if c.kind != "checks":
        return describe_change(c, lang)
    if c.change != "changed":
        return t(f"watch.{c.change}", lang, kind=t("watch.kind_checks", lang), name=c.name,
                 netns=c.netns)

    def mark(ok: object) -> str:
        return "✔" if ok else "✘"

    what = ", ".join(f"{t(f'cluster_watch.col_{k}', lang)} {mark((c.old or {}).get(k))} → "
                     f"{mark(v)}" for k, v in (c.new or {}).items())
    return t("cluster_watch.checks", lang, node=c.name, what=what)


def render_log(log: Sequence[Change], lang: str, lit: Collection[Key],
               room: int | None) -> list[Text]:
    """The last changes, newest last, as many as there is room for."""
    shown = list(log)[-room:] if room is not None else list(log)
    if room is not None and room <= 0:
        shown = []
    if not shown:
        return []
    return [Text(t("watch.changes", lang), style="bold"),
            *(_line(describe(c, lang), NEW if c.key() in lit else "dim") for c in shown)]


def render_cluster(live: ClusterLive, lang: str, lit: Collection[Key], watched: int,
                   height: int | None = None, cnilab: str = "cnilab") -> RenderableType:
    """The whole screen of `cnilab cluster watch`; `height`: the lines it must fit in;
    `cnilab`: how the student calls cnilab on this cluster."""
    view = live.view
    title = Rule(escape(t("cluster_watch.title", lang, cluster=lab_id(view.prefix))),
                 align="left")
    footer = _line(t("cluster_watch.footer", lang, count=watched), "dim")
    if not view.nodes and view.lan is None and view.world is None:
        body: list[RenderableType] = [_line(t("cluster_watch.waiting", lang, cnilab=cnilab), "dim")]
        room = None if height is None else height - 4
        return Group(title, *body, *render_log(live.log, lang, lit, room), footer)
    others = ([_line(t("cluster_watch.others", lang, names=", ".join(view.others)), "dim")]
              if view.others else [])
    rows = None if height is None else max(height - FIXED - len(others) - MAX_PROBLEMS - 1, 2)
    nodes = render_nodes(view, lang, lit, rows)
    used = 1 + 2 + sum(1 if isinstance(p, Text) else 0 for p in nodes) + len(
        _shown(view, lit, rows)) + 2 + len(others) + 1
    room = None if height is None else height - used - 1  # the changes' title
    return Group(title, *nodes, *render_edges(view, lang, lit), *others,
                 *render_log(live.log, lang, lit, room), footer)


def kubectl_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Columns as kubectl prints them: left-aligned, three spaces apart, no trailing blanks."""
    widths = [max(len(r[i]) for r in (header, *rows)) for i in range(len(header))]
    return "".join("   ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() + "\n"
                   for row in (header, *rows))
