"""`cnilab cluster ...`: the cluster networking lesson's commands. Parses, calls, prints.

Only Typer is imported at module level: the main CLI imports this sub-app, and `cnilab --help`
must stay fast (Rich, pyroute2 and the domain modules load inside the commands).
Its quiz, trace and watch live in cli/quiz.py, cli/trace.py and cli/watch.py (cli/main.py adds
them here).
"""

from __future__ import annotations

import os
import shutil
import sys
from typing import TYPE_CHECKING, Annotated, Any, Optional

import typer

from cnilab.cli.console import (
    ClusterOpts,
    JsonOption,
    LangOption,
    cluster_lang,
    command_prefix,
    existing,
    guarded,
    lang_of,
    out,
    out_json,
    prefix_of,
)
from cnilab.errors import CnilabError
from cnilab.packages import install_command

if TYPE_CHECKING:
    from cnilab.cluster.plan import ClusterPlan

HELP = """The cluster networking lesson: a Kubernetes cluster's network, for real.

Nodes (controlplane, node01, ...) are network namespaces on one LAN (ens3, 172.17.0.0/16) with a
gateway to an emulated outside world; each node has cni0 with its pod CIDR, pods attached by the
cnilab CNI plugin, routes to the other nodes' pods, and the components listening on their ports.
Nothing changes in this machine's own namespace. Needs root. The lesson's text: `cnilab explain
cluster N`.

\b
Examples:
  sudo cnilab cluster up          # controlplane and node01, 2 pods each
  sudo cnilab cluster exec controlplane -- ip route
  sudo cnilab cluster quiz
  sudo cnilab cluster watch       # live, as the kernel changes (a second terminal types)
  sudo cnilab cluster down
"""

cluster_app = typer.Typer(help=HELP, no_args_is_help=True, rich_markup_mode=None,
                          add_completion=False,
                          context_settings={"help_option_names": ["-h", "--help"]})


@cluster_app.callback()
def cluster_options(
    ctx: typer.Context,
    prefix: Annotated[Optional[str], typer.Option(
        "--prefix", help="Put this before every namespace name (to run several clusters).")
    ] = None,
    lang: LangOption = None,
) -> None:
    """Options of every cluster command."""
    root = ctx.find_root().obj
    ctx.obj = ClusterOpts(prefix if prefix is not None else getattr(root, "prefix", None),
                          lang or getattr(root, "lang", None))


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
    as_json: JsonOption = False,
    lang: LangOption = None,
) -> None:
    """Build the cluster (a second run changes nothing).

    It prints a short summary: finding the addresses, MACs, routes and ports is the exercise
    (`cnilab cluster status` shows them all).

    \b
    Examples:
      sudo cnilab cluster up --nodes 3 --pods-per-node 2
      cnilab cluster up --dry-run   # every command, by lesson section; no root
    """
    from cnilab.cluster.plan import build_plan, parse_network
    from cnilab.i18n import t
    from cnilab.render.prose import Prose

    lang = cluster_lang(ctx, lang)
    with guarded(ctx, lang):
        lang = lang_of(ctx, lang)
        plan = build_plan(nodes, pods_per_node, prefix_of(ctx),
                          parse_network(pod_network, "--pod-network"))
        if dry_run:
            _print_plan(plan, lang)
            return
        from cnilab.cluster.cluster import Cluster
        from cnilab.cluster.status import read_status, summary

        cluster = Cluster(plan)
        with cluster.locked():
            report = cluster.up()
            if as_json:
                out_json({"changed": report.changed, **read_status(cluster)})
                return
            node_names, pods = summary(cluster)
        if report.changed:
            out("[green]" + t("cluster.up", lang, nodes=len(plan.nodes),
                              network=len(report.network), components=len(report.components),
                              pods=len(report.pods)) + "[/]")
        else:
            out("[green]" + t("cluster.already_up", lang) + "[/]")
        out(Prose(t("cluster.summary", lang, names=", ".join(node_names), pods=pods)))
        out(Prose(t("cluster.explore", lang, cmd=command_prefix(ctx))))


