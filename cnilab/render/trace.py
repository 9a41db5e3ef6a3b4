"""A trace in words (en, ko), as `cnilab trace --json` prints it, and hop by hop for an 80-column
terminal: where, in/out, interface, addresses, notes."""

from __future__ import annotations

from typing import Any

from rich.console import Group, RenderableType
from rich.padding import Padding
from rich.rule import Rule
from rich.text import Text

from cnilab.i18n import has, t
from cnilab.trace.path import Hop, Note
from cnilab.trace.verdict import Dropped, Leg, TraceResult

WHAT = {"icmp": "icmp echo", "tcp": "tcp SYN", "udp": "udp"}


def note_text(note: Note, lang: str) -> str:
    """One note of a hop, as a sentence."""
    key, params = note
    return t(f"trace.{key}", lang, **params)


def reason_text(d: Dropped, lang: str) -> str:
    """Why the packet died, as a sentence."""
    return t(f"trace_reason.{d.reason}", lang, **d.params)


def hint_text(d: Dropped, lang: str) -> str | None:
    """What to do about it, or None."""
    variant = d.params.get("hint") or ("nobody" if d.params.get("nobody") else "")
    for key in (f"trace_hint.{d.reason}_{variant}" if variant else "", f"trace_hint.{d.reason}"):
        if key and has(key, lang):
            return t(key, lang, **d.params)
    return None


def title(r: TraceResult, lang: str) -> str:
    """'Trace: red → 203.0.113.1 (icmp echo)'."""
    dst = f"{r.plan.dst}:{r.plan.port}" if r.plan.port else r.plan.dst
    return t("trace.title", lang, source=r.plan.source, dst=dst, what=WHAT[r.plan.proto])


def verdict_line(r: TraceResult, lang: str) -> tuple[bool, str, str | None]:
    """(ok, the last line, its hint)."""
    def where(d: Dropped) -> dict[str, str]:
        at = t("trace.at", lang, dev=d.dev) if d.dev else ""
        return {"where": r.roles.get(d.netns, d.netns or "?"), "at": at,
                "reason": reason_text(d, lang)}

    if r.request.dropped is not None:
        d = r.request.dropped
        return False, t("trace.dropped", lang, **where(d)), hint_text(d, lang)
    if r.reply is not None and r.reply.dropped is not None:
        d = r.reply.dropped
        return False, t("trace.reply_dropped", lang, **where(d)), hint_text(d, lang)
    if r.reply is None:
        return True, t("trace.ok_one_way", lang), None
    return True, t("trace.ok", lang, ms=f"{r.probe.seconds * 1000:.1f}"), None


def _hop(h: Hop, lang: str) -> dict[str, Any]:
    return {"netns": h.netns, "dev": h.dev, "direction": h.direction, "src": h.src,
            "dst": h.dst, "note": "; ".join(note_text(n, lang) for n in h.notes)}


def _dropped(d: Dropped | None, lang: str) -> dict[str, Any] | None:
    if d is None:
        return None
    return {"netns": d.netns, "dev": d.dev, "reason": d.reason, "text": reason_text(d, lang),
            "hint": hint_text(d, lang)}


def _leg_json(leg: Leg, lang: str) -> dict[str, Any]:
    return {"delivered": leg.delivered, "hops": [_hop(h, lang) for h in leg.hops],
            "dropped": _dropped(leg.dropped, lang)}


def to_json(r: TraceResult, lang: str) -> dict[str, Any]:
    """The --json form: delivered, hops, nat, dropped, reply (see issue 11)."""
    return {
        "from": r.plan.source, "from_netns": r.plan.netns, "to": r.plan.dst,
        "proto": r.plan.proto, "port": r.plan.port,
        **_leg_json(r.request, lang),
        "nat": [{"netns": n.netns, "rule": "; ".join(n.rules),
                 "before": {"src": n.before[0], "dst": n.before[1]},
                 "after": {"src": n.after[0], "dst": n.after[1]}} for n in r.nat],
        "reply": None if r.reply is None else _leg_json(r.reply, lang),
        "answer": r.probe.answer, "seconds": r.probe.seconds,
    }

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



