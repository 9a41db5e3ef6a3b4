"""A trace result in words (en, ko) and as the JSON `cnilab trace --json` prints."""

from __future__ import annotations

from typing import Any

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


def _leg(leg: Leg, lang: str) -> dict[str, Any]:
    return {"delivered": leg.delivered, "hops": [_hop(h, lang) for h in leg.hops],
            "dropped": _dropped(leg.dropped, lang)}


def to_json(r: TraceResult, lang: str) -> dict[str, Any]:
    """The --json form: delivered, hops, nat, dropped, reply (see issue 11)."""
    return {
        "from": r.plan.source, "from_netns": r.plan.netns, "to": r.plan.dst,
        "proto": r.plan.proto, "port": r.plan.port,
        **_leg(r.request, lang),
        "nat": [{"netns": n.netns, "rule": "; ".join(n.rules),
                 "before": {"src": n.before[0], "dst": n.before[1]},
                 "after": {"src": n.after[0], "dst": n.after[1]}} for n in r.nat],
        "reply": None if r.reply is None else _leg(r.reply, lang),
        "answer": r.probe.answer, "seconds": r.probe.seconds,
    }
