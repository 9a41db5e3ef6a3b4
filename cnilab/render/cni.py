"""What `cnilab cni ...` prints: the lesson's section, each plugin call (env, stdin, answer),
the node's diagram, the proofs, and the one JSON shape. Sentences from lessons/ui; Rich here.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from contextlib import suppress
from ipaddress import IPv4Interface
from typing import TYPE_CHECKING, Any

from rich.console import RenderableType
from rich.markup import escape
from rich.rule import Rule
from rich.syntax import Syntax
from rich.table import Table

from cnilab.errors import CnilabError
from cnilab.i18n import t

if TYPE_CHECKING:
    from cnilab.cni.exec import Call
    from cnilab.cni.runtime import Added, Pod, Runtime
    from cnilab.lab.proofs import Proof


def ui(key: str, lang: str, **params: Any) -> str:
    """A UI sentence of the cni commands, markup-escaped."""
    return escape(t(f"ui.{key}", lang, **params))


def section_lines(number: int, lang: str) -> list[Any]:
    """The lesson's step `number`: its title and what it does."""
    from cnilab import lessons

    try:
        text = lessons.load("cni", lang).step(number)
    except CnilabError:
        return []
    return [Rule(f"[bold]{number}[/] · {escape(text.title)}", align="left"),
            f"[dim]{escape(text.what)}[/]"]


def _json(text: str) -> Syntax:
    """JSON indented and wrapped between words at the terminal's width, never cut."""
    with suppress(ValueError):  # not JSON (a plugin that printed something else): as it came
        text = json.dumps(json.loads(text), indent=2, ensure_ascii=False)
    return Syntax(text, "json", theme="ansi_dark", background_color="default", word_wrap=True)


def delegation_lines(call: Call, lang: str, sections: bool) -> list[Any]:
    """The IPAM calls the plugin made (step 2 of the lesson), then step 3's heading."""
    lines: list[Any] = section_lines(2, lang) if sections and call.delegations else []
    for d in call.delegations:
        ipam, command = str(d.get("plugin")), str(d.get("command"))
        calls = ui("cni_delegates", lang, ipam=ipam, command=command)
        if d.get("config") == call.config:
            lines.append(f"[bold]{calls} {ui('cni_delegates_same_stdin', lang)}[/]")
        else:
            lines += [f"[bold]{calls}[/]", f"[bold]{ui('cni_stdin', lang)}[/]",
                      _json(json.dumps(d.get("config"), indent=2, ensure_ascii=False))]
        answer = d.get("answer")
        lines += ([f"[bold]{ui('cni_ipam_answered', lang, ipam=ipam)}[/]",
                   _json(json.dumps(answer, ensure_ascii=False))] if answer
                  else [f"[dim]{ui('cni_ipam_nothing', lang, ipam=ipam)}[/]"])
    if sections and call.delegations:
        lines += section_lines(3, lang)
    return lines


def call_lines(call: Call, lang: str, sections: bool = False) -> list[Any]:
    """One plugin call as the runtime made it: environment, stdin, the IPAM calls it made (with
    the lesson's steps 2 and 3 when `sections`), exit code and stdout."""
    table = Table(show_header=False, show_edge=False, box=None)
    table.add_column(no_wrap=True)
    table.add_column(overflow="fold")  # a long ID or CNI_ARGS folds, never cut with "…"
    for key, value in call.env.items():
        table.add_row(f"[cyan]{key}[/]", escape(value))
    verdict = t("ui.cni_exit", lang, code=call.code)
    key = "cni_answered" if call.stdout.strip() else "cni_answered_nothing"
    colour = "green" if call.ok else "red"
    lines: list[Any] = [
        f"[bold]{ui('cni_runs', lang, plugin=call.plugin, command=call.command)}[/]", table,
        f"[bold]{ui('cni_stdin', lang)}[/]",
        _json(json.dumps(call.config, indent=2, ensure_ascii=False)),
        *delegation_lines(call, lang, sections),
        f"[bold {colour}]{ui(key, lang, verdict=verdict, ms=round(call.seconds * 1000))}[/]"]
    if call.stdout.strip():
        lines.append(_json(call.stdout.strip()))
    return lines


def calls_lines(calls: Sequence[Call], lang: str, number: int | None = None) -> list[Any]:
    """The lesson's section (if any), then every call."""
    lines = section_lines(number, lang) if number is not None else []
    for call in calls:  # ADD's section 1: the IPAM call is the lesson's step 2, then step 3
        lines += call_lines(call, lang, sections=number == 1 and call.command == "ADD")
    return lines


def proof_lines(proofs: Sequence[Proof], lang: str) -> list[Any]:
    """The proofs with real packets, as the lab shows them."""
    from cnilab.render.commands import render_proofs

    if not proofs:
        return []
    return [f"[bold]{ui('proofs', lang)}[/]", render_proofs(list(proofs), lang)]


def call_json(call: Call) -> dict[str, Any]:
    """One plugin call as --json shows it."""
    return {"plugin": call.plugin, "command": call.command, "env": call.env,
            "config": call.config, "exit": call.code, "answer": call.answer,
            "ms": round(call.seconds * 1000, 1)}


def pod_json(pod: Pod) -> dict[str, Any]:
    """A pod as --json shows it."""
    return {"pod": pod.name, "netns": pod.netns, "containerId": pod.container_id,
            "network": pod.network.name if pod.network else None,
            "result": pod.result or None}


def report_json(calls: Sequence[Call], lang: str, added: Added | None = None,
                **extra: Any) -> str:
    """The one JSON shape of the cni commands: ok, what it was about, the calls, the proofs."""
    report: dict[str, Any] = {"ok": all(c.ok for c in calls), **extra}
    if added is not None:
        report.update(pod_json(added.pod))
        report["proofs"] = [{"claim": p.claim(lang), "ok": p.ok, "seen": p.observed(lang)}
                            for p in added.proofs]
        report["ok"] = report["ok"] and all(p.ok for p in added.proofs)
    report["calls"] = [call_json(c) for c in calls]
    return json.dumps(report, ensure_ascii=False)


def node_diagram(rt: Runtime, lang: str) -> RenderableType:
    """The node and the pods as the kernel shows them now."""
    from cnilab.cni.bridge import host_veth_name
    from cnilab.lab.topology import Container, Topology
    from cnilab.render.diagram import render_diagram

    pods = []
    for p in rt.pods():
        if p.network is None or not p.result.get("ips"):
            continue
        address = IPv4Interface(p.result["ips"][0]["address"])
        pods.append(Container(p.netns, address, p.ifname,
                              host_veth_name(p.network.name, p.container_id, p.ifname)))
    topo = Topology(tuple(pods), node_name=rt.node, internet_name=f"{rt.node}-none",
                    bridge=str(rt.network().plugins[0]["bridge"]))
    return render_diagram(rt.observe(), topo, lang=lang)
