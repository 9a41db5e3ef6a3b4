"""Running the lab's steps: step and run-all. Parse, call, print.

In a terminal, run-all pauses twice per step, so that each screen holds one thing at a time: the
step's text before it runs (Enter runs it), then its result, with the diagram just above the
prompt (Enter goes on to the next step's text).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Optional

import typer

from cnilab.cli.console import (
    JsonOption,
    LangOption,
    RecordOption,
    StepArgument,
    ask,
    command_line,
    guarded,
    lab_of,
    lang_of,
    lesson_in,
    out,
    out_json,
)
from cnilab.errors import CnilabError, ConfigError, ProofFailed
from cnilab.lab import BONUS_STEP

if TYPE_CHECKING:
    from cnilab.lab.lab import Lab, StepReport
    from cnilab.lessons import Lesson

run_app = typer.Typer()
QUIT = ("q", "quit", "exit")


def _report_json(report: StepReport, lab: Lab, lesson: Lesson, lang: str) -> dict[str, Any]:
    from cnilab.render.report import note_text

    return {
        "step": report.step.number,
        "title": lesson.step(report.step.number).title,
        "changed": not report.already_done,
        "commands": [op.command(lab.topo.node) for op in report.applied],
        "proofs": [{"claim": p.claim(lang), "ok": p.ok, "seen": p.observed(lang)}
                   for p in report.proofs],
        "ok": all(p.ok for p in report.proofs),
        "notes": [note_text(key, params, lang) for key, params in report.notes],
    }


def _print_plan(lab: Lab, numbers: list[int], lesson: Lesson, lang: str) -> None:
    from cnilab.lab.steps import setup_ops
    from cnilab.render.commands import render_plan

    out(*render_plan([(n, lesson.step(n).title, lab.step(n).ops) for n in numbers],
                     lab.topo.node, lang, setup_ops(lab.topo) if 1 in numbers else ()))


@run_app.command()
def step(
    ctx: typer.Context,
    number: StepArgument,
    dry_run: Annotated[bool, typer.Option(
        "--dry-run", help="Print the step's commands; touch nothing.")] = False,
    no_proof: Annotated[bool, typer.Option(
        "--no-proof", help="Skip the packet proofs.")] = False,
    as_json: JsonOption = False,
    record: RecordOption = None,
    lang: LangOption = None,
) -> None:
    """Run one step against the kernel and show what it made.

    Then the diagram of what exists (new things marked), the commands, and the proofs.

    \b
    Examples:
      sudo cnilab step 3
      cnilab step 8 --dry-run       # the commands only; no root, touches nothing
    """
    from cnilab.render.report import render_step

    with guarded(ctx, lang, record):
        lab, lang = lab_of(ctx), lang_of(ctx, lang)
        lesson = lesson_in(ctx, lang)
        if dry_run:
            _print_plan(lab, [number], lesson, lang)
            return
        with lab.locked():
            report = lab.run_step(number, prove=not no_proof)
        if as_json:
            out_json(_report_json(report, lab, lesson, lang))
        else:
            out(*render_step(report, lab.topo, lesson.step(number), lang))
        if not all(p.ok for p in report.proofs):
            raise ProofFailed.of("proof_step", number=number)


def _before(number: int, lesson: Lesson, lang: str) -> bool:
    """The step's text, then a pause (Enter runs it); False when the student stops."""
    from cnilab.i18n import t
    from cnilab.render.report import render_explain, step_rule

    text = lesson.step(number)
    parts = [step_rule(t("ui.next", lang, number=number), text.title),
             *render_explain(text, lang, with_commands=False)]
    return _paged(parts, lang) and ask(t("ui.prompt", lang)).strip().lower() not in QUIT


def _paged(parts: list[Any], lang: str) -> bool:
    """Print the parts; when they are taller than the terminal, pause between two parts.

    At 80x24 a step's text (what, why, the course note) or its result (commands, proofs, the
    diagram) can be taller than the screen: nothing scrolls away unread. False: the student
    stopped.
    """
    from cnilab.cli.console import console
    from cnilab.i18n import t

    screen = console()
    room = screen.height - 1  # the prompt's line
    used = 0
    for part in parts:
        height = len(screen.render_lines(part, screen.options, pad=False))
        if used and used + height > room:
            if ask(t("ui.prompt_more", lang)).strip().lower() in QUIT:
                return False
            used = 1  # the prompt's line stays on screen
        out(part)
        used += height
    return True


def _after(following: int, lang: str) -> bool:
    """A pause under the result just shown; False when the student stops."""
    from cnilab.i18n import t

    return ask(t("ui.prompt_next", lang, number=following)).strip().lower() not in QUIT


