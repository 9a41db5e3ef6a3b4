"""The live view of `cnilab watch`: the diagram, what the lab learned (ARP, FDB), the steps done,
the last changes; what changed in the last seconds is highlighted.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from functools import partial
from typing import TYPE_CHECKING

from rich.console import Group, RenderableType
from rich.markup import escape
from rich.rule import Rule
from rich.table import Table
from rich.text import Text

from cnilab.i18n import t
from cnilab.lab.topology import Topology
from cnilab.ops import Key, rule_tokens
from cnilab.render.diagram import NEW, render_diagram
from cnilab.render.fit import CropMiddle, FirstFit

if TYPE_CHECKING:  # the model reaches the kernel's data types; rendering needs only their shape
    from cnilab.watch import Change, LiveLab


def render_steps(numbers: Sequence[int], done: Collection[int], titles: Mapping[int, str],
                 lang: str, lit: Collection[Key] = ()) -> Table:
    """Which steps the kernel state satisfies: a ✔ per done step, newly done ones highlighted."""
    table = Table(title=t("ui.steps", lang), show_edge=False)
    for column in ("#", t("ui.steps", lang), t("ui.done", lang)):
        table.add_column(column)
    for n in numbers:
        new = ("step", "", str(n)) in lit
        mark = (Text("✔", style=NEW if new else "green") if n in done
                else Text("·", style="dim"))
        table.add_row(str(n), Text(titles.get(n, ""), style=NEW if new else ""), mark)
    return table


def _where(netns: str | None, lang: str) -> str:
    return netns or t("watch.own", lang)


def _learned(live: LiveLab, lit: Collection[Key], lang: str) -> list[Text]:
    lines = []
    for netns, seen in live.seen.items():
        ns, where = netns or "", _where(netns, lang)
        for n in seen.neighbours:
            key = "watch.arp" if n.mac else "watch.arp_unresolved"
            text = t(key, lang, netns=where, ip=n.ip, mac=n.mac, dev=n.dev)
            lines.append(Text(text, style=NEW if ("neighbour", ns, n.ip) in lit else ""))
        for f in seen.fdb:
            text = t("watch.fdb", lang, netns=where, bridge=f.bridge, mac=f.mac, port=f.port)
            lines.append(Text(text, style=NEW if ("fdb", ns, f.mac) in lit else ""))
    return lines


# A link's flags as `ip link` prints them, the same words in every language.
FLAG_WORDS = {"up": ("DOWN", "UP"), "carrier": ("NO-CARRIER", "LOWER_UP")}


def _value(key: str, value: object) -> str:
    """One field's value as `ip` shows it: UP/DOWN, addresses joined, '-' for none."""
    if isinstance(value, bool) and key in FLAG_WORDS:
        return FLAG_WORDS[key][value]
    if value is None or value == [] or value == ():
        return "-"
    if isinstance(value, (list, tuple)):
        return ", ".join(map(str, value))
    return str(value)


def describe_change(c: Change, lang: str) -> str:
    """One change in words: '~ link veth-red in red: up UP → DOWN'."""
    if c.kind == "steps":
        done = ", ".join(str(n) for n in (c.new or {}).get("done", ())) or t("watch.none", lang)
        return t("watch.steps_done", lang, done=done)
    what = ", ".join(f"{k} {_value(k, (c.old or {}).get(k))} → {_value(k, v)}"
                     for k, v in (c.new or {}).items())
    name = " ".join(rule_tokens(c.name)) if c.kind == "nat" else c.name  # as the diagram shows it
    return t(f"watch.{c.change}", lang, kind=t(f"watch.kind_{c.kind}", lang), name=name,
             netns=_where(c.netns, lang), what=what)


# How much of the live view a terminal gets, fullest first: (diagram compact, steps as a
# table, ARP/FDB lines, change lines). At 80x24 the full lab needs about 45 lines.
LEVELS = ((False, True, 99, 8), (False, False, 4, 4), (True, False, 2, 3), (True, False, 0, 2),
          (True, False, 0, 1, True))


def render_live(live: LiveLab, topo: Topology, titles: Mapping[int, str], lang: str,
                lit: Collection[Key], watched: int, cnilab: str = "cnilab") -> RenderableType:
    """The whole screen of `cnilab watch`, as much of it as the terminal's height holds;
    `cnilab`: how the student calls cnilab on this lab (in the hint while nothing is there)."""
    return FirstFit([partial(_live, live, topo, titles, lang, lit, watched, cnilab, *level)
                     for level in LEVELS])


def _live(live: LiveLab, topo: Topology, titles: Mapping[int, str], lang: str,
          lit: Collection[Key], watched: int, cnilab: str, compact: bool, table: bool,
          learned_lines: int, change_lines: int, crop: bool = False) -> RenderableType:
    head = Rule(escape(t("watch.title", lang, lab=topo.lab_id)), align="left")
    parts: list[RenderableType] = []
    if live.seen:
        parts.append(render_diagram(live.current, topo, lit, lang, compact=compact))
    else:
        parts.append(Text(t("watch.waiting", lang, cnilab=cnilab), style="dim"))
    learned = sorted(_learned(live, lit, lang), key=lambda line: line.style != NEW)
    if learned and learned_lines:
        parts += [Text(t("watch.learned", lang), style="bold"), *learned[:learned_lines]]
    tail: list[RenderableType] = []
    if table:
        parts.append(render_steps([s.number for s in live.steps], live.done, titles, lang, lit))
    else:
        done = ", ".join(str(n) for n in sorted(live.done)) or t("watch.none", lang)
        new = any(k[0] == "step" for k in lit)
        tail.append(Text(t("watch.steps_done", lang, done=done), style=NEW if new else ""))
    # The steps' own line says which are done: the log keeps the kernel's changes.
    changes = [c for c in live.log if c.kind != "steps"]
    if changes:
        tail.append(Text(t("watch.changes", lang), style="bold"))
        for c in changes[-change_lines:]:
            tail.append(Text(describe_change(c, lang), style=NEW if c.key() in lit else "dim"))
    tail.append(Text(t("watch.footer", lang, count=watched), style="dim"))
    if crop:  # the last resort of a short terminal: the lab cut, the latest change and footer
        return CropMiddle(head, Group(*parts), Group(*tail),
                          lambda n: Text(t("watch.cropped", lang, count=n), style="dim"))
    return Group(head, *parts, *tail)