def _print_plan(plan: ClusterPlan, lang: str) -> None:
    """Every command of `up`, under the lesson section that explains it."""
    from cnilab.cli.registry import get
    from cnilab.render.commands import render_plan

    lesson = get("cluster")
    assert lesson.steps is not None
    out(*render_plan([(s.number, lesson.section(s.number, lang).title, s.ops)
                      for s in lesson.steps(plan)], None, lang))


@cluster_app.command()
def down(ctx: typer.Context, as_json: JsonOption = False, lang: LangOption = None) -> None:
    """Remove everything `cluster up` made, and nothing else.

    Namespaces, processes, files. Safe to run twice, and after `up` was interrupted or killed.

    \b
    Example:
      sudo cnilab cluster down
    """
    from cnilab.cli.console import warn
    from cnilab.cluster.cluster import Cluster, cluster_ledger
    from cnilab.cluster.plan import build_plan, lab_id
    from cnilab.i18n import t
    from cnilab.render.web.traces import forget_trace

    lang = cluster_lang(ctx, lang)
    with guarded(ctx, lang):
        lang = lang_of(ctx, lang)
        prefix = prefix_of(ctx)
        ledger = cluster_ledger(prefix)
        # The plan only names things; down undoes what the ledger lists, whatever the plan.
        cluster = Cluster(build_plan(1, 0, prefix), ledger=ledger)
        with cluster.locked():
            skipped = ledger.problems  # read before down clears the ledger
            undone = cluster.down()
            forget_trace(lab_id(prefix))
        for problem in skipped:
            warn(problem.render(ledger.path, lang), lang)
        if as_json:
            out_json({"removed": len(undone)})
        elif not undone:
            out(t("cluster.nothing_to_remove", lang))
        else:
            out("[green]" + t("cluster.down", lang, count=len(undone)) + "[/]")


# -- looking ---------------------------------------------------------------------------------------


@cluster_app.command()
def status(ctx: typer.Context, as_json: JsonOption = False, lang: LangOption = None) -> None:
    """Show everything the kernel holds now (every quiz answer).

    Nodes, interfaces, MACs, pod CIDRs, pods, routes and ports: try finding them yourself first.

    \b
    Example:
      sudo cnilab cluster status --json
    """
    from cnilab.cluster.status import read_status

    lang = cluster_lang(ctx, lang)
    with guarded(ctx, lang):
        lang = lang_of(ctx, lang)
        cluster = existing(ctx)
        with cluster.locked():
            data = read_status(cluster)
        if as_json:
            out_json(data)
        else:
            _print_status(data, lang)


def _print_status(data: dict[str, Any], lang: str) -> None:
    from rich.markup import escape
    from rich.table import Table

    from cnilab.i18n import t

    nodes = Table(title=t("cluster.nodes", lang), show_edge=False)
    for col in ("node", "iface", "ip", "mac", "pod cidr", "pods"):
        nodes.add_column(col, no_wrap=True)
    for n in data["nodes"]:
        nodes.add_row(n["name"], n["interface"] or "-", n["ip"] or "-", n["mac"] or "-",
                      n["pod_cidr"] or "-", str(len(n["pods"])))
    out(nodes)
    for n in data["nodes"]:
        out(t("cluster.routes_of", lang, node=f"[bold]{escape(n['name'])}[/]"))
        for r in n["routes"]:
            via = f" via {r['via']}" if r["via"] else ""
            dev = f" dev {r['dev']}" if r["dev"] else ""
            out(f"  {r['dst']}{via}{dev}")
        if n["pods"]:
            out("  " + t("cluster.pods_of", lang, pods=", ".join(
                f"{p['name']} {p['ip'] or '-'}" for p in n["pods"])))
    ports = Table(title=t("cluster.ports", lang), show_edge=False)
    for col in ("node", "address:port", "process", "established"):
        ports.add_column(col, no_wrap=True)
    for n in data["nodes"]:
        for p in n["ports"]:
            ports.add_row(n["name"], f"{p['address']}:{p['port']}", p["process"] or "-",
                          str(p["established"]))
    out(ports)
    gw, world = data["gateway"], data["outside"]
    out(t("cluster.gateway", lang, ip=gw["ip"] or "-", netns=gw["netns"],
          outside=world["ip"] or "-", outside_netns=world["netns"]))


