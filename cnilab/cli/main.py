"""The command line, assembled: the main app, its global options, and the lessons' commands.

No logic here: the commands live beside this module, one per command group: lab.py and run.py
(the eight steps), teach.py (lessons, explain, script, practice, check), trace.py, watch.py (the
live view), serve.py (the live view in a browser), cni.py, cluster.py, quiz.py (the cluster's
quiz) and scenario.py; all share console.py.
"""

from __future__ import annotations

import copy
import sys
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from cnilab import __version__
from cnilab.cli.cluster import cluster_app
from cnilab.cli.cni import cni_app
from cnilab.cli.console import Options, out
from cnilab.cli.kubectl import kubectl
from cnilab.cli.lab import lab_app
from cnilab.cli.quiz import quiz
from cnilab.cli.run import run_app
from cnilab.cli.scenario import scenario_app
from cnilab.cli.serve import cluster_serve, serve_app
from cnilab.cli.teach import teach_app
from cnilab.cli.trace import cluster_trace, trace_app
from cnilab.cli.watch import cluster_watch, watch_app
from cnilab.compat import evaluate_command_signatures

HELP = """Replay, against the real Linux kernel, the eight steps by which a container gets a
network.

By default the lab is isolated: the node is the namespace cnilab-host and the outside world is
cnilab-internet, so nothing on this machine changes. Kernel commands need root.

\b
Examples:
  sudo cnilab run-all            # the whole lesson, pausing before each step
  sudo cnilab step 3             # one step: diagram, commands, proofs
  cnilab explain 8 --lang ko     # step 8's text, in Korean (no root)
  cnilab explain cluster 5       # any lesson's steps: cnilab lessons
  sudo cnilab practice 6         # do step 6 yourself, then: sudo cnilab check 6
  sudo cnilab trace red 203.0.113.1  # follow one packet hop by hop (after step 8)
  sudo cnilab serve              # the lab live in a browser (http://127.0.0.1:8765/)
  sudo cnilab teardown           # remove everything cnilab made, nothing else

  sudo cnilab scenario start --random   # a broken lab to troubleshoot (exam practice)
"""

app = typer.Typer(help=HELP, no_args_is_help=True, add_completion=True,
                  rich_markup_mode=None, context_settings={"help_option_names": ["-h", "--help"]})


def _version(value: bool) -> None:
    if value:
        out(f"cnilab {__version__}")
        raise typer.Exit()


@app.callback()
def main_options(
    ctx: typer.Context,
    config: Annotated[Optional[Path], typer.Option(
        "--config", "-c", help="TOML file with the lab's names and addresses.")] = None,
    in_place: Annotated[bool, typer.Option(
        "--in-place", help="Use the namespace cnilab runs in as the node (as in the lecture).")
    ] = False,
    prefix: Annotated[Optional[str], typer.Option(
        "--prefix", help="Put this before every namespace name (to run several labs).")] = None,
    lang: Annotated[Optional[str], typer.Option(
        "--lang", help="en or ko (default: from LC_ALL / LANG).")] = None,
    traceback: Annotated[bool, typer.Option(
        "--traceback", help="Show the full Python traceback on errors.")] = False,
    no_pager: Annotated[bool, typer.Option(
        "--no-pager", help="Never page output taller than the terminal (CNILAB_PAGER, or "
        "PAGER, names the pager; default: less -R).")] = False,
    version: Annotated[bool, typer.Option(
        "--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """Global options."""
    ctx.obj = Options(config, in_place, prefix, lang, traceback, no_pager)


# The lab's and the teaching commands sit at the top level (`cnilab step 3`, `cnilab explain 8`);
# the CNI and cluster lessons are sub-commands (`cnilab cni add`, `cnilab cluster up`).
app.registered_commands += (run_app.registered_commands + lab_app.registered_commands
                            + teach_app.registered_commands)
app.registered_commands += (trace_app.registered_commands + watch_app.registered_commands
                            + serve_app.registered_commands)
# Short lines of their own in `cnilab --help`: the sub-apps' first sentences are longer.
# The cluster's quiz, trace and watch live beside the lab's own quiz, trace and watch.
cluster_app.command()(quiz)
cluster_app.command("trace")(cluster_trace)
cluster_app.command("watch")(cluster_watch)
cluster_app.command("serve")(cluster_serve)
cluster_app.command("kubectl", context_settings={"allow_extra_args": True,
                                                 "ignore_unknown_options": True})(kubectl)
app.add_typer(cni_app, name="cni", short_help="The CNI lesson: play the runtime, call a plugin.")
app.add_typer(cluster_app, name="cluster",
              short_help="The cluster lesson: nodes, pods, routes, ports, a quiz.")
app.add_typer(scenario_app, name="scenario",
              short_help="Break-and-fix labs graded from the kernel (exam practice).")
evaluate_command_signatures(app)  # below Python 3.10 only

VALUED = {"--config", "-c", "--prefix", "--lang"}  # the global options that take a value


def command_named(argv: list[str]) -> str | None:
    """The command `argv` runs (step, cni, ...), or None: the top level (help, version, a typo)."""
    i = 0
    while i < len(argv):
        if argv[i] in VALUED:
            i += 2
        elif argv[i].startswith("-"):
            i += 1
        else:
            return argv[i]
    return None


def _name(info: Any) -> str:
    return str(info.name or info.callback.__name__.lower().replace("_", "-"))


def _listed(info: Any) -> Any:
    """A command as the top-level help lists it: its name and text, no parameters to read."""
    def listed() -> None:
        """Placeholder."""

    listed.__name__ = listed.__qualname__ = info.callback.__name__
    listed.__doc__ = info.callback.__doc__
    shown = copy.copy(info)
    shown.callback = listed
    return shown


def _bare(group: Any) -> Any:
    """A sub-app (cni, cluster, scenario) as the top-level help lists it: without its commands."""
    shown, sub = copy.copy(group), copy.copy(group.typer_instance)
    sub.registered_commands, sub.registered_groups = [], []
    shown.typer_instance = sub
    return shown


def app_for(argv: list[str]) -> typer.Typer:
    """The app with only what `argv` runs in it.

    Typer reads the signature of every command it is given before it runs one (~20 ms for all
    of cnilab's): `cnilab step 3` needs step's alone, `cnilab --help` only names and texts.
    """
    name = command_named(argv)
    if name is None and any(a in ("--install-completion", "--show-completion") for a in argv):
        return app
    commands = [c for c in app.registered_commands if _name(c) == name]
    groups = [g for g in app.registered_groups if g.name == name]
    if name is None:
        commands = [_listed(c) for c in app.registered_commands]
        groups = [_bare(g) for g in app.registered_groups]
    elif not commands and not groups:
        return app  # a typo: the whole app, so that the error can suggest the right name
    small = copy.copy(app)
    small.registered_commands, small.registered_groups = commands, groups
    return small


def main() -> None:
    """Entry point of the `cnilab` command."""
    app_for(sys.argv[1:])()
