"""The consoles, the error guard and the options every command shares: a leaf of the CLI.

Every command module (the lab's, the teaching ones, `cni`, `cluster`) prints through `out` and
wraps its work in `guarded`, so errors look the same everywhere: one line, a hint, an exit code.
Rich is imported on first use (~40 ms): `cnilab --help` never loads it.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn, Optional

import typer

from cnilab.compat import valueclass
from cnilab.errors import CnilabError, ConfigError
from cnilab.lab import BONUS_STEP

if TYPE_CHECKING:
    from rich.console import Console

    from cnilab.cluster.cluster import Cluster
    from cnilab.lab.lab import Lab
    from cnilab.lab.topology import Topology
    from cnilab.lessons import Lesson
    from cnilab.render.commands import LabCommands
    from cnilab.runfiles import Output


@valueclass
class Options:
    """Options shared by every command (set by the main callback)."""

    config: Optional[Path] = None
    in_place: bool = False
    prefix: Optional[str] = None
    lang: Optional[str] = None
    traceback: bool = False
    no_pager: bool = False


LangOption = Annotated[Optional[str], typer.Option(
    "--lang", help="en or ko (default: from LC_ALL / LANG).")]
RecordOption = Annotated[Optional[Path], typer.Option(
    "--record", help="Also save everything printed to FILE.svg or FILE.html (for slides).")]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead (for CI).")]
# `trace` and `cluster trace`: the probe's kind.
PortOption = Annotated[Optional[int], typer.Option(
    "--port", help="Send a TCP SYN (or UDP, with --proto udp) to this port, not a ping.")]
ProtoOption = Annotated[Optional[str], typer.Option(
    "--proto", help="icmp (default without --port), tcp (default with it) or udp.")]
# `watch` and `cluster watch`.
JsonLinesOption = Annotated[bool, typer.Option(
    "--json-lines", help="Print the state as one JSON line, then one JSON line per change.")]
HighlightOption = Annotated[float, typer.Option(
    "--highlight", min=0.0, max=60.0, help="Seconds a change stays highlighted.")]

StepArgument = Annotated[int, typer.Argument(
    help="Step number, 1 to 9 (9 is the bonus: port forwarding).", min=1,
    max=BONUS_STEP, metavar="N")]


def opts(ctx: typer.Context) -> Options:
    """The global options of this invocation."""
    obj = ctx.find_root().obj
    return obj if isinstance(obj, Options) else Options()


@cache
def console(stderr: bool = False, record: bool = False) -> Console:
    """stdout for output, stderr for errors; made on first use."""
    from rich.console import Console

    # An error stays one line however narrow the terminal (soft_wrap): the terminal folds it.
    return Console(stderr=stderr, highlight=False, soft_wrap=stderr, record=record)


recording: list[bool] = [False]  # set by --record before anything is printed
INTERRUPTED = 130  # the exit status after a Ctrl-C
interrupt_said: list[bool] = [False]  # the line after a Ctrl-C is printed (cli/entry.py reads it)


def out(*objects: Any, raw: bool = False) -> None:
    """Print each object to stdout (recorded when --record asked for it).

    raw: plain text such as JSON, never wrapped nor read as markup. A no_wrap Text, or anything
    with soft_wrap = True (a command listing), is printed uncut too: a command cut in two is two
    wrong commands.
    """
    from rich.text import Text

    c = console(record=recording[0])
    for obj in objects:
        if raw:
            c.print(obj, markup=False, highlight=False, soft_wrap=True)
        else:
            c.print(obj, soft_wrap=bool(getattr(obj, "soft_wrap", False))
                    or (isinstance(obj, Text) and bool(obj.no_wrap)))


def warn(message: str, lang: str = "en") -> None:
    """One warning line on stderr: "cnilab:" in every language, the word after it translated."""
    from rich.markup import escape

    from cnilab.i18n import t

    label = escape(f"cnilab: {t('ui.warning', lang)}:")
    console(stderr=True).print(f"[bold yellow]{label}[/] {escape(message)}")
def ask(prompt: str) -> str:
    """Read one line from the terminal, with line editing (arrows, history) where readline is."""
    # Importing readline is what makes input() edit the line; without it the arrow keys print
    # ^[[A at the prompt. The prompt goes through input() itself, so readline knows where the
    # line starts (Rich's console.input() prints it apart, and readline then never echoes the
    # newline: the next output lands on the prompt's line).
    with contextlib.suppress(ImportError):
        import readline  # noqa: F401
    console().file.flush()
    return input(prompt)


def out_json(data: Any) -> None:
    """Print `data` as JSON, the one style of every --json: indented, UTF-8, no colour."""
    import json

    out(json.dumps(data, ensure_ascii=False, indent=2), raw=True)


def out_json_line(data: Any) -> None:
    """Print `data` as one JSON line (--json-lines: a line per change, for a pipe)."""
    import json

    out(json.dumps(data, ensure_ascii=False), raw=True)


def command_line(ctx: typer.Context) -> str:
    """How to call cnilab again on the same lab: as it was called, with --prefix, --config ...

    Hints printed after a run are typed next: `.venv/bin/cnilab --prefix demo- shell red` when
    that is what reaches this lab, not a bare `cnilab shell red` that reaches another one.
    """
    import shlex
    import shutil
    import sys

    argv0 = sys.argv[0]
    on_path = shutil.which("cnilab")
    name = "cnilab"
    if argv0.endswith("cnilab") and not (on_path and Path(on_path).resolve() == Path(
            argv0).resolve()):
        name = argv0  # e.g. .venv/bin/cnilab: not the one on PATH
    o = opts(ctx)
    words = [name]
    if o.config is not None:
        words += ["--config", str(o.config)]
    if prefix := _given_prefix(ctx):
        words += ["--prefix", prefix]
    if o.in_place:
        words.append("--in-place")
    sudo = "sudo " if os.environ.get("SUDO_USER") and os.geteuid() == 0 else ""
    return sudo + shlex.join(words)


def lang_of(ctx: typer.Context, lang: str | None = None) -> str:
    """The command's --lang, else the global one, else the locale's."""
    from cnilab.lessons import check_lang

    return check_lang(lang or opts(ctx).lang)


@contextlib.contextmanager
def guarded(ctx: typer.Context, lang: str | None = None,
            record: Path | None = None) -> Iterator[None]:
    """Map domain errors to one line and an exit code; save the --record file at the end."""
    saved = None
    try:
        if record is not None:
            from cnilab.runfiles import Output

            if record.suffix.lower() not in (".svg", ".html"):
                raise ConfigError.of("record_suffix", path=record)
            saved = Output(record)  # a path that cannot be written fails now, not at the end
            recording[0] = True
        yield
    except CnilabError as e:
        if opts(ctx).traceback:
            raise
        _fail(e, lang_of(ctx, lang) if _safe_lang(ctx, lang) else "en", ctx)
    except KeyboardInterrupt:
        import signal

        from cnilab.i18n import t
        from cnilab.render.commands import LabCommands

        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C: not a second line
        said = t("error.interrupted", lang_of(ctx, lang))  # its `cnilab teardown` reaches this lab
        console(stderr=True).print("cnilab: " + LabCommands(command_line(ctx)).text(said))
        interrupt_said[0] = True  # cli/entry.py prints it otherwise
        raise typer.Exit(INTERRUPTED) from None
    finally:
        if saved is not None:
            _save(saved, ctx, lang)


def _save(saved: Output, ctx: typer.Context, lang: str | None) -> None:
    """Write the --record file: 0644, in place of a symlink, never through it."""
    rec = console(record=True)
    page = (rec.export_svg(title="cnilab") if saved.path.suffix.lower() == ".svg"
            else rec.export_html())
    try:
        saved.commit(page.encode("utf-8"))
    except CnilabError as e:
        if opts(ctx).traceback:
            raise
        _fail(e, lang_of(ctx, lang) if _safe_lang(ctx, lang) else "en", ctx)


def _safe_lang(ctx: typer.Context, lang: str | None) -> bool:
    try:
        lang_of(ctx, lang)
    except CnilabError:
        return False
    return True


def _fail(e: CnilabError, lang: str, ctx: typer.Context | None = None) -> NoReturn:
    from rich.markup import escape

    from cnilab.i18n import t
    from cnilab.render.commands import LabCommands

    message, hint = e.render(lang)
    # A hint's `cnilab ...` is typed next: as called, with the --prefix/--config in use.
    hint = LabCommands(command_line(ctx)).text(hint) if hint and ctx else hint
    # "cnilab:" starts every error in every language (scripts grep it; the exit code says which);
    # the word after it is the reader's: "cnilab: error:", "cnilab: 오류:".
    hint_text = f" ({t('ui.hint', lang)}: {hint})" if hint else ""
    label = f"cnilab: {t('ui.error', lang)}:"
    err = console(stderr=True)
    if err.is_terminal:  # wrapped between words (a Korean word, a `command` never split)
        from cnilab.render.prose import Prose

        err.print(Prose(f"{message}{hint_text}", lead=(label + " ", "bold red")))
    else:  # one line, for scripts and logs
        err.print(f"[bold red]{escape(label)}[/] {escape(message)}{escape(hint_text)}")
    raise typer.Exit(e.exit_code)


# Every lesson's prefix.


def _given_prefix(ctx: typer.Context) -> str | None:
    """--prefix as typed: the cluster sub-app's own, else the main app's."""
    obj = ctx.obj
    return obj.prefix if isinstance(obj, ClusterOpts) else opts(ctx).prefix


def prefix_of(ctx: typer.Context) -> str:
    """This lab's prefix, for every lesson alike: --prefix, else the --config file's `prefix`
    key; checked by the one rule (names.check_prefix) before anything is made."""
    from cnilab.names import check_prefix

    given = _given_prefix(ctx)
    if given is None and opts(ctx).config is not None:
        return topology_of(ctx).prefix  # read and checked with the rest of the file
    return check_prefix(given or "")


def lab_commands(ctx: typer.Context, lesson: str = "eight-steps") -> LabCommands:
    """How the commands cnilab prints reach this lab of `lesson`: its real namespace names, on
    its node when isolated, and cnilab called again with the --prefix/--config in use."""
    from cnilab.render.commands import LabCommands

    cnilab = command_line(ctx)
    if lesson == "cni":  # the runtime's folder is its lab's: /run/cnilab/cni/cni@PREFIX/ ...
        from cnilab.ledger import run_dir
        from cnilab.names import Identity

        prefix = prefix_of(ctx)
        folder = f"{run_dir()}/cni/{Identity(lesson, prefix).lab_id}/"
        return LabCommands(cnilab, prefix, paths={"/run/cnilab/cni/cni/": folder})
    if lesson != "eight-steps":
        return LabCommands(cnilab, prefix_of(ctx))
    topo = topology_of(ctx)
    course = ("red", "blue")  # the lesson's text names the first two containers as the course
    names = {name: topo.netns(c) for name, c in zip(course, topo.containers)}
    names.update({c.name: topo.netns(c) for c in topo.containers})
    if topo.node and topo.internet:
        names.update({"cnilab-host": topo.node, "cnilab-internet": topo.internet})
    return LabCommands(cnilab, topo.prefix, names, topo.node)


# What the eight-step lab's commands share: its plan, its owner and its text.


def topology_of(ctx: typer.Context) -> Topology:
    """The lab plan from the global options (--config, --prefix, --in-place)."""
    from cnilab.lab.topology import load

    o = opts(ctx)
    return load(o.config, prefix=o.prefix, in_place=o.in_place)


def lab_of(ctx: typer.Context) -> Lab:
    """The lab for the global options."""
    from cnilab.lab.lab import Lab

    return Lab(topology_of(ctx))


def lesson_in(ctx: typer.Context, lang: str, lesson: str = "eight-steps") -> Lesson:
    """A lesson's text in `lang`, its commands written for this lab (lab_commands)."""
    from cnilab import lessons

    return lab_commands(ctx, lesson).lesson(lessons.load(lesson, lang))


