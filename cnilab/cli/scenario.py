"""`cnilab scenario ...`: break-and-fix labs graded from the kernel. Parse, call, print.

Only Typer is imported at module level: `cnilab --help` stays fast, and `scenario list` (no
root) loads no kernel module. The domain is cnilab.scenario (run.py for start/check/stop).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, Optional

import typer

from cnilab.cli.console import (
    JsonOption,
    LangOption,
    command_line,
    guarded,
    lang_of,
    out,
    out_json,
    topology_of,
    warn,
)
from cnilab.errors import CnilabError, ConfigError

if TYPE_CHECKING:
    from cnilab.lab.proofs import Proof
    from cnilab.scenario.grade import Verdict
    from cnilab.scenario.run import Running, Scenarios

HELP = """Troubleshooting scenarios: the lab (or the cluster) with one realistic fault.

You get the symptom as a user would report it; find the cause with ip, iptables, ping, bridge,
sysctl, tcpdump or `cnilab trace`, fix it, and `check` grades your fix with real packets and
the kernel's state. Isolated mode only; needs root (except `list`).

\b
Examples:
  cnilab scenario list
  sudo cnilab scenario start no-forwarding
  sudo cnilab scenario start --random     # exam mode: it does not say which
  sudo cnilab scenario check
  sudo cnilab scenario hint               # one more hint each time
  sudo cnilab scenario stop