def target(ctx: typer.Context, name: str) -> tuple[str, str, str]:
    """(namespace, hostname, the folder of the cluster's kubectl) of a node, a pod, `lan` (the
    gateway) or `world`."""
    from cnilab.cluster.kubectl import bin_dir
    from cnilab.kernel import netns_path, require_privileges

    require_privileges()
    cluster = existing(ctx)
    plan = cluster.plan
    choices = {n.name: plan.netns(n) for n in plan.nodes}
    choices |= {p.name: plan.pod_netns(p) for p in plan.all_pods()}
    choices |= {"lan": plan.lan_netns, "world": plan.world_netns}
    if name not in choices:
        nodes = ", ".join(n.name for n in plan.nodes)
        raise CnilabError.of("cluster_no_target", name=name, nodes=nodes)
    if not os.path.exists(netns_path(choices[name])):
        raise CnilabError.of("cluster_netns_gone", netns=choices[name])
    if shutil.which("ip") is None or shutil.which("unshare") is None:
        raise CnilabError.of("cluster_no_ip_unshare",
                             install=install_command("iproute2", "util-linux"))
    return choices[name], name, bin_dir(cluster.ledger)


def _in_node(netns: str, hostname: str, bin_dir: str, argv: list[str]) -> list[str]:
    # A node is a network namespace only; a private UTS namespace gives the command the node's
    # hostname too, without touching this machine's. The cluster's kubectl comes first in PATH.
    return ["ip", "netns", "exec", netns, "unshare", "--uts", "--", "sh", "-c",
            'hostname "$0" && PATH="$1:$PATH" && shift && exec "$@"', hostname, bin_dir,
            *argv]


@cluster_app.command("exec", context_settings={"allow_extra_args": True,
                                               "ignore_unknown_options": True})
def exec_(
    ctx: typer.Context,
    node: Annotated[str, typer.Argument(help="A node (controlplane, node01, ...) or a pod.")],
    command: Annotated[Optional[list[str]], typer.Argument(help="The command, after --.")] = None,
) -> None:
    """Run a command inside a node (or a pod), with the node's hostname.

    \b
    Example:
      sudo cnilab cluster exec controlplane -- netstat -natulp
    """
    with guarded(ctx, cluster_lang(ctx, None)):
        argv = list(command or []) + list(ctx.args)
        if not argv:
            raise CnilabError.of("cluster_no_command")
        netns, hostname, bin_dir = target(ctx, node)
        sys.stdout.flush()
        os.execvp("ip", _in_node(netns, hostname, bin_dir, argv))


@cluster_app.command()
def shell(
    ctx: typer.Context,
    node: Annotated[str, typer.Argument(help="A node (controlplane, node01, ...) or a pod.")
                    ] = "controlplane",
    lang: LangOption = None,
) -> None:
    """Open a shell inside a node (or a pod); exit leaves it.

    \b
    Example:
      sudo cnilab cluster shell node01   # then: ip route; netstat -natp; exit
    """
    from cnilab.cli.shell import shell_argv
    from cnilab.i18n import t

    lang = cluster_lang(ctx, lang)
    with guarded(ctx, lang):
        lang = lang_of(ctx, lang)
        netns, hostname, bin_dir = target(ctx, node)
        argv = shell_argv(f"(cnilab:{hostname})")
        out(t("cluster.entering", lang, node=hostname, netns=netns))
        sys.stdout.flush()
        os.execvp("ip", _in_node(netns, hostname, bin_dir, argv))
