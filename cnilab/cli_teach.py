"""The teaching commands: lessons, explain, script, practice, check. Parse, call, print.

cnilab.cli puts them at the top level of the main app.
"""

from __future__ import annotations

import sys
from typing import Annotated, Optional

import typer

from cnilab.cli_lab import lab_of, lesson_in, topology_of
from cnilab.console import LangOption, guarded, lang_of, out
from cnilab.errors import CnilabError

teach_app = typer.Typer()


@teach_app.command()
def lessons(ctx: typer.Context, lang: LangOption = None) -> None:
    """List the lessons, their steps (done marks when run as root) and the scenarios.

    Example: cnilab lessons --lang ko
    """
    from rich.markup import escape

    from cnilab import lessons as lesson_data
    from cnilab.kernel import has_privileges
    from cnilab.scenario import text as scenario_text
    from cnilab.scenario.catalog import SCENARIOS

    with guarded(ctx, lang):
        lang = lang_of(ctx, lang)
        done: list[int] | None = None
        if has_privileges():
            lab = lab_of(ctx)
            with lab.locked():
                done = lab.done_steps(lab.snapshot())
        for lesson in lesson_data.all_lessons(lang):
            out(f"[bold]{escape(lesson.title)}[/]  [dim]({lesson.id})[/]")
            graded = done if lesson.id == "eight-steps" else None  # checked against the kernel
            for s in lesson.steps:
                mark = "" if graded is None else ("[green]✔[/] " if s.number in graded else "· ")
                out(f"  {mark}{s.number}. {escape(s.title)}")
            if lesson.id == scenario_text.FOLDER:  # a lesson of labs to fix, not of steps
                for sc in SCENARIOS:
                    out(f"  {sc.name:<18} {escape(scenario_text.title(sc.name, lang))}")


@teach_app.command()
def explain(
    ctx: typer.Context,
    number: Annotated[int, typer.Argument(help="Step number, 1 to 9.", min=1, max=9)],
    lang: LangOption = None,
) -> None:
    """The lesson text of a step: what, why, what to look at, a common mistake. Needs no root.

    Example: cnilab explain 8 --lang ko
    """
    from cnilab.i18n import t
    from cnilab.render.report import render_explain, step_rule

    with guarded(ctx, lang):
        lang = lang_of(ctx, lang)
        text = lesson_in(lang).step(number)
        out(step_rule(t("ui.step", lang, number=number), text.title))
        out(*render_explain(text, lang))


@teach_app.command()
def script(
    ctx: typer.Context,
    teardown_: Annotated[bool, typer.Option(
        "--teardown", help="The script that removes the lab instead.")] = False,
    end: Annotated[int, typer.Option("--to", min=1, max=8, help="Last step.")] = 8,
    lang: LangOption = None,
) -> None:
    """Print a standalone, commented bash script of steps 1..8 (or of the teardown).

    Example: cnilab script --lang ko > lab.sh && sudo bash lab.sh
    """
    from cnilab.script import lab_script, teardown_script

    with guarded(ctx, lang):
        topo, lang = topology_of(ctx), lang_of(ctx, lang)
        text = (teardown_script(topo, lang, end) if teardown_
                else lab_script(topo, lesson_in(lang), lang, end))
        sys.stdout.write(text)


@teach_app.command()
def practice(
    ctx: typer.Context,
    number: Annotated[int, typer.Argument(help="Step number, 1 to 9.", min=1, max=9)],
    lang: LangOption = None,
) -> None:
    """Prepare the steps before N, then show step N's goal without its commands: you do it.

    Example: sudo cnilab practice 5 ; sudo cnilab shell host ; ... ; sudo cnilab check 5
    """
    from cnilab.i18n import t
    from cnilab.render.report import render_explain, render_goal, step_rule

    with guarded(ctx, lang):
        lab, lang = lab_of(ctx), lang_of(ctx, lang)
        text = lesson_in(lang).step(number)
        with lab.locked():
            lab.prepare(number)
        out(step_rule(t("ui.step", lang, number=number), text.title))
        out(*render_explain(text, lang, with_commands=False, what=False))  # what = the answer
        out(render_goal(text, lang))
        key = "ui.practice_in_place" if lab.topo.in_place else "ui.practice_ready"
        out(t(key, lang, number=number))


@teach_app.command()
def check(
    ctx: typer.Context,
    number: Annotated[Optional[int], typer.Argument(
        help="Step to grade (1 to 9); default: every step so far.", min=1, max=9)] = None,
    lang: LangOption = None,
) -> None:
    """Grade what the kernel holds against step N, whoever made it; a hint for each miss.

    Exit status 0 only if every check passes. Example: sudo cnilab check 6
    """
    from cnilab.grade import grade, steps_so_far
    from cnilab.i18n import t
    from cnilab.render.report import render_facts

    with guarded(ctx, lang):
        lab, lang = lab_of(ctx), lang_of(ctx, lang)
        with lab.locked():
            snap = lab.snapshot()
        steps = [lab.step(number)] if number else steps_so_far(lab.steps, snap, 8)
        facts = grade(steps, snap)
        out(*render_facts(facts, lab.topo, lang))
        failed = sum(not f.ok for f in facts)
        if failed:
            raise CnilabError.of("check_failed", failed=failed, total=len(facts))
        out(f"[green]{t('ui.check_all_passed', lang, total=len(facts))}[/]")