@run_app.command("run-all")
def run_all(
    ctx: typer.Context,
    yes: Annotated[bool, typer.Option(
        "--yes", "-y", help="Do not pause between steps (automatic without a terminal).")] = False,
    start: Annotated[int, typer.Option(
        "--from", min=1, max=BONUS_STEP, help="First step, 1 to 9.")] = 1,
    end: Annotated[int, typer.Option(
        "--to", min=1, max=BONUS_STEP, help="Last step, 1 to 9 (9: the bonus).")] = 8,
    dry_run: Annotated[bool, typer.Option(
        "--dry-run", help="Print all the commands; touch nothing.")] = False,
    no_proof: Annotated[bool, typer.Option(
        "--no-proof", help="Skip the packet proofs.")] = False,
    teardown_: Annotated[bool, typer.Option(
        "--teardown", help="Remove the lab at the end (make demo does, unless KEEP=1).")
    ] = False,
    as_json: JsonOption = False,
    junit: Annotated[Optional[Path], typer.Option(
        "--junit", help="Write JUnit XML: one test case per step and per proof.")] = None,
    record: RecordOption = None,
    lang: LangOption = None,
) -> None:
    """Run the steps in order, pausing in a terminal.

    In a terminal: each step's text, Enter runs it; its result, Enter goes on; q stops. Exit
    status 0 only if every step and every proof passed.

    \b
    Examples:
      sudo cnilab run-all
      sudo cnilab run-all --from 5 --to 9
      sudo cnilab run-all --yes --json --junit steps.xml
    """
    from cnilab.i18n import t
    from cnilab.render.prose import Prose

    with guarded(ctx, lang, record):
        lab, lang = lab_of(ctx), lang_of(ctx, lang)
        lesson = lesson_in(ctx, lang)
        numbers = list(range(start, end + 1))
        if not numbers:
            raise ConfigError.of("range", start=start, end=end)
        if dry_run:
            _print_plan(lab, numbers, lesson, lang)
            return
        interactive = not yes and not as_json and sys.stdin.isatty()
        summary: list[dict[str, Any]] = []
        xml = None
        if junit is not None:
            from cnilab.runfiles import Output

            xml = Output(junit)  # begun before step 1: a path that cannot be written fails now
        try:
            stopped = _run(lab, numbers, lesson, lang, summary, interactive, not no_proof,
                           as_json)
        finally:
            if xml is not None:
                from cnilab.render.junit import junit_xml

                xml.commit(junit_xml(summary))
            if teardown_:
                from cnilab.render.web.traces import forget_trace

                with lab.locked():
                    removed = lab.teardown()
                    forget_trace(lab.topo.lab_id)
        cnilab = command_line(ctx)
        ok = all(s["ok"] for s in summary)
        if as_json:
            out_json({"ok": ok, "steps": summary, "removed": teardown_})
        elif stopped is not None:
            out(Prose(t("ui.stopped", lang, number=stopped, cnilab=cnilab)))
        elif ok:
            from rich.rule import Rule

            out(Rule(f"[bold green]{t('ui.all_done', lang)}[/]"))
        if not as_json and teardown_:
            out(Prose(t("ui.removed_at_end", lang, count=len(removed), cnilab=cnilab)))
        elif not as_json and stopped is None and ok:
            if lesson.beyond and numbers[-1] >= 8:  # the whole lesson: where it leads
                out(Prose(lesson.beyond))
            out(Prose(t("ui.explore", lang, cnilab=cnilab)))
        if not ok:
            raise ProofFailed.of("proof_all")


def _run(lab: Lab, numbers: list[int], lesson: Lesson, lang: str, summary: list[dict[str, Any]],
         interactive: bool, prove: bool, as_json: bool) -> int | None:
    """Run the steps, filling `summary`; the step the student stopped before, if any."""
    from cnilab.render.report import render_step

    with lab.locked():
        for n in numbers:
            if interactive and not _before(n, lesson, lang):
                return n
            try:
                report = lab.run_step(n, prove=prove, reuse=not interactive)
            except CnilabError as e:
                summary.append({"step": n, "title": lesson.step(n).title,
                                "error": e.render(lang)[0], "ok": False, "proofs": []})
                raise
            summary.append(_report_json(report, lab, lesson, lang))
            parts = [] if as_json else render_step(report, lab.topo, lesson.step(n), lang)
            if not interactive:
                out(*parts)
            elif not _paged(parts, lang):
                return n + 1 if n != numbers[-1] else None
            elif n != numbers[-1] and not _after(n + 1, lang):
                return n + 1
            elif n == numbers[-1]:  # the last picture stays in view until the student goes on
                from cnilab.i18n import t

                ask(t("ui.prompt_more", lang))
    return None
