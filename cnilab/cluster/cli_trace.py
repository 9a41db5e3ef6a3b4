"""`cnilab cluster trace FROM TO`: one real packet through the cluster. Parse, call, print."""

from __future__ import annotations

from typing import Annotated

import typer

from cnilab.cluster.cli_base import cluster_lang, existing
from cnilab.console import JsonOption, LangOption, PortOption, ProtoOption, guarded, lang_of


def trace(
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
    from cnilab.cli_trace import show_trace
    from cnilab.cluster.tracing import cluster_site
    from cnilab.trace.run import trace

    lang = cluster_lang(ctx, lang)
    with guarded(ctx, lang):
        cluster = existing(ctx)
        result = trace(cluster, cluster_site(cluster.plan), source, to, proto, port)
        show_trace(result, lang_of(ctx, lang), as_json)