# What every `cnilab cluster` command shares: its options, the cluster that is up, hints.


class ClusterOpts:
    """Options of the sub-app (falling back on the main app's --prefix / --lang)."""

    def __init__(self, prefix: str | None, lang: str | None) -> None:
        self.prefix, self.lang = prefix, lang


def cluster_opts(ctx: typer.Context) -> ClusterOpts:
    """This invocation's cluster options."""
    obj = ctx.obj if isinstance(ctx.obj, ClusterOpts) else None
    return obj or ClusterOpts(None, None)


def cluster_lang(ctx: typer.Context, lang: str | None) -> str | None:
    """The command's --lang, else the sub-app's (`cnilab cluster --lang`), else the main app's."""
    return lang or cluster_opts(ctx).lang


def existing(ctx: typer.Context) -> Cluster:
    """The cluster that is up (its size is in its ledger), or an error saying how to make one."""
    from cnilab.cluster.cluster import Cluster, cluster_ledger, recorded_plan

    prefix = prefix_of(ctx)
    ledger = cluster_ledger(prefix)
    plan = recorded_plan(ledger, prefix)
    if plan is None:
        if prefix:
            raise CnilabError.of("cluster_none_up_prefix", prefix=prefix)
        raise CnilabError.of("cluster_none_up")
    return Cluster(plan, ledger=ledger)


def command_prefix(ctx: typer.Context) -> str:
    """`cnilab cluster` as this invocation reaches its cluster again (--prefix, --config), to
    print in hints."""
    return command_line(ctx) + " cluster"
