"""`cnilab trace FROM TO`: follow one real packet through the lab. Parse, call, print."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from cnilab.cli.console import (
    JsonOption,
    LangOption,
    PortOption,
    ProtoOption,
    RecordOption,
    cluster_lang,
    existing,
    guarded,
    lab_of,
    lang_of,
    out,
    out_json,
)
from cnilab.cli.pager import paged

if TYPE_CHECKING:
    from cnilab.trace.verdict import TraceResult

trace_app = typer.Typer()


@trace_app.command()
def trace(
    ctx: typer.Context,
    source: Annotated[str, typer.Argument(
        metavar="FROM", help="Who sends: red, blue (any container), host (the node) or internet.")],
    to: Annotated[str, typer.Argument(
        metavar="TO", help="An address of the lab, e.g. 192.168.15.2 or 203.0.113.1.")],
    port: PortOption = None,
    proto: ProtoOption = None,
    as_json: JsonOption = False,
    record: RecordOption = None,
    lang: LangOption = None,
) -> None:
    """Follow one real packet hop by hop, and say where and why it dies.

    Interfaces, routes, the bridge, ARP, netfilter rules, NAT and the reply, as the kernel saw
    them. A `cnilab serve` page shows it too. Exit status 0 when the packet (and its reply) got
    through, 1 when not.

    \b
    Examples:
      sudo cnilab trace red 192.168.15.2
      sudo cnilab trace red 203.0.113.1
      sudo cnilab trace internet 203.0.113.2 --port 8080
    """
    with guarded(ctx, lang, record), paged(ctx):
        lab, lang = lab_of(ctx), lang_of(ctx, lang)
        from cnilab.lab.lab import lab_site
        from cnilab.trace.run import trace

        result = trace(lab, lab_site(lab.topo), source, to, proto, port)
        show_trace(result, lang, as_json, lab.topo.lab_id)


def show_trace(result: TraceResult, lang: str, as_json: bool, lab_id: str) -> None:
    """Leave the trace for `serve`, print it (Rich or JSON); exit 1 when the packet or its
    reply did not get through."""
    from cnilab.render.trace import to_json, verdict_line
    from cnilab.render.web.traces import save_trace

    save_trace(result, lab_id)
    if as_json:
        out_json(to_json(result, lang))
    else:
        from cnilab.render.trace import render_trace

        out(*render_trace(result, lang))
    if not verdict_line(result, lang)[0]:
        raise typer.Exit(1)


def cluster_trace(
    ctx: typer.Context,
    source: Annotated[str, typer.Argument(
        metavar="FROM", help="A node (controlplane, node01, ...), a pod (node01-pod1), lan or "
                             "world.")],
    to: Annotated[str, typer.Argument(
        metavar="TO", help="A pod IP (10.244.1.2), a node IP (172.17.0.40) or the outside host "
                           "(203.0.113.1).")],
    port: PortOption = None,
    proto: ProtoOption = None,
    as_json: JsonOption = False,
    lang: LangOption = None,
) -> None:
    """Follow one real packet through the cluster, hop by hop.

    Pod to pod across nodes, node to node, pod to the outside world: the bridges, the LAN, the
    routes, netfilter and NAT, the reply. Exit status 0 when the packet (and its reply) got
    through, 1 when not.

    \b
    Examples:
      sudo cnilab cluster trace controlplane-pod1 10.244.1.2
      sudo cnilab cluster trace node01 172.17.0.24 --port 6443
    """
    from cnilab.cluster.plan import lab_id
    from cnilab.cluster.tracing import cluster_site
    from cnilab.trace.run import trace

    lang = cluster_lang(ctx, lang)
    with guarded(ctx, lang), paged(ctx):
        cluster = existing(ctx)
        result = trace(cluster, cluster_site(cluster.plan), source, to, proto, port)
        show_trace(result, lang_of(ctx, lang), as_json, lab_id(cluster.plan.prefix))
