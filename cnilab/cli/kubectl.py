"""`cnilab cluster kubectl`: the cluster's kubectl stand-in (`kubectl get nodes -o wide`).

Inside a node (`cluster exec`, `cluster shell`) the command `kubectl` runs this: the cluster's
up puts a script called kubectl first in the nodes' PATH. It prints as kubectl prints, columns
apart by three spaces, from the cluster's real state read now.
"""

from __future__ import annotations

import sys
from typing import Annotated, Optional

import typer

from cnilab.cli.console import cluster_lang, existing, guarded
from cnilab.errors import CnilabError


def kubectl(
    ctx: typer.Context,
    args: Annotated[Optional[list[str]], typer.Argument(
        help="kubectl's arguments: get nodes [-o wide] [NAME...].")] = None,
) -> None:
    """The cluster's kubectl stand-in: kubectl get nodes, from the kernel.

    Inside a node (`cluster exec`, `cluster shell`) `kubectl` runs it: `get nodes [-o wide]`.

    \b
    Examples:
      sudo cnilab cluster exec controlplane -- kubectl get node -o wide
      sudo cnilab cluster kubectl get nodes
    """
    from cnilab.cluster import kubectl as standin
    from cnilab.cluster.status import read_status
    from cnilab.render.cluster import kubectl_table

    lang = cluster_lang(ctx, None)
    with guarded(ctx, lang):
        given = list(args or []) + list(ctx.args)
        asked = standin.wants_nodes(given)
        if asked is None:
            raise CnilabError.of("cluster_kubectl_unknown", args=" ".join(given))
        _, wide, names = asked
        cluster = existing(ctx)
        with cluster.locked():
            status = read_status(cluster)
        for name in standin.missing(status, names):
            raise CnilabError.of("cluster_kubectl_no_node", name=name)
        header = standin.COLUMNS + (standin.WIDE if wide else ())
        sys.stdout.write(kubectl_table(header, standin.node_rows(status, wide, names)))