"""

scenario_app = typer.Typer(help=HELP, no_args_is_help=True, rich_markup_mode=None,
                           add_completion=False,
                           context_settings={"help_option_names": ["-h", "--help"]})

STARS = {1: "★☆☆", 2: "★★☆", 3: "★★★"}


def _para(text: str, style: str = "", lead: tuple[str, str] = ("", "")) -> Any:
    """A paragraph wrapped between words, a `command` in it never split (plain text)."""
    from cnilab.render.prose import Prose

    return Prose(text, style, lead)


def _commands(lines: list[str], style: str = "green") -> Any:
    """Commands to copy, indented: folded between words with ` \\` only when too wide."""
    from rich.padding import Padding

    from cnilab.render.commands import Listing

    return Padding(Listing(lines), (0, 0, 0, 2), style=style)


def _scenarios(ctx: typer.Context) -> Scenarios:
    from cnilab.scenario.run import Scenarios

    return Scenarios(topology_of(ctx))


def _values(ctx: typer.Context, running: Running) -> dict[str, str]:
    """The running scenario's names, and how this student calls cnilab (console.command_line:
    the same program, --prefix, --config and sudo as typed)."""
    return {**running.values, "cnilab": command_line(ctx)}


@scenario_app.command("list")
def list_(ctx: typer.Context, as_json: JsonOption = False, lang: LangOption = None) -> None:
    """List the scenarios: name, title, lesson, difficulty.

    Needs no root.

    \b
    Examples:
      cnilab scenario list
      cnilab scenario list --json --lang ko
    """
    from rich.markup import escape
    from rich.table import Table

    from cnilab.i18n import t
    from cnilab.scenario.catalog import SCENARIOS
    from cnilab.scenario.text import title

    with guarded(ctx, lang):
        lang = lang_of(ctx, lang)
        rows: list[dict[str, Any]] = [
            {"name": s.name, "title": title(s.name, lang), "lesson": s.lesson,
             "difficulty": s.difficulty} for s in SCENARIOS]
        if as_json:
            out_json(rows)
            return
        table = Table(title=t("scenario.list_title", lang), show_edge=False)
        for key in ("col_name", "col_title", "col_lesson", "col_difficulty"):
            table.add_column(t(f"scenario.{key}", lang), no_wrap=key != "col_title")
        for r in rows:
            table.add_row(r["name"], escape(r["title"]), r["lesson"], STARS[r["difficulty"]])
        out(table)
        start_line = t("scenario.list_start", lang, cnilab=command_line(ctx))
        out(_para(start_line))


@scenario_app.command()
def start(
    ctx: typer.Context,
    name: Annotated[Optional[str], typer.Argument(
        help="The scenario (see `cnilab scenario list`).")] = None,
    random_: Annotated[bool, typer.Option(
        "--random", help="Pick one at random and do not say which.")] = False,
    as_json: JsonOption = False,
    lang: LangOption = None,
) -> None:
    """Build the lab with one fault; print what a user reports.

    The lab (or, for missing-pod-route, the cluster) is built by the lesson's own steps, then
    the fault is applied through the ledger. --random picks one and does not say which.

    \b
    Examples:
      sudo cnilab scenario start port-down
      sudo cnilab scenario start --random
    """
    from rich.markup import escape

    from cnilab.i18n import t
    from cnilab.scenario.catalog import CLUSTER
    from cnilab.scenario.text import text

    with guarded(ctx, lang):
        lang = lang_of(ctx, lang)
        if (name is None) != random_:
            raise ConfigError.of("scenario_name_or_random")
        running = _scenarios(ctx).start(name)
        values = _values(ctx, running)
        story = text(running.scenario.name, lang, values)
        if as_json:
            out_json({"scenario": name, "symptom": story.symptom})
            return
        ready = (t("scenario.ready_random", lang) if random_
                 else t("scenario.ready", lang, name=running.scenario.name))
        reported = t("scenario.reported", lang)
        out(f"[bold green]{escape(ready)}[/]", "", f"[bold]{escape(reported)}[/]",
            _para(f"  {story.symptom}", "yellow"), "")
        where = ("scenario.investigate_cluster" if running.scenario.lesson == CLUSTER
                 else "scenario.investigate")
        out(_para(t(where, lang, **values)), escape(t("scenario.then", lang)))
        for command in ("check", "hint", "solution", "stop"):
            # The command on its line, what it does under it: never run into each other.
            out(_commands([f"{values['cnilab']} scenario {command}"], "bold"),
                _para(f"      {t(f'scenario.cmd_{command}', lang)}", "dim"))


def _line(ok: bool, claim: str, seen: str | None = None) -> Any:
    """`  ✔ claim (seen)`, wrapped between words and continued under the claim."""
    from rich.text import Text

    from cnilab.render.report import FactLine

    mark = Text.assemble("  ", ("✔" if ok else "✘", "green" if ok else "red"))
    return FactLine(mark, f"{claim} ({seen})" if seen and not ok else claim)


def _verdict_json(verdict: Verdict, lang: str) -> dict[str, Any]:
    def proof(p: Proof) -> dict[str, Any]:
        return {"claim": p.claim(lang), "ok": p.ok, "seen": p.observed(lang)}

    shown = verdict.symptom_gone
    return {
        "ok": verdict.fixed,
        "symptom_gone": verdict.symptom_gone,
        "packets": [proof(p) for p in verdict.packets],
        # The causes name the fault: graded (and shown) only once the packets pass.
        "causes": [{"claim": c.claim(lang), "ok": c.ok} for c in verdict.causes] if shown else None,
    }


@scenario_app.command()
def check(ctx: typer.Context, as_json: JsonOption = False, lang: LangOption = None) -> None:
    """Grade your fix: real packets, then the kernel's state.

    The packets of a healthy lab first (the same for every scenario); once they all get
    through, the facts behind the fault. Exit status 0 only when the symptom is gone and the
    fault is really fixed: any correct fix passes, hiding the symptom or breaking something
    else does not; 1 otherwise.

    \b
    Examples:
      sudo cnilab scenario check
      sudo cnilab scenario check --json
    """
    from rich.markup import escape

    from cnilab.i18n import t
    from cnilab.kernel import require_privileges

    with guarded(ctx, lang):
        lang = lang_of(ctx, lang)
        require_privileges()
        scenarios = _scenarios(ctx)
        verdict = scenarios.check(scenarios.require_running())
        if as_json:
            out_json(_verdict_json(verdict, lang))
        else:
            out(f"[bold]{escape(t('scenario.packets', lang))}[/]")
            out(*(_line(p.ok, p.claim(lang), p.observed(lang)) for p in verdict.packets))
            out(f"[bold]{escape(t('scenario.causes', lang))}[/]")
            if verdict.symptom_gone:
                out(*(_line(c.ok, c.claim(lang)) for c in verdict.causes))
            else:
                hidden = t("scenario.causes_hidden", lang)
                out(f"  [dim]· {escape(hidden)}[/]")
        if not verdict.symptom_gone:
            raise CnilabError.of("scenario_symptom", total=len(verdict.packets),
                                 failed=sum(not p.ok for p in verdict.packets))
        if not verdict.fixed:
            raise CnilabError.of("scenario_cause", total=len(verdict.causes),
                                 failed=sum(not c.ok for c in verdict.causes))
        if not as_json:
            out(f"[bold green]{escape(t('scenario.fixed', lang))}[/]")


@scenario_app.command()
def hint(ctx: typer.Context, as_json: JsonOption = False, lang: LangOption = None) -> None:
    """Show one more hint each time.

    First where to look, then which tool and what to read in its output, then the fix.

    \b
    Examples:
      sudo cnilab scenario hint
      sudo cnilab scenario hint --lang ko
    """

    from cnilab.i18n import t
    from cnilab.kernel import require_privileges
    from cnilab.scenario.text import text

    with guarded(ctx, lang):
        lang = lang_of(ctx, lang)
        require_privileges()
        scenarios = _scenarios(ctx)
        running = scenarios.require_running()
        values = _values(ctx, running)
        hints = text(running.scenario.name, lang, values).hints
        shown = scenarios.next_hint(running, len(hints))
        if as_json:
            out_json({"hints": list(hints[:shown]), "total": len(hints)})
            return
        for number, sentence in enumerate(hints[:shown], 1):
            label = t("scenario.hint_label", lang, number=number, total=len(hints))
            style = "bold" if number == shown else "dim"
            out(_para(sentence, lead=(f"{label}: ", style)))
        more = "scenario.more_hints" if shown < len(hints) else "scenario.no_more_hints"
        out(_para(t(more, lang, cnilab=values["cnilab"]), "dim"))


@scenario_app.command()
def solution(ctx: typer.Context, as_json: JsonOption = False, lang: LangOption = None) -> None:
    """The fix, why it works, who causes it in real clusters.

    The fix is printed as the commands you would type on this machine.

    \b
    Example:
      sudo cnilab scenario solution
    """
    from rich.markup import escape

    from cnilab.i18n import t
    from cnilab.kernel import require_privileges
    from cnilab.scenario.catalog import commands
    from cnilab.scenario.text import text

    with guarded(ctx, lang):
        lang = lang_of(ctx, lang)
        require_privileges()
        running = _scenarios(ctx).require_running()
        values = _values(ctx, running)
        story = text(running.scenario.name, lang, values)
        fix = commands(running.scenario.fix, values)
        if as_json:
            out_json({"scenario": running.scenario.name, "title": story.title, "fix": fix,
                      "why": story.solution, "real_world": story.story})
            return
        out(f"[bold]{escape(running.scenario.name)}[/]: {escape(story.title)}", "")
        out(f"[bold]{escape(t('scenario.fix', lang))}[/]")
        out(_commands(fix))
        out("", f"[bold]{escape(t('scenario.why', lang))}[/]", _para(story.solution), "",
            f"[bold]{escape(t('scenario.real_world', lang))}[/]", _para(story.story))


@scenario_app.command()
def stop(ctx: typer.Context, as_json: JsonOption = False, lang: LangOption = None) -> None:
    """Remove the scenario's lab or cluster, your changes included.

    Everything in its namespaces goes with them. Safe to run twice, and after `start` was
    interrupted or killed.

    \b
    Example:
      sudo cnilab scenario stop
    """
    from cnilab.i18n import t

    with guarded(ctx, lang):
        lang = lang_of(ctx, lang)
        scenarios = _scenarios(ctx)
        undone = scenarios.stop()
        for path, problem in scenarios.skipped:
            warn(problem.render(path, lang))
        if as_json:
            out_json({"removed": len(undone)})
        elif not undone:
            out(t("scenario.nothing_to_stop", lang))
        else:
            out(f"[green]{t('scenario.stopped', lang, count=len(undone))}[/]")
