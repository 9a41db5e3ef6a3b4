"""The teaching commands: lessons, explain, script, practice, check. Parse, call, print.

cnilab.cli.main puts them at the top level of the main app.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Annotated, Any, Optional

import typer

from cnilab.cli.console import (
    JsonOption,
    LangOption,
    StepArgument,
    command_line,
    guarded,
    lab_commands,
    lab_of,
    lang_of,
    lesson_in,
    out,
    out_json,
    topology_of,
)
from cnilab.cli.pager import paged
from cnilab.compat import asdict
from cnilab.errors import CnilabError
from cnilab.lab import BONUS_STEP

if TYPE_CHECKING:
    from cnilab.cli.registry import LessonDef
    from cnilab.lessons import Lesson
    from cnilab.render.commands import LabCommands

teach_app = typer.Typer()


@teach_app.command()
def lessons(ctx: typer.Context, as_json: JsonOption = False, lang: LangOption = None) -> None:
    """List the lessons and their steps, and the scenarios.

    As root, the eight-step lab's steps that the kernel holds are marked done.

    \b
    Examples:
      cnilab lessons --lang ko
      cnilab lessons --json
    """
    from rich.markup import escape

    from cnilab.cli.registry import LESSONS
    from cnilab.i18n import t
    from cnilab.scenario import text as scenario_text
    from cnilab.scenario.catalog import SCENARIOS

    with guarded(ctx, lang):
        lang = lang_of(ctx, lang)
        done = _eight_steps_done(ctx)
        listed: list[dict[str, Any]] = []
        for lesson in LESSONS:
            text = lesson.text(lang)
            graded = done if lesson.name == "eight-steps" else None  # checked in the kernel
            listed.append({
                "name": lesson.name, "title": text.title, "summary": text.summary,
                "commands": lesson.command, "start": lesson.run, "teardown": lesson.teardown,
                "steps": [{"number": s.number, "title": s.title,
                           "done": None if graded is None else s.number in graded}
                          for s in text.steps]})
        # The troubleshooting labs: not steps to follow but faults to find (cnilab scenario).
        scenarios = [{"name": sc.name, "title": scenario_text.title(sc.name, lang),
                      "lesson": sc.lesson} for sc in SCENARIOS]
        if as_json:
            out_json({"lessons": listed, "scenarios": scenarios})
            return
        for item in listed:
            out(f"[bold]{escape(item['title'])}[/]  [dim]({item['name']})[/]")
            for s in item["steps"]:
                mark = {None: "", True: "[green]✔[/] ", False: "· "}[s["done"]]
                out(f"  {mark}{s['number']}. {escape(s['title'])}")
            out(f"  [dim]{escape(t('ui.lesson_commands', lang, **item))}[/]")
        out(f"[bold]{escape(t('ui.scenarios', lang))}[/]  [dim](cnilab scenario)[/]")
        for sc in scenarios:
            out(f"  {sc['name']:<18} {escape(sc['title'])}")


def _eight_steps_done(ctx: typer.Context) -> list[int] | None:
    """The eight-step lab's steps the kernel holds (as root), else None."""
    import os

    if os.geteuid() != 0:  # no kernel module loaded: `cnilab lessons` needs no root
        return None
    from cnilab.kernel import has_privileges

    if not has_privileges():
        return None
    lab = lab_of(ctx)
    with lab.locked():
        return lab.done_steps(lab.snapshot())


def _section_of(first: str, second: int | None) -> tuple[LessonDef, int | None]:
    """`explain 8` (the eight steps), `explain cni 2`, or `explain cni` (the lesson's overview)."""
    from cnilab.cli.registry import get

    if second is None:
        return (get("eight-steps"), int(first)) if first.isdigit() else (get(first), None)
    return get(first), second


def _overview(text: Lesson, name: str, as_json: bool, commands: LabCommands) -> None:
    """A lesson's summary, where it leads, and its steps (`explain LESSON`)."""
    from rich.markup import escape

    from cnilab.i18n import t
    from cnilab.render.prose import Prose
    from cnilab.render.report import step_rule

    lang = text.lang
    steps: list[dict[str, Any]] = [{"number": s.number, "title": s.title}
                                   for s in text.steps]
    if as_json:
        out_json({"lesson": name, "title": text.title, "summary": text.summary,
                  "beyond": text.beyond, "steps": steps})
        return
    out(step_rule(name, text.title), Prose(text.summary), "")
    if text.beyond:
        out(Prose(text.beyond), "")
    for s in steps:
        out(f"  {s['number']}. {escape(s['title'])}")
    out("", Prose(commands.text(t("ui.explain_a_step", lang, lesson=name))))


