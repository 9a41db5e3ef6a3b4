"""`cnilab cluster quiz`: the lab's questions, graded against what the kernel holds now.

In a terminal a wrong answer earns a hint and another try: first where to look, then the command
that shows it; the answer comes only after that. The prompt has line editing (readline).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Annotated, Optional

import typer

from cnilab.cli.console import (
    JsonOption,
    LangOption,
    ask,
    cluster_lang,
    command_prefix,
    existing,
    guarded,
    lang_of,
    out,
    out_json,
)

if TYPE_CHECKING:
    from cnilab.cluster.quiz import Graded, Question

TRIES = 3  # the answer, then again after the nudge, then again after the command


def quiz(
    ctx: typer.Context,
    answers: Annotated[bool, typer.Option(
        "--answers", help="Print the answers, read from the kernel now (for instructors).")
    ] = False,
    answer: Annotated[Optional[list[str]], typer.Option(
        "--answer", help="Answer one question without prompting: ID=VALUE (repeatable).")
    ] = None,
    as_json: JsonOption = False,
    lang: LangOption = None,
) -> None:
    """Ask the lab's questions and grade the answers against the kernel.

    In a terminal it prompts, with a hint and another try after a wrong answer; otherwise it
    reads one answer per line from stdin, in order. Exit status 0 when every answer is right.

    \b
    Examples:
      sudo cnilab cluster quiz --lang ko
      sudo cnilab cluster quiz --answer scheduler_port=10259
    """
    from cnilab.cluster.quiz import lesson_text, questions
    from cnilab.cluster.status import read_status

    lang = cluster_lang(ctx, lang)
    with guarded(ctx, lang):
        lang = lang_of(ctx, lang)
        cluster = existing(ctx)
        with cluster.locked():
            data = read_status(cluster)
        cmd = command_prefix(ctx)
        names = {"exec": f"{cmd} exec", "shell": f"{cmd} shell", "lan": cluster.plan.lan_netns}
        asked = questions(data, lang, names)
        ui = lesson_text(lang)["ui"]
        if answers:
            _print_answers(asked, ui, as_json)
            return
        graded = _grade(asked, ui, answer or [], as_json, names)
        if not all(g.correct for g in graded):
            raise typer.Exit(1)


def _print_answers(asked: list[Question], ui: dict[str, str], as_json: bool) -> None:
    from rich.markup import escape

    from cnilab.render.prose import Prose

    if as_json:
        out_json([{"id": q.id, "question": q.text, "answer": q.expected, "hint": q.hint}
                  for q in asked])
        return
    out(f"[bold]{escape(ui['answers_title'])}[/]")
    for number, q in enumerate(asked, 1):
        out(f"\n{number}. {escape(q.text)} [dim]({q.id})[/]")
        out(f"   {escape(ui['answer'])}: [bold green]{escape(q.expected)}[/]")
        out(Prose(f"   {ui['find_with']}: {q.hint}", style="dim"))


def _replies(given: dict[str, str], interactive: bool) -> Callable[[str], str | None]:
    """Where answers come from: --answer, the prompt (with readline), or stdin's lines."""
    if given:
        return lambda _: None
    if interactive:
        return ask
    lines: Iterator[str] = iter(sys.stdin.read().splitlines())
    return lambda _: next(lines, None)


def _grade(asked: list[Question], ui: dict[str, str], options: list[str], as_json: bool,
           names: dict[str, str]) -> list[Graded]:
    from rich.markup import escape

    from cnilab.cluster.quiz import grade, parse_answer_options
    from cnilab.render.prose import Prose

    given = parse_answer_options(options, asked)
    interactive = not given and sys.stdin.isatty() and not as_json
    ask = _replies(given, interactive)
    if not as_json:
        out(Prose(ui["intro"].format(**names)))
    graded = []
    for number, q in enumerate(asked, 1):
        if given and q.id not in given:
            continue
        if not as_json:
            out(f"\n[bold]{number}. {escape(q.text)}[/]")
            if not interactive:  # one try only: the command that finds it, up front
                out(Prose(f"{ui['hint']}: {q.hint}", style="dim"))
        tries = TRIES if interactive else 1
        hints = [(ui["nudge"], q.nudge), (ui["hint"], q.hint)]
        for attempt in range(tries):
            reply = given[q.id] if given else ask(f"{ui['prompt']}: ")
            g = grade(q, reply, attempt + 1)
            if g.correct or g.answer is None or attempt == tries - 1:
                break
            _why_wrong(q, g.answer, ui)
            label, text = hints[attempt]
            out(Prose(f"{label}: {text}", style="yellow"))
        graded.append(g)
        if not as_json:
            _verdict(q, g, ui, explain_trap=not interactive)
    # The score counts first tries: a retry after a hint still teaches, but it is not a score.
    right, first = sum(g.correct for g in graded), sum(g.first_try for g in graded)
    if as_json:
        out_json({"right": first, "right_in_the_end": right, "total": len(graded),
                  "results": [{"id": g.question.id, "answer": g.answer,
                               "expected": g.question.expected, "correct": g.correct,
                               "tries": g.tries, "first_try": g.first_try,
                               "source": g.question.source}
                              for g in graded]})
    else:
        score = ui["score" if right == first else "score_retried"]
        out("\n" + score.format(first=first, right=right, total=len(graded)))
    return graded


def _why(q: Question, answer: str, ui: dict[str, str]) -> str | None:
    """Why this answer is wrong, when known: a known trap, or several values at once."""
    from cnilab.cluster.quiz import several, trap

    listed = several(q, answer)
    if listed:
        return ui["several"].format(count=len(listed), values=", ".join(listed))
    return trap(q, answer)


def _why_wrong(q: Question, answer: str, ui: dict[str, str]) -> None:
    from cnilab.render.prose import Prose

    out(Prose(f"✘ {_why(q, answer, ui) or ui['try_again']}", style="red"))


def _verdict(q: Question, g: Graded, ui: dict[str, str], explain_trap: bool) -> None:
    from rich.markup import escape

    from cnilab.render.prose import Prose

    if g.correct:
        out(Prose(f"✔ {ui['correct']} {q.explanation}", style="green"))
    elif g.answer is None:
        out(f"[yellow]· {escape(ui['skipped'].format(source=q.source))}[/]")
    else:
        msg = ui["wrong"].format(source=q.source, answer=g.answer)
        why = _why(q, g.answer, ui) if explain_trap else None
        out(Prose(f"✘ {msg} {why or q.explanation}", style="red"))
