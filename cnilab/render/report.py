"""What the CLI shows for a step, a lesson text, a grading: Rich renderables, in en or ko."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from rich.console import Group, RenderableType
from rich.markup import escape
from rich.panel import Panel
from rich.rule import Rule
from rich.text import Text

from cnilab.i18n import t
from cnilab.lab.grade import Fact
from cnilab.lab.topology import Topology
from cnilab.lessons import StepText
from cnilab.render.commands import render_commands, render_proofs
from cnilab.render.diagram import render_diagram
from cnilab.render.prose import Prose

if TYPE_CHECKING:  # the lab reaches the kernel; `cnilab explain` must not load it
    from cnilab.lab.lab import StepReport


def step_rule(label: str, title: str) -> Rule:
    """A heading line: 'Step 3 · Create veth pairs'."""
    return Rule(f"[bold]{escape(label)}[/] · {escape(title)}", align="left")


def render_step(report: StepReport, topo: Topology, text: StepText, lang: str
                ) -> list[RenderableType]:
    """Heading, the commands, the proofs, then the diagram of what exists now (changes marked)."""
    parts: list[RenderableType] = [step_rule(t("ui.step", lang, number=report.step.number),
                                             text.title)]
    if report.staged:
        parts += [Text(t("ui.stage", lang), style="dim"),
                  render_commands(report.staged, None, lang)]
    if report.already_done:
        parts.append(Text(t("ui.already", lang), style="green"))
    where = (t("ui.on_node_named", lang, node=topo.node) if topo.node else t("ui.on_node", lang))
    parts += [Text(t("ui.commands", lang, where=where), style="bold"),
              render_commands(report.applied or list(report.step.ops), topo.node, lang)]
    if report.proofs:
        parts += [Text(t("ui.proofs", lang), style="bold"), render_proofs(report.proofs, lang)]
    if text.watch:
        parts.append(Text(text.watch, style="cyan"))
    parts += [Prose(note_text(key, params, lang), style="yellow")
              for key, params in report.notes]
    # The picture last: on an 80x24 screen it is what stays in view at run-all's pause.
    keys = {k for op in [*report.applied, *report.staged] for k in op.highlights()}
    if report.after is not None:
        parts.append(render_diagram(report.after, topo, keys, lang))
    return parts


def note_text(key: str, params: dict[str, str], lang: str) -> str:
    """A step's note in `lang`; its "who" parameter is itself a sentence key."""
    who = t(params["who"], lang, **params) if "who" in params else ""
    return t(key, lang, **{**params, "who": who})


def render_explain(text: StepText, lang: str, with_commands: bool = True, what: bool = True
                   ) -> list[RenderableType]:
    """A step's lesson text: what, why, what to look at, a common mistake, course notes."""
    def section(label: str, body: str) -> Group:
        return Group(Text(t(label, lang), style="bold cyan"), Prose(body), Text(""))

    parts: list[RenderableType] = [section("ui.what", text.what)] if what else []
    parts.append(section("ui.why", text.why))
    if with_commands:
        parts += [Text(t("ui.inspect", lang), style="bold cyan"),
                  Text("\n".join(text.inspect), style="green", no_wrap=True, overflow="ignore"),
                  Text("")]
        parts.append(section("ui.mistake", text.mistake))
    if text.course_note:
        parts.append(Panel(Prose(text.course_note), title=t("ui.course_note", lang),
                           title_align="left", border_style="yellow"))
    if with_commands and text.watch:
        parts.append(Text(text.watch, style="cyan"))
    return parts


def render_goal(text: StepText, lang: str) -> RenderableType:
    """Practice mode: the goal, without the commands."""
    return Panel(Prose(text.goal), title=t("ui.goal", lang), title_align="left",
                 border_style="cyan")


def render_facts(facts: Sequence[Fact], topo: Topology, lang: str) -> list[Text]:
    """One line per graded fact, with a hint (the command) for each missing one."""
    lines = []
    for f in facts:
        # One unbroken line each: the hint is a command to copy.
        line = Text("✔ " if f.ok else "✘ ", style="green" if f.ok else "bold red", no_wrap=True,
                    overflow="ignore")
        line.append(f"[{f.step}] ", style="dim")
        line.append(f.text(topo, lang))
        if not f.ok:
            line.append(f"  ({t('ui.hint', lang)}: {f.hint(topo)})", style="yellow")
        lines.append(line)
    return lines