@teach_app.command()
def explain(
    ctx: typer.Context,
    first: Annotated[str, typer.Argument(
        metavar="[LESSON]", help="eight-steps (the default), cni or cluster.")],
    second: Annotated[Optional[int], typer.Argument(
        metavar="N", help="Step number (1 to 9 for the eight steps).", show_default=False)
    ] = None,
    as_json: JsonOption = False,
    lang: LangOption = None,
) -> None:
    """The lesson text of one step of any lesson. Needs no root.

    What it does, why, what to look at, a common mistake, where course notes differ. A lesson's
    name alone gives its overview and its steps.

    \b
    Examples:
      cnilab explain 8              # step 8 of the eight steps
      cnilab explain cni 2 --lang ko
      cnilab explain cluster 5      # the components' ports
      cnilab explain eight-steps    # the overview: where the eight steps lead
    """
    from cnilab.i18n import t
    from cnilab.render.report import render_explain, step_rule

    with guarded(ctx, lang), paged(ctx):
        lang = lang_of(ctx, lang)
        lesson, number = _section_of(first, second)
        if number is None:
            _overview(lesson_in(ctx, lang, lesson.name), lesson.name, as_json,
                      lab_commands(ctx, lesson.name))
            return
        lesson.section(number, lang)  # a number the lesson lacks: one line naming its range
        text = lesson_in(ctx, lang, lesson.name).step(number)
        if as_json:
            out_json({"lesson": lesson.name, **asdict(text)})
            return
        out(step_rule(t("ui.step", lang, number=number), text.title))
        out(*render_explain(text, lang))


@teach_app.command()
def script(
    ctx: typer.Context,
    teardown_: Annotated[bool, typer.Option(
        "--teardown", help="The script that removes the lab instead.")] = False,
    end: Annotated[int, typer.Option(
        "--to", min=1, max=BONUS_STEP, help="Last step, 1 to 9.")] = 8,
    lang: LangOption = None,
) -> None:
    """Print the lab as a standalone, commented bash script.

    Steps 1 to 8 by default (--to 9 adds the bonus), or the script that removes them.

    \b
    Example:
      cnilab script --lang ko > lab.sh && sudo bash lab.sh
    """
    from cnilab.lab.script import lab_script, teardown_script

    with guarded(ctx, lang):
        topo, lang = topology_of(ctx), lang_of(ctx, lang)
        text = (teardown_script(topo, lang, end) if teardown_
                else lab_script(topo, lesson_in(ctx, lang), lang, end))
        sys.stdout.write(text)


@teach_app.command()
def practice(ctx: typer.Context, number: StepArgument, as_json: JsonOption = False,
             lang: LangOption = None) -> None:
    """Make the steps before N, then show step N's goal: you do it.

    The goal comes without its commands; `cnilab check N` grades what you did.

    \b
    Example:
      sudo cnilab practice 5
      sudo cnilab shell host        # ... type step 5's commands, then exit
      sudo cnilab check 5
    """
    from cnilab.i18n import t
    from cnilab.render.prose import Prose
    from cnilab.render.report import render_explain, render_goal, step_rule

    with guarded(ctx, lang):
        lab, lang = lab_of(ctx), lang_of(ctx, lang)
        text = lesson_in(ctx, lang).step(number)
        with lab.locked():
            undone = lab.rewind(number)
            lab.prepare(number)
        key = "ui.practice_in_place" if lab.topo.in_place else "ui.practice_ready"
        next_ = t(key, lang, number=number, cnilab=command_line(ctx))
        if undone:  # the lab was further on: step N is the student's to do again
            next_ = t("ui.practice_rewound", lang, number=number, count=len(undone)) + " " + next_
        if as_json:
            out_json({"step": number, "title": text.title, "goal": text.goal, "next": next_})
            return
        out(step_rule(t("ui.step", lang, number=number), text.title))
        out(*render_explain(text, lang, with_commands=False, what=False))  # what = the answer
        out(render_goal(text, lang), Prose(next_))


@teach_app.command()
def check(
    ctx: typer.Context,
    number: Annotated[Optional[int], typer.Argument(
        help="Step to grade, 1 to 9; default: every step so far.", min=1, max=BONUS_STEP,
        metavar="[N]", show_default=False)] = None,
    as_json: JsonOption = False,
    lang: LangOption = None,
) -> None:
    """Grade what the kernel holds against step N, whoever made it.

    One line per fact, a hint (the command) for each miss. Exit status 0 only if every
    check passes, 1 otherwise.

    \b
    Example:
      sudo cnilab check 6
    """
    from cnilab.i18n import t
    from cnilab.lab.grade import grade, steps_so_far
    from cnilab.render.report import render_facts

    with guarded(ctx, lang):
        lab, lang = lab_of(ctx), lang_of(ctx, lang)
        with lab.locked():
            snap = lab.snapshot()
        steps = [lab.step(number)] if number else steps_so_far(lab.steps, snap, 8)
        facts = grade(steps, snap)
        failed = sum(not f.ok for f in facts)
        if as_json:
            out_json(_facts_json(facts, lab.topo, lang))
        else:
            out(*render_facts(facts, lab.topo, lang))
        if failed:
            raise CnilabError.of("check_failed", failed=failed, total=len(facts))
        if not as_json:
            out(f"[green]{t('ui.check_all_passed', lang, total=len(facts))}[/]")


def _facts_json(facts: list[Any], topo: Any, lang: str) -> dict[str, Any]:
    return {"ok": all(f.ok for f in facts),
            "facts": [{"step": f.step, "ok": f.ok, "text": f.text(topo, lang),
                       "hint": None if f.ok else f.hint(topo)} for f in facts]}
