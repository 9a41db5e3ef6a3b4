"""The lab's commands: teardown, status, doctor, shell. Parse, call, print.

step and run-all are in run.py.

Domain modules (and Rich) are imported inside the commands: `cnilab --help` stays fast and never
loads pyroute2.
"""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING, Annotated

import typer

from cnilab.cli.console import (
    JsonOption,
    LangOption,
    RecordOption,
    guarded,
    lab_commands,
    lab_of,
    lang_of,
    lesson_in,
    out,
    out_json,
    topology_of,
    warn,
)
from cnilab.cli.pager import paged
from cnilab.compat import asdict
from cnilab.errors import CnilabError, ConfigError

if TYPE_CHECKING:
    pass

lab_app = typer.Typer()


@lab_app.command()
def teardown(ctx: typer.Context, as_json: JsonOption = False, lang: LangOption = None) -> None:
    """Remove everything cnilab made, and nothing else.

    Sysctls it changed get their earlier value back. Safe to run twice, and after a crash,
    a Ctrl-C or a kill -9.

    \b
    Example:
      sudo cnilab teardown
    """
    from cnilab.i18n import t
    from cnilab.kernel import list_netns
    from cnilab.ops import describe
    from cnilab.render.prose import Prose
    from cnilab.render.web.traces import forget_trace

    with guarded(ctx, lang):
        lab, lang = lab_of(ctx), lang_of(ctx, lang)
        with lab.locked():
            skipped = lab.ledger.problems  # read before teardown clears the ledger
            undone = lab.teardown()
            forget_trace(lab.topo.lab_id)
        for problem in skipped:
            warn(problem.render(lab.ledger.path, lang), lang)
        removed = [op.undo_command(lab.topo.node) or describe(op.highlights()[0])
                   for op in undone]
        # A student's own namespaces (typed by hand) are not cnilab's to remove: say so.
        left = [name for name in lab.topo.namespaces() if name in list_netns()]
        if as_json:
            out_json({"removed": removed, "left_alone": left})
            return
        if not undone:
            out(t("ui.nothing_to_remove", lang))
        for what in removed:
            out(f"{t('ui.removed', lang)}: {what}")
        if undone:
            out(f"[green]{t('ui.teardown_done', lang, count=len(undone))}[/]")
        for name in left:
            out(Prose(t("ui.left_alone", lang, name=name)))  # the command stays one piece


@lab_app.command()
def status(
    ctx: typer.Context,
    as_json: JsonOption = False,
    record: RecordOption = None,
    lang: LangOption = None,
) -> None:
    """Show what exists now and which steps are done.

    Read from the kernel each time, never remembered: a step typed by hand counts too.

    \b
    Example:
      sudo cnilab status --json
    """
    from cnilab.render.diagram import render_diagram
    from cnilab.render.live import render_steps

    with guarded(ctx, lang, record), paged(ctx):
        lab, lang = lab_of(ctx), lang_of(ctx, lang)
        lesson = lesson_in(ctx, lang)
        with lab.locked():
            snap = lab.snapshot()
        done = lab.done_steps(snap)
        if as_json:
            out_json({"lab": lab.topo.lab_id, "in_place": lab.topo.in_place,
                      "steps": {str(s.number): s.number in done for s in lab.steps},
                      # What traffic taught the kernel, also inside "state": the bridge's
                      # learned MAC -> port entries, and each namespace's ARP table.
                      "fdb": [asdict(e) for ns in snap.spaces.values() for e in ns.fdb
                              if not e.local],
                      "neigh": {(name or ""): [asdict(n) for n in ns.neigh]
                                for name, ns in snap.spaces.items()},
                      "state": snap.to_dict()})
            return
        out(render_diagram(snap, lab.topo, lang=lang))
        titles = {s.number: lesson.step(s.number).title for s in lab.steps}
        out(render_steps(list(titles), done, titles, lang))


@lab_app.command()
def doctor(ctx: typer.Context, as_json: JsonOption = False, lang: LangOption = None) -> None:
    """Preflight: can this machine run the lab?

    Privileges, namespaces, veth, bridge, iptables and NAT tried for real in a throw-away
    namespace, the lab's names, leftovers. Exit status 1 when a check fails.

    \b
    Example:
      sudo cnilab doctor
    """
    from rich.markup import escape

    from cnilab.i18n import t
    from cnilab.kernel import Kernel
    from cnilab.lab.doctor import run_doctor
    from cnilab.lab.lab import lab_ledger

    with guarded(ctx, lang):
        topo, lang = topology_of(ctx), lang_of(ctx, lang)
        with Kernel() as kernel:
            checks = run_doctor(topo, kernel, lab_ledger(topo))
        commands = lab_commands(ctx)
        texts = [(commands.text(detail), None if hint is None else commands.text(hint))
                 for detail, hint in (c.text(lang) for c in checks)]
        if as_json:
            out_json({"ok": all(c.ok for c in checks), "checks": [
                {"name": c.name, "ok": c.ok, "detail": detail, "hint": hint}
                for c, (detail, hint) in zip(checks, texts)]})
        for c, (detail, hint) in zip(checks, texts) if not as_json else ():
            mark = "[green]✔[/]" if c.ok else "[red]✘[/]"
            hint_text = f" [dim]({escape(t('ui.hint', lang))}: {escape(hint)})[/]" if hint else ""
            out(f"{mark} {c.name:<11} {escape(detail)}{hint_text}")
        if not all(c.ok for c in checks):
            raise typer.Exit(1)


FIXED_PLACES = ("host", "internet")


def _places(ctx: typer.Context) -> list[str]:
    """Where `shell` can go: the node, the outside world, each container of this lab."""
    try:
        names = [c.name for c in topology_of(ctx).containers]
    except CnilabError:
        names = []  # the command itself says what is wrong with the config, in one line
    return [*FIXED_PLACES, *(names or ["red", "blue"])]


def _one_of_places(ctx: typer.Context, value: str) -> str:
    """A choice among this lab's places (its containers come from --config, so not fixed)."""
    places = _places(ctx)
    if value not in places:
        raise typer.BadParameter(f"{value!r} is not one of {', '.join(places)}")
    return value


@lab_app.command()
def shell(
    ctx: typer.Context,
    where: Annotated[str, typer.Argument(
        metavar="[host|internet|red|blue]", callback=_one_of_places,
        autocompletion=lambda ctx: _places(ctx),
        help="host (the node), internet, or a container (red, blue by default).")] = "host",
    lang: LangOption = None,
) -> None:
    """Open a shell inside one of the lab's namespaces.

    Explore with ip, ping, iptables; the prompt names the namespace. exit leaves it.

    \b
    Example:
      sudo cnilab shell red         # then: ip addr; ping 192.168.15.2; exit
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
        from cnilab.cli.shell import shell_argv

        argv = shell_argv(f"(cnilab:{where})")
        if target is None:
            out(t("ui.plain_shell", lang))
        else:
            if not os.path.exists(netns_path(target)):
                raise ConfigError.of("no_netns", name=target)
            # nsenter enters only the network namespace. `ip netns exec` would also give the
            # shell a private mount namespace, where an `ip netns add` typed by the student
            # would stay invisible to everyone else.
            argv = ["nsenter", f"--net={netns_path(target)}", "--", *argv]
            out(t("ui.entering", lang, target=target))
        os.environ["CNILAB_NETNS"] = target or ""
        sys.stdout.flush()
        os.execvp(argv[0], argv)
