"""What every `cnilab cluster` command shares: its options, the cluster that is up, hints."""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer

from cnilab.errors import CnilabError

if TYPE_CHECKING:
    from cnilab.cluster.cluster import Cluster


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

    prefix = cluster_opts(ctx).prefix or ""
    ledger = cluster_ledger(prefix)
    plan = recorded_plan(ledger, prefix)
    if plan is None:
        if prefix:
            raise CnilabError.of("cluster_none_up_prefix", prefix=prefix)
        raise CnilabError.of("cluster_none_up")
    return Cluster(plan, ledger=ledger)


def command_prefix(ctx: typer.Context) -> str:
    """`cnilab cluster` with this invocation's --prefix, to print in hints."""
    prefix = cluster_opts(ctx).prefix
    return "cnilab cluster" + (f" --prefix {prefix}" if prefix else "")
