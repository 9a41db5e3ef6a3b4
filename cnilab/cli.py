"""The command line: parses, calls one domain function, prints. No kernel or business logic here.

Domain modules are imported inside the commands: `cnilab --help` stays fast and never loads
pyroute2.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer

from cnilab import __version__
from cnilab.errors import CnilabError, ProofFailed

if TYPE_CHECKING:
    from rich.console import Console

    from cnilab.lab import Lab, StepReport
    from cnilab.lessons import Lesson
    from cnilab.topology import Topology

HELP = """Replay, against the real Linux kernel, the eight steps by which a container gets a
network.

By default the lab is isolated: the node is the namespace cnilab-host and the outside world is
cnilab-internet, so nothing on this machine changes. Kernel commands need root.

Examples:

  sudo cnilab run-all            # the whole lesson, pausing before each step

  sudo cnilab step 3             # one step: diagram, commands, proofs

  sudo cnilab status             # what exists now, which steps are done

  sudo cnilab teardown           # remove everything cnilab made, nothing else
"""

app = typer.Typer(help=HELP, no_args_is_help=True, add_completion=True,
                  rich_markup_mode=None, context_settings={"help_option_names": ["-h", "--help"]})


@cache
def console(stderr: bool = False) -> Console:
    """stdout for output, stderr for errors; made on first use (Rich costs ~40 ms to import)."""
    from rich.console import Console

    # soft_wrap: a command or an error is never cut into two lines (copy-paste must work).
    return Console(stderr=stderr, highlight=False, soft_wrap=True)


def escape(text: str) -> str:
    """Rich markup-escape."""
    from rich.markup import escape as rich_escape

    return rich_escape(text)


def out_print(*objects: Any) -> None:
    """Print to stdout."""
    console().print(*objects)


@dataclass
class Options:
    """Options shared by every command."""

    config: Path | None = None
    in_place: bool = False
    prefix: str | None = None
    lang: str | None = None
    traceback: bool = False


def _version(value: bool) -> None:
    if value:
        out_print(f"cnilab {__version__}")
        raise typer.Exit()


@app.callback()
def main_options(
    ctx: typer.Context,
    config: Annotated[Path | None, typer.Option(
        "--config", "-c", help="TOML file with the lab's names and addresses.")] = None,
    in_place: Annotated[bool, typer.Option(
        "--in-place", help="Use the namespace cnilab runs in as the node (as in the lecture).")
    ] = False,
    prefix: Annotated[str | None, typer.Option(
        "--prefix", help="Put this before every namespace name (to run several labs).")] = None,
    lang: Annotated[str | None, typer.Option(
        "--lang", help="Language of lesson text: en or ko (default: from LANG).")] = None,
    traceback: Annotated[bool, typer.Option(
        "--traceback", help="Show the full Python traceback on errors.")] = False,
    version: Annotated[bool, typer.Option(
        "--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """Global options."""
    ctx.obj = Options(config, in_place, prefix, lang, traceback)


def _opts(ctx: typer.Context) -> Options:
    return ctx.find_root().obj or Options()


def _topology(ctx: typer.Context) -> Topology:
    from cnilab.topology import load

    o = _opts(ctx)
    return load(o.config, prefix=o.prefix, in_place=o.in_place)


def _lab(ctx: typer.Context) -> Lab:
    from cnilab.lab import Lab

    return Lab(_topology(ctx))


def _lesson(ctx: typer.Context) -> Lesson:
    from cnilab import lessons

    return lessons.load("eight-steps", lessons.check_lang(_opts(ctx).lang))


def _fail(e: CnilabError) -> NoReturn:
    hint = f" (hint: {e.hint})" if e.hint else ""
    console(stderr=True).print(f"[bold red]cnilab: error:[/] {escape(e.message)}{escape(hint)}")
    raise typer.Exit(e.exit_code)


# -- printing --------------------------------------------------------------------------------------


def _print_step(lab: Lab, report: StepReport, lesson: Lesson) -> None:
    from rich.rule import Rule

    from cnilab.render import render_commands, render_diagram, render_proofs

    text = lesson.step(report.step.number)
    out_print(Rule(f"[bold]Step {report.step.number}[/] · {escape(text.title)}", align="left"))
    if report.staged:
        out_print("[dim]First, the isolated lab's stage: the node and the outside world.[/]")
        out_print(render_commands(report.staged, None))
    if report.already_done:
        out_print("[green]Already done:[/] the kernel holds this step; nothing was changed.")
    keys = {k for op in report.applied + report.staged for k in op.highlights()}
    assert report.after is not None
    out_print(render_diagram(report.after, lab.topo, keys))
    where = f"on the node ({lab.topo.node})" if lab.topo.node else "on the node"
    out_print(f"[bold]Commands[/], as you would type them {where}:")
    out_print(render_commands(report.applied or list(report.step.ops), lab.topo.node))
    if report.proofs:
        out_print("[bold]Proof with real packets:[/]")
        out_print(render_proofs(report.proofs))


def _report_json(report: StepReport, lab: Lab, lesson: Lesson) -> dict[str, Any]:
    return {
        "step": report.step.number,
        "title": lesson.step(report.step.number).title,
        "changed": not report.already_done,
        "commands": [op.command(lab.topo.node) for op in report.applied],
        "proofs": [{"claim": p.claim, "ok": p.ok, "seen": p.seen} for p in report.proofs],
        "ok": all(p.ok for p in report.proofs),
    }


def _guarded(ctx: typer.Context):  # type: ignore[no-untyped-def]
    """Map domain errors to one line and an exit code (--traceback shows the stack)."""
    from contextlib import contextmanager

    @contextmanager
    def guard():  # type: ignore[no-untyped-def]
        try:
            yield
        except CnilabError as e:
            if _opts(ctx).traceback:
                raise
            _fail(e)
        except KeyboardInterrupt:
            console(stderr=True).print(
                "cnilab: interrupted; the lab stays as it is (`cnilab teardown` removes it)")
            raise typer.Exit(130) from None

    return guard()


# -- commands --------------------------------------------------------------------------------------


@app.command()
def step(
    ctx: typer.Context,
    number: Annotated[int, typer.Argument(help="Step number, 1 to 8.", min=1, max=8)],
    dry_run: Annotated[bool, typer.Option(
        "--dry-run", help="Print the step's commands; touch nothing.")] = False,
    no_proof: Annotated[bool, typer.Option(
        "--no-proof", help="Skip the packet proofs.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON report.")] = False,
) -> None:
    """Run one step against the kernel, then show the diagram, the commands and the proofs.

    Example: sudo cnilab step 3
    """
    with _guarded(ctx):
        lab, lesson = _lab(ctx), _lesson(ctx)
        if dry_run:
            _print_plan(lab, [number], lesson)
            return
        with lab.locked():
            report = lab.run_step(number, prove=not no_proof)
        if as_json:
            console().print_json(json.dumps(_report_json(report, lab, lesson)))
        else:
            _print_step(lab, report, lesson)
        if not all(p.ok for p in report.proofs):
            raise ProofFailed(f"step {number} ran, but a proof with packets failed")


def _print_plan(lab: Lab, numbers: list[int], lesson: Lesson) -> None:
    from cnilab.render import render_commands
    from cnilab.steps import setup_ops

    stage = setup_ops(lab.topo)
    if stage and 1 in numbers:
        out_print("[dim]# the isolated lab's stage (typed on this machine)[/]")
        out_print(render_commands(stage, None))
    for n in numbers:
        out_print(f"[dim]# step {n}: {escape(lesson.step(n).title)}[/]")
        out_print(render_commands(lab.step(n).ops, lab.topo.node))


def _pause(number: int, lesson: Lesson) -> bool:
    from rich.rule import Rule

    text = lesson.step(number)
    out_print(Rule(f"[bold]Next: step {number}[/] · {escape(text.title)}", align="left"))
    out_print(escape(text.what))
    answer = console().input("[dim]Enter runs it, q stops: [/]").strip().lower()
    return answer not in ("q", "quit", "exit")


@app.command("run-all")
def run_all(
    ctx: typer.Context,
    yes: Annotated[bool, typer.Option(
        "--yes", "-y", help="Do not pause between steps (automatic without a terminal).")] = False,
    start: Annotated[int, typer.Option("--from", min=1, max=8, help="First step.")] = 1,
    end: Annotated[int, typer.Option("--to", min=1, max=8, help="Last step.")] = 8,
    dry_run: Annotated[bool, typer.Option(
        "--dry-run", help="Print all the commands; touch nothing.")] = False,
    no_proof: Annotated[bool, typer.Option(
        "--no-proof", help="Skip the packet proofs.")] = False,
    as_json: Annotated[bool, typer.Option(
        "--json", help="Print only a JSON summary (for CI).")] = False,
) -> None:
    """Run the steps in order; in a terminal, pause before each one.

    Exit status 0 only if every step and every proof passed.

    Examples: sudo cnilab run-all ; sudo cnilab run-all --yes --json ; cnilab run-all --dry-run
    """
    with _guarded(ctx):
        lab, lesson = _lab(ctx), _lesson(ctx)
        numbers = list(range(start, end + 1))
        if not numbers:
            raise CnilabError(f"--from {start} comes after --to {end}")
        if dry_run:
            _print_plan(lab, numbers, lesson)
            return
        interactive = not yes and not as_json and sys.stdin.isatty()
        summary: list[dict[str, Any]] = []
        with lab.locked():
            for n in numbers:
                if interactive and not _pause(n, lesson):
                    out_print(f"Stopped before step {n}; the lab stays. "
                              f"Resume with `cnilab run-all --from {n}`.")
                    return
                report = lab.run_step(n, prove=not no_proof, reuse=not interactive)
                summary.append(_report_json(report, lab, lesson))
                if not as_json:
                    _print_step(lab, report, lesson)
        ok = all(s["ok"] for s in summary)
        from rich.rule import Rule

        if as_json:
            console().print_json(json.dumps({"ok": ok, "steps": summary}))
        elif ok:
            out_print(Rule("[bold green]All steps done and proved.[/]"))
            out_print("Explore with `cnilab shell red`; remove the lab with `cnilab teardown`.")
        if not ok:
            raise ProofFailed("every step ran, but a proof with packets failed")


@app.command()
def teardown(ctx: typer.Context) -> None:
    """Remove everything cnilab made (and nothing else); restore sysctls it changed.

    Safe to run twice, and after a crash or Ctrl-C. Example: sudo cnilab teardown
    """
    from cnilab.lab import describe

    with _guarded(ctx):
        lab = _lab(ctx)
        with lab.locked():
            undone = lab.teardown()
        if not undone:
            out_print("Nothing to remove: cnilab has no lab up here.")
            return
        for op in undone:
            keys = op.highlights()
            what = describe(keys[0]) if keys else type(op).__name__
            verb = "restored" if op.highlights()[0][0] == "sysctl" else "removed"
            out_print(f"{verb} {what}")
        out_print(f"[green]Teardown complete[/]: {len(undone)} objects undone.")


@app.command()
def status(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON (for CI).")] = False,
) -> None:
    """Show what exists now and which steps are done (checked against the kernel, not remembered).

    Example: sudo cnilab status --json
    """
    from rich.table import Table
    from rich.text import Text

    from cnilab.render import render_diagram

    with _guarded(ctx):
        lab, lesson = _lab(ctx), _lesson(ctx)
        with lab.locked():
            snap = lab.snapshot()
        done = lab.done_steps(snap)
        if as_json:
            console().print_json(json.dumps({
                "lab": lab.topo.lab_id, "in_place": lab.topo.in_place,
                "steps": {str(s.number): s.number in done for s in lab.steps},
                "state": snap.to_dict()}))
            return
        out_print(render_diagram(snap, lab.topo))
        table = Table(title="Steps", show_edge=False)
        table.add_column("#")
        table.add_column("step")
        table.add_column("done")
        for s in lab.steps:
            mark = Text("✔", style="green") if s.number in done else Text("·", style="dim")
            table.add_row(str(s.number), lesson.step(s.number).title, mark)
        out_print(table)


@app.command()
def doctor(ctx: typer.Context) -> None:
    """Preflight: privileges, namespaces, veth, bridge, iptables and NAT, names, leftovers.

    Example: sudo cnilab doctor
    """
    from cnilab.doctor import run_doctor
    from cnilab.kernel import Kernel
    from cnilab.ledger import Ledger

    with _guarded(ctx):
        topo = _topology(ctx)
        with Kernel() as kernel:
            checks = run_doctor(topo, kernel, Ledger(topo.lab_id))
        for c in checks:
            mark = "[green]✔[/]" if c.ok else "[red]✘[/]"
            hint = f" [dim](hint: {escape(c.hint)})[/]" if c.hint else ""
            out_print(f"{mark} {c.name:<11} {escape(c.detail)}{hint}")
        if not all(c.ok for c in checks):
            raise typer.Exit(1)


@app.command()
def shell(
    ctx: typer.Context,
    where: Annotated[str, typer.Argument(
        help="red, blue (any container), host (the node) or internet.")] = "host",
) -> None:
    """Open a shell inside one of the lab's namespaces, to explore with ip, ping, iptables.

    Example: sudo cnilab shell red   (then: ip addr; ping 192.168.15.2; exit)
    """
    from cnilab.kernel import netns_path, require_privileges

    with _guarded(ctx):
        topo = _topology(ctx)
        require_privileges()
        if where == "host":
            target = topo.node
        elif where == "internet":
            if topo.internet is None:
                raise CnilabError("there is no outside world in --in-place mode")
            target = topo.internet
        else:
            target = topo.netns(topo.container(where))
        user_shell = os.environ.get("SHELL") or shutil.which("bash") or "/bin/sh"
        if target is None:
            out_print("The node is this namespace (--in-place): starting a plain shell.")
            argv = [user_shell]
        else:
            if not os.path.exists(netns_path(target)):
                raise CnilabError(f"namespace {target} does not exist yet",
                                  hint="run `cnilab step 1` (or `cnilab run-all`) first")
            # nsenter enters only the network namespace. `ip netns exec` would also give the
            # shell a private mount namespace, where an `ip netns add` typed by the student
            # would stay invisible to everyone else.
            argv = ["nsenter", f"--net={netns_path(target)}", "--", user_shell]
            out_print(f"Entering {target} (exit to leave).")
        os.environ["PS1"] = f"(cnilab:{where}) \\w# "
        os.environ["CNILAB_NETNS"] = target or ""
        sys.stdout.flush()
        os.execvp(argv[0], argv)


def main() -> None:
    """Entry point of the `cnilab` command."""
    app()
