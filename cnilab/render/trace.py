"""A trace, hop by hop, for an 80-column terminal: where, in/out, interface, addresses, notes."""

from __future__ import annotations

from rich.console import Group, RenderableType
from rich.padding import Padding
from rich.rule import Rule
from rich.text import Text

from cnilab.i18n import t
from cnilab.trace.path import Hop
from cnilab.trace.report import note_text, title, verdict_line
from cnilab.trace.verdict import Leg, TraceResult

DIR, DEV = 4, 14  # column widths; the role's fits the longest (node01-pod1), then addresses
MAX_WHERE = 19  # a role longer than that is cut: the addresses keep their room in 80 columns
NEW = "bold yellow"


def _leg(leg: Leg, roles: dict[str | None, str], lang: str, where: int
         ) -> list[RenderableType]:
    parts: list[RenderableType] = []
    last_ns: object = object()
    previous: tuple[str, str] | None = None
    for h in leg.hops:
        parts.append(_hop_line(h, roles, h.netns != last_ns, previous, where))
        last_ns, previous = h.netns, (h.src, h.dst)
        for note in h.notes:
            style = NEW if note[0] in ("rule", "nat_undone") else "dim"
            if note[0] in ("arp_unanswered",):
                style = "red"
            parts.append(Padding(Text(note_text(note, lang), style=style),
                                 (0, 0, 0, where + DIR + 2), expand=False))
    if not leg.hops:
        parts.append(Text(t("trace.nothing_seen", lang), style="dim"))
    return parts


def _hop_line(h: Hop, roles: dict[str | None, str], first: bool,
              previous: tuple[str, str] | None, width: int) -> Text:
    where = roles.get(h.netns, h.netns or "?") if first else ""
    line = Text(f"{where[:width - 1]:<{width}}", style="bold cyan")
    line.append(f"{h.direction:<{DIR}}", style="green" if h.direction == "in" else "magenta")
    line.append(f"{h.dev[:DEV - 1]:<{DEV}}", style="bold")
    rewritten = previous is not None and (h.src, h.dst) != previous
    line.append(h.src, style=NEW if rewritten and previous and h.src != previous[0] else "")
    line.append(" → ")
    line.append(h.dst, style=NEW if rewritten and previous and h.dst != previous[1] else "")
    return line


def render_trace(r: TraceResult, lang: str) -> list[RenderableType]:
    """The heading, the packet's way, the reply's way, the NAT rewrites, the verdict."""
    parts: list[RenderableType] = [Rule(f"[bold]{title(r, lang)}[/]", align="left"),
                                   Text(t("trace.request", lang), style="bold")]
    hops = r.request.hops + (r.reply.hops if r.reply else [])
    where = min(MAX_WHERE, max([len(r.roles.get(h.netns, h.netns or "?")) for h in hops] or [4])
                + 1)
    parts += _leg(r.request, r.roles, lang, where)
    if r.reply is not None:
        parts += [Text(""), Text(t("trace.reply", lang), style="bold")]
        parts += _leg(r.reply, r.roles, lang, where)
    if r.nat:
        parts += [Text(""), Text(t("trace.nat_title", lang), style="bold")]
        for n in r.nat:
            line = t("trace.nat_line", lang, where=r.roles.get(n.netns, n.netns or "?"),
                     before=" → ".join(n.before), after=" → ".join(n.after))
            parts.append(Padding(Text(line, style=NEW), (0, 0, 0, 1), expand=False))
            for rule in n.rules:
                parts.append(Padding(Text(rule, style="dim"), (0, 0, 0, 3), expand=False))
    ok, last, hint = verdict_line(r, lang)
    parts.append(Text(""))
    parts.append(Text(last, style="bold green" if ok else "bold red"))
    if hint:
        parts.append(Padding(Text(f"{t('ui.hint', lang)}: {hint}", style="yellow"),
                             (0, 0, 0, 2), expand=False))
    if r.probe.detail and not ok:
        parts.append(Padding(Text(t("trace.said", lang, said=r.probe.detail), style="dim"),
                             (0, 0, 0, 2), expand=False))
    return [Group(*parts)]



