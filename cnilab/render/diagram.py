"""A picture of the observed kernel state: the node with its bridge, the containers, the outside.

Drawn only from a Snapshot (what exists), never from the plan. Keys from the step just run are
highlighted.
"""

from __future__ import annotations

from collections.abc import Collection
from functools import partial
from ipaddress import IPv4Interface

from rich.columns import Columns
from rich.console import Group, RenderableType
from rich.panel import Panel
from rich.table import Table
from rich.text import Text
from rich.tree import Tree

from cnilab.i18n import t
from cnilab.lab.topology import Topology
from cnilab.ops import Key, rule_tokens
from cnilab.render.fit import FirstFit
from cnilab.state import Link, Namespace, Snapshot

NEW = "bold yellow"


def _link_text(ns_key: str, link: Link, keys: Collection[Key], node_peer: str | None,
               drawn: set[str], lang: str, port: bool = False) -> Text:
    """One link: name, kind, state, addresses; the MAC of a bridge and its ports; the cable.

    A veth's cable is drawn from the node's side only (`━━ red:veth-red`): the node box has the
    width, and a container's box stays narrow enough to stand beside its neighbour at 80 columns.
    """
    new = ("link", ns_key, link.name) in keys
    text = Text("+ " if new else "", style=NEW)
    text.append(link.name, style=NEW if new else "bold")
    if not port:  # under a bridge, every port is a veth
        text.append(f" {link.kind}", style="cyan")
    if link.up and link.carrier is False:  # None: not observed (an old recording)
        text.append(" UP", style="green")
        text.append(f" {t('ui.diagram_no_carrier', lang)}", style="red")
    else:
        text.append(" UP" if link.up else " DOWN", style="green" if link.up else "red")
    for addr in link.addresses:
        text.append(f" {addr}", style="bold blue")
    if link.mac and (link.kind == "bridge" or port):  # what the bridge's table will name
        text.append(f" {link.mac}", style="dim")
    # node_peer: "NODE:" outside the node's box (its cables are drawn there), None inside it.
    # Two ends in one namespace: the cable is drawn from the first one only.
    if link.peer and not (node_peer and link.peer.startswith(node_peer)) and link.peer not in drawn:
        text.append(f" ━━ {link.peer}", style="magenta")
        drawn.add(link.name)
    return text


def _namespace_body(ns: Namespace, topo: Topology, keys: Collection[Key],
                    lab_links: Collection[str] | None, lang: str, compact: bool) -> RenderableType:
    ns_key = ns.name or ""
    node_peer = None if ns.name == topo.node else f"{topo.node or '.'}:"
    # Routes name their device only where it could be another one (a container has one link).
    own = [ln for ln in ns.links if ln.kind != "loopback"]
    drawn: set[str] = set()  # links whose cable is drawn
    parts: list[RenderableType] = []
    bridges = [ln for ln in ns.links if ln.kind == "bridge"]
    shown = [ln for ln in ns.links if lab_links is None or ln.name in lab_links]
    for br in bridges:
        if br not in shown:
            continue
        tree = Tree(_link_text(ns_key, br, keys, node_peer, drawn, lang), guide_style="dim")
        for port in (ln for ln in shown if ln.master == br.name):
            branch = tree.add(_link_text(ns_key, port, keys, node_peer, drawn, lang, port=True))
            # What the bridge learned from traffic: which MAC sits behind this port.
            for entry in ns.fdb:
                if entry.port == port.name and entry.bridge == br.name and not entry.local:
                    branch.add(Text(f"fdb {entry.mac}", style="magenta"))
        parts.append(tree)
    for link in shown:
        # Short screens skip lo as it always is, unless the step made it or (the node's) when
        # the step changed the node's links: the node has its lo too (step 7: lo too).
        if compact and _plain_lo(link) and ("link", ns_key, link.name) not in keys and not (
                ns.name == topo.node and any(k[:2] == ("link", ns_key) for k in keys)):
            continue
        if link.kind != "bridge" and not (link.master and ns.link(link.master)):
            parts.append(_link_text(ns_key, link, keys, node_peer, drawn, lang))
    hidden = len(ns.links) - len(shown)
    if hidden:
        parts.append(Text(t("ui.diagram_hidden", lang, count=hidden), style="dim"))
    if lab_links is None:  # on a real node (in place) the machine's own services would crowd in
        for tcp_port in ns.listening:
            new = ("server", ns_key, str(tcp_port)) in keys
            parts.append(Text(f"{'+ ' if new else ''}listening tcp/{tcp_port}",
                              style=NEW if new else "cyan"))
    for r in ns.routes:
        new = ("route", ns_key, r.dst) in keys
        # A connected route is implied by its address, except when its link just came up:
        # that it appears then is what step 7 teaches.
        if (compact and not new and ("link", ns_key, r.dev) not in keys
                and _connected(ns, r.dst, r.gateway, r.dev)):
            continue
        via = f" via {r.gateway}" if r.gateway else ""
        dev = f" dev {r.dev}" if r.dev and not (r.gateway and len(own) == 1) else ""
        parts.append(Text(f"{'+ ' if new else ''}route {r.dst}{via}{dev}",
                          style=NEW if new else "dim"))
    for n in ns.neigh:  # the ARP table: whom this namespace has asked for a MAC
        if lab_links is None or n.dev in lab_links:
            state = "" if compact else f" {n.state}"
            arrow = "" if compact else " →"
            parts.append(Text(f"arp {n.ip}{arrow} {n.mac or '?'}{state}", style="dim"))
    for key, value in sorted(ns.sysctls.items()):
        new = ("sysctl", ns_key, key) in keys
        # Only the node routes: a container or the outside host inherits ip_forward from the
        # machine (it is 1 there only where the host has it on) and it does nothing there.
        if ns.name != topo.node and not new:
            continue
        if value != "0" or new:
            parts.append(Text(f"{'+ ' if new else ''}{key} = {value}", style=NEW if new else ""))
    for rule in ns.nat or ():
        new = ("rule", ns_key, "nat", *rule_tokens(rule)) in keys
        # A rule too long for the box wraps between its words, continued under itself.
        row = Table.grid(padding=(0, 1))
        row.add_column(no_wrap=True)
        row.add_column()
        row.add_row(f"{'+ ' if new else ''}nat", " ".join(rule_tokens(rule)),
                    style=NEW if new else "")
        parts.append(row)
    return Group(*parts) if parts else Text(t("ui.diagram_empty", lang), style="dim")


