"""`cnilab cluster ...`: the cluster networking lesson's commands. Parses, calls, prints.

Only Typer is imported at module level: the main CLI imports this sub-app, and `cnilab --help`
must stay fast (Rich, pyroute2 and the domain modules load inside the commands).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sys
from collections.abc import Iterator
from typing import TYPE_CHECKING, Annotated, Any, Optional

import typer

from cnilab.errors import CnilabError

if TYPE_CHECKING:
    from rich.console import Console

    from cnilab.cluster.cluster import Cluster

HELP = """A Kubernetes cluster's network built from namespaces, to explore and be quizzed on.

Nodes (controlplane, node01, ...) are network namespaces on one LAN (ens3, 172.17.0.0/16) with a
gateway to an emulated outside world; each node has cni0 with its pod CIDR, pods attached by the
cnilab CNI plugin, routes to the other nodes' pods, and the components listening on their ports.
Nothing changes in this machine's own namespace. Needs root.

Examples:

  sudo cnilab cluster up          # controlplane and node01, 2 pods each

  sudo cnilab cluster exec controlplane -- ip route

  sudo cnilab cluster quiz

  sudo cnilab cluster down
"""

cluster_app = typer.Typer(help=HELP, no_args_is_help=True, rich_markup_mode=None,
                          add_completion=False,
                          context_settings={"help_option_names": ["-h", "--help"]})


class _Opts:
    """Options of the sub-app (falling back on the main app's --prefix / --lang / --traceback)."""

    def __init__(self, prefix: str | None, lang: str | None, traceback: bool) -> None:
        self.prefix, self.lang, self.traceback = prefix, lang, traceback


@cluster_app.callback()
def cluster_options(
    ctx: typer.Context,
    prefix: Annotated[Optional[str], typer.Option(
        "--prefix", help="Put this before every namespace name (to run several clusters).")
    ] = None,
    lang: Annotated[Optional[str], typer.Option(
        "--lang", help="Language of the quiz: en or ko (default: from LANG).")] = None,
) -> None:
    """Options of every cluster command."""
    root = ctx.find_root().obj
    ctx.obj = _Opts(prefix if prefix is not None else getattr(root, "prefix", None),
                    lang or getattr(root, "lang", None), bool(getattr(root, "traceback", False)))


def _opts(ctx: typer.Context) -> _Opts:
    obj = ctx.obj if isinstance(ctx.obj, _Opts) else None
    return obj or _Opts(None, None, False)


def _console(stderr: bool = False) -> Console:
    """The main command line's console (Rich loads on first use)."""
    from cnilab.console import console

    return console(stderr=stderr)


@contextlib.contextmanager
def _guarded(ctx: typer.Context) -> Iterator[None]:
    """Domain errors become one line and an exit code, as everywhere in cnilab."""
    from cnilab.console import guarded

    with guarded(ctx):
        yield


def _existing(ctx: typer.Context) -> Cluster:
    """The cluster that is up (its size is in its ledger), or an error saying how to make one."""
    from cnilab.cluster.cluster import Cluster, cluster_ledger, recorded_plan

    prefix = _opts(ctx).prefix or ""
    ledger = cluster_ledger(prefix)
    plan = recorded_plan(ledger, prefix)
    if plan is None:
        if prefix:
            raise CnilabError.of("cluster_none_up_prefix", prefix=prefix)
        raise CnilabError.of("cluster_none_up")
    return Cluster(plan, ledger=ledger)


def _exec_prefix(ctx: typer.Context) -> str:
    prefix = _opts(ctx).prefix
    return "cnilab cluster" + (f" --prefix {prefix}" if prefix else "") + " exec"


# -- up / down -------------------------------------------------------------------------------------


@cluster_app.command()
def up(
    ctx: typer.Context,
    nodes: Annotated[int, typer.Option("--nodes", help="Number of nodes (1 to 200).")] = 2,
    pods_per_node: Annotated[int, typer.Option(
        "--pods-per-node", help="Pods attached on each node (0 to 250).")] = 2,
    pod_network: Annotated[str, typer.Option(
        "--pod-network", help="The cluster's pod network; node K gets its K-th /24.")
    ] = "10.244.0.0/16",
    dry_run: Annotated[bool, typer.Option(
        "--dry-run", help="Print the commands; touch nothing.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the status as JSON.")] = False,
) -> None:
    """Build the cluster (a second run changes nothing).

    Example: sudo cnilab cluster up --nodes 3 --pods-per-node 2
    """
    from cnilab.cluster.plan import build_plan, parse_network

    with _guarded(ctx):
        plan = build_plan(nodes, pods_per_node, _opts(ctx).prefix or "",
                          parse_network(pod_network, "--pod-network"))
        if dry_run:
            _print_plan(plan)
            return
        from cnilab.cluster.cluster import Cluster
        from cnilab.cluster.status import read_status

        cluster = Cluster(plan)
        with cluster.locked():
            report = cluster.up()
            status = read_status(cluster)
        if as_json:
            _console().print_json(json.dumps({"changed": report.changed, **status}))
            return
        out = _console()
        if report.changed:
            out.print(f"[green]Cluster up[/]: {len(plan.nodes)} nodes, "
                      f"{len(report.network)} network changes, {len(report.components)} "
                      f"component processes, {len(report.pods)} pods attached.")
        else:
            out.print("[green]Already up[/]: the kernel holds the whole cluster; nothing changed.")
        _print_status(status)
        out.print(f"Explore: [bold]{_exec_prefix(ctx)} controlplane -- ip route[/]; "
                  "then `cnilab cluster quiz`.")


def _print_plan(plan: Any) -> None:
    from cnilab.cluster import pods
    from cnilab.cluster.cluster import Cluster, cluster_ledger
    from cnilab.cluster.steps import network_ops
    from cnilab.ops import AddNetns
    from cnilab.render import render_commands

    cluster = Cluster.__new__(Cluster)  # only to list the component ops: no kernel, no ledger
    cluster.plan = plan
    ledger = cluster_ledger(plan.prefix)
    pod_ops = [op for node in plan.nodes for pod in plan.pods(node)
               for op in (AddNetns(None, plan.pod_netns(pod)),
                          pods.attach_op(plan, node, pod, ledger))]
    out = _console()
    for title, ops in (("network", network_ops(plan)), ("components", cluster.component_ops()),
                       ("pods (the runtime's CNI ADD)", pod_ops)):
        out.print(f"[dim]# {title}[/]")
        out.print(render_commands(ops, None))


@cluster_app.command()
def down(ctx: typer.Context) -> None:
    """Remove everything `cluster up` made (namespaces, processes, files), nothing else.

    Safe to run twice, and after `up` was interrupted or killed. Example: sudo cnilab cluster down
    """
    from cnilab.cluster.cluster import Cluster, cluster_ledger
    from cnilab.cluster.plan import build_plan
    from cnilab.console import lang_of, warn

    with _guarded(ctx):
        prefix = _opts(ctx).prefix or ""
        ledger = cluster_ledger(prefix)
        # The plan only names things; down undoes what the ledger lists, whatever the plan.
        cluster = Cluster(build_plan(1, 0, prefix), ledger=ledger)
        with cluster.locked():
            skipped = ledger.problems  # read before down clears the ledger
            undone = cluster.down()
        for problem in skipped:
            warn(problem.render(ledger.path, lang_of(ctx)))
        if not undone:
            _console().print("Nothing to remove: no cluster is up here.")
            return
        _console().print(f"[green]Cluster down[/]: {len(undone)} objects removed or undone.")


# -- looking ---------------------------------------------------------------------------------------


@cluster_app.command()
def status(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON (for CI).")] = False,
) -> None:
    """Nodes, interfaces, MACs, pod CIDRs, pods, routes and ports, as the kernel holds them now.

    Example: sudo cnilab cluster status --json
    """
    from cnilab.cluster.status import read_status

    with _guarded(ctx):
        cluster = _existing(ctx)
        with cluster.locked():
            data = read_status(cluster)
        if as_json:
            _console().print_json(json.dumps(data))
        else:
            _print_status(data)


def _print_status(data: dict[str, Any]) -> None:
    from rich.table import Table

    out = _console()
    nodes = Table(title="Nodes", show_edge=False)
    for col in ("node", "iface", "ip", "mac", "pod cidr", "pods"):
        nodes.add_column(col, no_wrap=True)
    for n in data["nodes"]:
        nodes.add_row(n["name"], n["interface"] or "-", n["ip"] or "-", n["mac"] or "-",
                      n["pod_cidr"] or "-", str(len(n["pods"])))
    out.print(nodes)
    for n in data["nodes"]:
        out.print(f"[bold]{n['name']}[/] routes:")
        for r in n["routes"]:
            via = f" via {r['via']}" if r["via"] else ""
            dev = f" dev {r['dev']}" if r["dev"] else ""
            out.print(f"  {r['dst']}{via}{dev}")
        if n["pods"]:
            out.print("  pods: " + ", ".join(f"{p['name']} {p['ip'] or '-'}" for p in n["pods"]))
    ports = Table(title="Listening ports", show_edge=False)
    for col in ("node", "address:port", "process", "established"):
        ports.add_column(col, no_wrap=True)
    for n in data["nodes"]:
        for p in n["ports"]:
            ports.add_row(n["name"], f"{p['address']}:{p['port']}", p["process"] or "-",
                          str(p["established"]))
    out.print(ports)
    gw = data["gateway"]
    out.print(f"Gateway {gw['ip'] or '-'} (namespace {gw['netns']}) NATs to the outside world "
              f"{data['outside']['ip'] or '-'} (namespace {data['outside']['netns']}).")


def _target(ctx: typer.Context, name: str) -> tuple[str, str]:
    """(namespace, hostname) of a node, a pod, `lan` (the gateway) or `world`."""
    from cnilab.kernel import netns_path, require_privileges

    require_privileges()
    plan = _existing(ctx).plan
    choices = {n.name: plan.netns(n) for n in plan.nodes}
    choices |= {p.name: plan.pod_netns(p) for p in plan.all_pods()}
    choices |= {"lan": plan.lan_netns, "world": plan.world_netns}
    if name not in choices:
        nodes = ", ".join(n.name for n in plan.nodes)
        raise CnilabError.of("cluster_no_target", name=name, nodes=nodes)
    if not os.path.exists(netns_path(choices[name])):
        raise CnilabError.of("cluster_netns_gone", netns=choices[name])
    if shutil.which("ip") is None or shutil.which("unshare") is None:
        raise CnilabError.of("cluster_no_ip_unshare")
    return choices[name], name


def _in_node(netns: str, hostname: str, argv: list[str]) -> list[str]:
    # A node is a network namespace only; a private UTS namespace gives the command the node's
    # hostname too, without touching this machine's.
    return ["ip", "netns", "exec", netns, "unshare", "--uts", "--", "sh", "-c",
            'hostname "$0" && exec "$@"', hostname, *argv]


@cluster_app.command("exec", context_settings={"allow_extra_args": True,
                                               "ignore_unknown_options": True})
def exec_(
    ctx: typer.Context,
    node: Annotated[str, typer.Argument(help="A node (controlplane, node01, ...) or a pod.")],
    command: Annotated[Optional[list[str]], typer.Argument(help="The command, after --.")] = None,
) -> None:
    """Run a command inside a node (or a pod), with the node's hostname.

    Example: sudo cnilab cluster exec controlplane -- ss -ltnp
    """
    with _guarded(ctx):
        argv = list(command or []) + list(ctx.args)
        if not argv:
            raise CnilabError.of("cluster_no_command")
        netns, hostname = _target(ctx, node)
        sys.stdout.flush()
        os.execvp("ip", _in_node(netns, hostname, argv))


@cluster_app.command()
def shell(
    ctx: typer.Context,
    node: Annotated[str, typer.Argument(help="A node (controlplane, node01, ...) or a pod.")
                    ] = "controlplane",
) -> None:
    """Open a shell inside a node (or a pod); exit to leave.

    Example: sudo cnilab cluster shell node01   (then: ip route; netstat -natp; exit)
    """
    with _guarded(ctx):
        netns, hostname = _target(ctx, node)
        user_shell = os.environ.get("SHELL") or shutil.which("bash") or "/bin/sh"
        os.environ["PS1"] = f"(cnilab) root@{hostname}:\\w# "
        _console().print(f"Entering {hostname} (namespace {netns}); exit to leave.")
        sys.stdout.flush()
        os.execvp("ip", _in_node(netns, hostname, [user_shell]))


# -- quiz ------------------------------------------------------------------------------------------


@cluster_app.command()
def quiz(
    ctx: typer.Context,
    answers: Annotated[bool, typer.Option(
        "--answers", help="Print the answers, read from the kernel now (for instructors).")
    ] = False,
    answer: Annotated[Optional[list[str]], typer.Option(
        "--answer", help="Answer one question without prompting: ID=VALUE (repeatable).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the grades as JSON.")] = False,
    lang: Annotated[Optional[str], typer.Option(
        "--lang", help="Language: en or ko (default: from LANG).")] = None,
) -> None:
    """Ask the lab's questions and grade the answers against the kernel.

    In a terminal it prompts; otherwise it reads one answer per line from stdin, in order.
    Exit status 0 when every answer is right. Example: sudo cnilab cluster quiz --lang ko
    """
    from cnilab.cluster.quiz import lesson_text

    with _guarded(ctx):
        from cnilab.lessons import check_lang

        lang = check_lang(lang or _opts(ctx).lang)
        asked = _questions(ctx, lang)
        ui = lesson_text(lang)["ui"]
        if answers:
            _print_answers(asked, ui, as_json)
            return
        graded = _grade(asked, ui, answer or [], as_json, _exec_prefix(ctx))
        if not all(g.correct for g in graded):
            raise typer.Exit(1)


def _questions(ctx: typer.Context, lang: str) -> list[Any]:
    from cnilab.cluster.quiz import questions
    from cnilab.cluster.status import read_status

    cluster = _existing(ctx)
    with cluster.locked():
        data = read_status(cluster)
    return questions(data, lang, {"exec": _exec_prefix(ctx), "lan": cluster.plan.lan_netns})


def _print_answers(asked: list[Any], ui: dict[str, str], as_json: bool) -> None:
    from rich.markup import escape

    if as_json:
        _console().print_json(json.dumps(
            [{"id": q.id, "question": q.text, "answer": q.expected, "hint": q.hint}
             for q in asked]))
        return
    out = _console()
    out.print(f"[bold]{escape(ui['answers_title'])}[/]")
    for number, q in enumerate(asked, 1):
        out.print(f"\n{number}. {escape(q.text)} [dim]({q.id})[/]")
        out.print(f"   {escape(ui['answer'])}: [bold green]{escape(q.expected)}[/]")
        out.print(f"   [dim]{escape(ui['find_with'])}: {escape(q.hint)}[/]")


def _grade(asked: list[Any], ui: dict[str, str], options: list[str], as_json: bool,
           exec_prefix: str) -> list[Any]:
    from rich.markup import escape

    from cnilab.cluster.quiz import grade, parse_answer_options

    given = parse_answer_options(options, asked)
    out = _console()
    interactive = not given and sys.stdin.isatty() and not as_json
    lines = iter(sys.stdin.read().splitlines()) if not given and not interactive else iter(())
    if not as_json:
        out.print(escape(ui["intro"].format(exec=exec_prefix)))
    graded = []
    for number, q in enumerate(asked, 1):
        if given and q.id not in given:
            continue
        if not as_json:
            out.print(f"\n[bold]{number}. {escape(q.text)}[/]")
            out.print(f"[dim]{escape(ui['hint'])}: {escape(q.hint)}[/]")
        if given:
            reply: str | None = given[q.id]
        elif interactive:
            reply = out.input(f"{ui['prompt']}: ")
        else:
            reply = next(lines, None)
        g = grade(q, reply)
        graded.append(g)
        if not as_json:
            if g.correct:
                out.print(f"[green]✔ {escape(ui['correct'])}[/] {escape(q.explanation)}")
            elif g.answer is None:
                out.print(f"[yellow]· {escape(ui['skipped'].format(expected=q.expected))}[/]")
            else:
                msg = ui["wrong"].format(expected=q.expected, answer=g.answer)
                out.print(f"[red]✘ {escape(msg)}[/] {escape(q.explanation)}")
    right = sum(g.correct for g in graded)
    if as_json:
        out.print_json(json.dumps({
            "right": right, "total": len(graded),
            "results": [{"id": g.question.id, "answer": g.answer, "expected": g.question.expected,
                         "correct": g.correct} for g in graded]}))
    else:
        out.print("\n" + ui["score"].format(right=right, total=len(graded)))
    return graded

