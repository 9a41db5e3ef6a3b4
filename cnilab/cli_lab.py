"""The lab's commands: step, run-all, teardown, status, doctor, shell. Parse, call, print.

Domain modules (and Rich) are imported inside the commands: `cnilab --help` stays fast and never
loads pyroute2.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Optional

import typer

from cnilab.console import LangOption, RecordOption, console, guarded, lang_of, opts, out
from cnilab.errors import CnilabError, ConfigError, ProofFailed

if TYPE_CHECKING:
    from cnilab.lab import Lab, StepReport
    from cnilab.lessons import Lesson
    from cnilab.topology import Topology

lab_app = typer.Typer()


def topology_of(ctx: typer.Context) -> Topology:
    """The lab plan from the global options (--config, --prefix, --in-place)."""
    from cnilab.topology import load

    o = opts(ctx)
    return load(o.config, prefix=o.prefix, in_place=o.in_place)


def lab_of(ctx: typer.Context) -> Lab:
    """The lab for the global options."""
    from cnilab.lab import Lab

    return Lab(topology_of(ctx))


def lesson_in(lang: str) -> Lesson:
    """The eight-step lesson in `lang`."""
    from cnilab import lessons

    return lessons.load("eight-steps", lang)


def _report_json(report: StepReport, lab: Lab, lesson: Lesson, lang: str) -> dict[str, Any]:
    return {
        "step": report.step.number,
        "title": lesson.step(report.step.number).title,
        "changed": not report.already_done,
        "commands": [op.command(lab.topo.node) for op in report.applied],
        "proofs": [{"claim": p.claim(lang), "ok": p.ok, "seen": p.observed(lang)}
                   for p in report.proofs],
        "ok": all(p.ok for p in report.proofs),
    }


def _print_plan(lab: Lab, numbers: list[int], lesson: Lesson, lang: str) -> None:
    from rich.markup import escape

    from cnilab.i18n import t
    from cnilab.render import render_commands
    from cnilab.steps import setup_ops

    stage = setup_ops(lab.topo)
    if stage and 1 in numbers:
        out(f"[dim]# {escape(t('ui.stage', lang))}[/]")
        out(render_commands(stage, None))
    for n in numbers:
        out(f"[dim]# step {n}: {escape(lesson.step(n).title)}[/]")
        out(render_commands(lab.step(n).ops, lab.topo.node))


@lab_app.command()
def step(
    ctx: typer.Context,
    number: Annotated[int, typer.Argument(
        help="Step number: 1 to 8, or 9 (bonus: port forwarding).", min=1, max=9)],
    dry_run: Annotated[bool, typer.Option(
        "--dry-run", help="Print the step's commands; touch nothing.")] = False,
    no_proof: Annotated[bool, typer.Option(
        "--no-proof", help="Skip the packet proofs.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON report.")] = False,
    record: RecordOption = None,
    lang: LangOption = None,
) -> None:
    """Run one step against the kernel, then show the diagram, the commands and the proofs.

    Example: sudo cnilab step 3
    """
    from cnilab.render.report import render_step

    with guarded(ctx, lang, record):
        lab, lang = lab_of(ctx), lang_of(ctx, lang)
        lesson = lesson_in(lang)
        if dry_run:
            _print_plan(lab, [number], lesson, lang)
            return
        with lab.locked():
            report = lab.run_step(number, prove=not no_proof)
        if as_json:
            out(json.dumps(_report_json(report, lab, lesson, lang), ensure_ascii=False), raw=True)
        else:
            out(*render_step(report, lab.topo, lesson.step(number), lang))
        if not all(p.ok for p in report.proofs):
            raise ProofFailed.of("proof_step", number=number)


def _pause(number: int, lesson: Lesson, lang: str) -> bool:
    from cnilab.i18n import t
    from cnilab.render.report import render_explain, step_rule

    text = lesson.step(number)
    out(step_rule(t("ui.next", lang, number=number), text.title))
    out(*render_explain(text, lang, with_commands=False))
    answer = console().input(t("ui.prompt", lang)).strip().lower()
    return answer not in ("q", "quit", "exit")


@lab_app.command("run-all")
def run_all(
    ctx: typer.Context,
    yes: Annotated[bool, typer.Option(
        "--yes", "-y", help="Do not pause between steps (automatic without a terminal).")] = False,
    start: Annotated[int, typer.Option("--from", min=1, max=9, help="First step.")] = 1,
    end: Annotated[int, typer.Option(
        "--to", min=1, max=9, help="Last step (9 adds the bonus: port forwarding).")] = 8,
    dry_run: Annotated[bool, typer.Option(
        "--dry-run", help="Print all the commands; touch nothing.")] = False,
    no_proof: Annotated[bool, typer.Option(
        "--no-proof", help="Skip the packet proofs.")] = False,
    as_json: Annotated[bool, typer.Option(
        "--json", help="Print only a JSON summary (for CI).")] = False,
    junit: Annotated[Optional[Path], typer.Option(
        "--junit", help="Write JUnit XML: one test case per step and per proof.")] = None,
    record: RecordOption = None,
    lang: LangOption = None,
) -> None:
    """Run the steps in order; in a terminal, explain and pause before each one (q stops).

    Exit status 0 only if every step and every proof passed.

    Examples: sudo cnilab run-all ; sudo cnilab run-all --yes --json --junit steps.xml
    """
    from cnilab.i18n import t
    from cnilab.render.report import render_step

    with guarded(ctx, lang, record):
        lab, lang = lab_of(ctx), lang_of(ctx, lang)
        lesson = lesson_in(lang)
        numbers = list(range(start, end + 1))
        if not numbers:
            raise ConfigError.of("range", start=start, end=end)
        if dry_run:
            _print_plan(lab, numbers, lesson, lang)
            return
        interactive = not yes and not as_json and sys.stdin.isatty()
        summary: list[dict[str, Any]] = []
        try:
            with lab.locked():
                for n in numbers:
                    if interactive and not _pause(n, lesson, lang):
                        out(t("ui.stopped", lang, number=n))
                        return
                    try:
                        report = lab.run_step(n, prove=not no_proof, reuse=not interactive)
                    except CnilabError as e:
                        summary.append({"step": n, "title": lesson.step(n).title,
                                        "error": e.render(lang)[0], "ok": False, "proofs": []})
                        raise
                    summary.append(_report_json(report, lab, lesson, lang))
                    if not as_json:
                        out(*render_step(report, lab.topo, lesson.step(n), lang))
        finally:
            if junit is not None:
                from cnilab.junit import write_junit

                write_junit(junit, summary)
        ok = all(s["ok"] for s in summary)
        if as_json:
            out(json.dumps({"ok": ok, "steps": summary}, ensure_ascii=False), raw=True)
        elif ok:
            from rich.rule import Rule

            out(Rule(f"[bold green]{t('ui.all_done', lang)}[/]"))
            out(t("ui.explore", lang))
        if not ok:
            raise ProofFailed.of("proof_all")


@lab_app.command()
def teardown(ctx: typer.Context, lang: LangOption = None) -> None:
    """Remove everything cnilab made (and nothing else); restore sysctls it changed.

    Safe to run twice, and after a crash or Ctrl-C. Example: sudo cnilab teardown
    """
    from cnilab.i18n import t
    from cnilab.kernel import list_netns
    from cnilab.ops import describe

    with guarded(ctx, lang):
        lab, lang = lab_of(ctx), lang_of(ctx, lang)
        with lab.locked():
            undone = lab.teardown()
        if not undone:
            out(t("ui.nothing_to_remove", lang))
        for op in undone:
            what = op.undo_command(lab.topo.node) or describe(op.highlights()[0])
            out(f"{t('ui.removed', lang)}: {what}")
        if undone:
            out(f"[green]{t('ui.teardown_done', lang, count=len(undone))}[/]")
        # A student's own namespaces (typed by hand) are not cnilab's to remove: say so.
        for name in (n for n in lab.topo.namespaces() if n in list_netns()):
            out(t("ui.left_alone", lang, name=name))


@lab_app.command()
def status(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON (for CI).")] = False,
    record: RecordOption = None,
    lang: LangOption = None,
) -> None:
    """Show what exists now and which steps are done (checked against the kernel, not remembered).

    Example: sudo cnilab status --json
    """
    from cnilab.render import render_diagram
    from cnilab.render.live import render_steps

    with guarded(ctx, lang, record):
        lab, lang = lab_of(ctx), lang_of(ctx, lang)
        lesson = lesson_in(lang)
        with lab.locked():
            snap = lab.snapshot()
        done = lab.done_steps(snap)
        if as_json:
            out(json.dumps({
                "lab": lab.topo.lab_id, "in_place": lab.topo.in_place,
                "steps": {str(s.number): s.number in done for s in lab.steps},
                "state": snap.to_dict()}), raw=True)
            return
        out(render_diagram(snap, lab.topo, lang=lang))
        titles = {s.number: lesson.step(s.number).title for s in lab.steps}
        out(render_steps(list(titles), done, titles, lang))


@lab_app.command()
def doctor(ctx: typer.Context) -> None:
    """Preflight: privileges, namespaces, veth, bridge, iptables and NAT, names, leftovers.

    Example: sudo cnilab doctor
    """
    from rich.markup import escape

    from cnilab.doctor import run_doctor
    from cnilab.kernel import Kernel
    from cnilab.ledger import Ledger

    with guarded(ctx):
        topo = topology_of(ctx)
        with Kernel() as kernel:
            checks = run_doctor(topo, kernel, Ledger(topo.lab_id))
        for c in checks:
            mark = "[green]✔[/]" if c.ok else "[red]✘[/]"
            hint = f" [dim](hint: {escape(c.hint)})[/]" if c.hint else ""
            out(f"{mark} {c.name:<11} {escape(c.detail)}{hint}")
        if not all(c.ok for c in checks):
            raise typer.Exit(1)


@lab_app.command()
def shell(
    ctx: typer.Context,
    where: Annotated[str, typer.Argument(
        help="red, blue (any container), host (the node) or internet.")] = "host",
    lang: LangOption = None,
) -> None:
    """Open a shell inside one of the lab's namespaces, to explore with ip, ping, iptables.

    Example: sudo cnilab shell red   (then: ip addr; ping 192.168.15.2; exit)
    """
    from cnilab.i18n import t
    from cnilab.kernel import netns_path, require_privileges

    with guarded(ctx, lang):
        topo, lang = topology_of(ctx), lang_of(ctx, lang)
        require_privileges()
        if where == "host":
            target = topo.node
        elif where == "internet":
            if topo.internet is None:
                raise ConfigError.of("no_outside")
            target = topo.internet
        else:
            target = topo.netns(topo.container(where))
        user_shell = os.environ.get("SHELL") or shutil.which("bash") or "/bin/sh"
        if target is None:
            out(t("ui.plain_shell", lang))
            argv = [user_shell]
        else:
            if not os.path.exists(netns_path(target)):
                raise ConfigError.of("no_netns", name=target)
            # nsenter enters only the network namespace. `ip netns exec` would also give the
            # shell a private mount namespace, where an `ip netns add` typed by the student
            # would stay invisible to everyone else.
            argv = ["nsenter", f"--net={netns_path(target)}", "--", user_shell]
            out(t("ui.entering", lang, target=target))
        os.environ["PS1"] = f"(cnilab:{where}) \\w# "
        os.environ["CNILAB_NETNS"] = target or ""
        sys.stdout.flush()
        os.execvp(argv[0], argv)