def _plain_lo(link: Link) -> bool:
    """Loopback as it always is once up: not worth a line when the screen is short."""
    return link.kind == "loopback" and link.up and link.addresses == ("127.0.0.1/8",)


def _connected(ns: Namespace, dst: str, gateway: str | None, dev: str | None) -> bool:
    """A route the kernel made itself for an address's subnet (implied by the address)."""
    link = ns.link(dev) if dev and not gateway else None
    return link is not None and any(str(IPv4Interface(a).network) == dst
                                    for a in link.addresses)


def _panel(title: str, body: RenderableType, new: bool) -> Panel:
    return Panel(body, title=title, title_align="left", expand=False,
                 border_style=NEW if new else "blue")


def render_diagram(snap: Snapshot, topo: Topology, keys: Collection[Key] = (),
                   lang: str = "en", compact: bool | None = None) -> RenderableType:
    """The lab as it exists in the kernel now; what `keys` name is marked '+' in yellow.
    compact: None picks it from the terminal's height; True/False forces it."""
    if not snap.ns(topo.node) and not any(snap.ns(topo.netns(c)) for c in topo.containers) \
            and not (topo.internet and snap.ns(topo.internet)):
        return Text(t("ui.nothing_yet", lang), style="dim")
    if compact is not None:
        return _diagram(snap, topo, keys, lang, compact)
    # In a terminal too short for the full picture, the compact one: it leaves out only what
    # the rest implies (loopback up with 127.0.0.1, the routes the kernel makes for an
    # address's own subnet unless new, the ARP entries' states). At 80x24 run-all's pause must
    # show the whole picture of the step just run, a prompt below it.
    return FirstFit([partial(_diagram, snap, topo, keys, lang, False),
                     partial(_diagram, snap, topo, keys, lang, True)], reserve=1)


def _diagram(snap: Snapshot, topo: Topology, keys: Collection[Key], lang: str,
             compact: bool) -> RenderableType:
    node = snap.ns(topo.node)
    lab_links: set[str] | None = None
    if topo.in_place:  # the node is a real machine: show only the lab's links
        lab_links = {topo.bridge, *(name for c in topo.containers for name in (c.veth, c.peer))}
    rows: list[RenderableType] = []
    if node is not None:
        title = (t("ui.diagram_node", lang, name=topo.node) if topo.node
                 else t("ui.diagram_node_in_place", lang))
        rows.append(_panel(title, _namespace_body(node, topo, keys, lab_links, lang, compact),
                           ("netns", topo.node or "") in keys))
    boxes: list[RenderableType] = []
    for c in topo.containers:
        ns = snap.ns(topo.netns(c))
        if ns is not None:
            body = _namespace_body(ns, topo, keys, None, lang, compact)
            boxes.append(_panel(t("ui.diagram_container", lang, name=topo.netns(c)), body,
                                ("netns", topo.netns(c)) in keys))
    if boxes:  # side by side while they fit, never squeezed: a wrapped address is misread
        rows.append(Columns(boxes, padding=(0, 1)))
    if topo.internet and (inet := snap.ns(topo.internet)) is not None:
        # A row of its own: Columns gives every box the widest one's width, and this wider box
        # would push red and blue apart at 80 columns.
        rows.append(_panel(t("ui.diagram_outside", lang, name=topo.internet),
                           _namespace_body(inet, topo, keys, None, lang, compact),
                           ("netns", topo.internet) in keys))
    return Group(*rows)  # not empty: render_diagram said "nothing yet" before
