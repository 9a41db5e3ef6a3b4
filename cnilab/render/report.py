"""What the CLI shows for a step, a lesson text, a grading: Rich renderables, in en or ko."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from rich.cells import cell_len
from rich.console import Console, ConsoleOptions, Group, RenderableType, RenderResult
from rich.markup import escape
from rich.padding import Padding
from rich.panel import Panel
from rich.rule import Rule
from rich.text import Text

from cnilab.i18n import t
from cnilab.lab.grade import Fact
from cnilab.lab.topology import Topology
from cnilab.lessons import StepText
from cnilab.render.commands import Listing, highlight, render_commands, render_proofs
from cnilab.render.diagram import render_diagram
from cnilab.render.prose import Prose, wrap

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


class Hint:
    """`hint: COMMAND` under a missing fact: on one line when it fits (or is piped), else the
    command on lines of its own, folded between words with ` \\` (copied whole, it runs)."""

    soft_wrap = True  # out(): never crop; the lines below fit the terminal or are piped

    def __init__(self, label: str, command: str) -> None:
        self.label, self.command = label, command

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        head = Text(f"    {self.label}: ", style="yellow")
        if not console.is_terminal or cell_len(head.plain + self.command) <= options.max_width:
            yield head + highlight(self.command)
        else:
            yield head
            yield Padding(Listing([self.command]), (0, 0, 0, 6))


class FactLine:
    """`✔ [6] sentence`: in a terminal wrapped between words (a `code span` whole), continued
    under the sentence; piped, one line (for grep and diff)."""

    soft_wrap = True

    def __init__(self, mark: Text, sentence: str) -> None:
        self.mark, self.sentence = mark, sentence

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        indent = cell_len(self.mark.plain) + 1
        lines = (list(wrap(self.sentence, max(options.max_width - indent, 20)))
                 if console.is_terminal else [self.sentence])
        for i, line in enumerate(lines or [""]):
            head = self.mark + " " if i == 0 else Text(" " * indent)
            yield Text.assemble(head, line, no_wrap=True, overflow="ignore")


def render_facts(facts: Sequence[Fact], topo: Topology, lang: str) -> list[RenderableType]:
    """One line per graded fact (wrapped between words), and under each missing one a hint:
    the command, apart from the sentence, never cut."""
    lines: list[RenderableType] = []
    for f in facts:
        mark = Text("✔ " if f.ok else "✘ ", style="green" if f.ok else "bold red")
        mark.append(f"[{f.step}]", style="dim")
        lines.append(FactLine(mark, f.text(topo, lang)))
        if not f.ok:
            lines.append(Hint(t("ui.hint", lang), f.hint(topo)))
    return lines
