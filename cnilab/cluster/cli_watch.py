"""`cnilab cluster watch`: the cluster live, on the engine of `cnilab watch` (cnilab.cli_watch).

The model is cluster/live.py, the screen cluster/live_view.py; events, the loop, the JSON lines
and Ctrl-C are the lab's own.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import typer

from cnilab.cluster.cli_base import cluster_lang, cluster_opts
from cnilab.console import HighlightOption, JsonLinesOption, LangOption, console, guarded, lang_of

if TYPE_CHECKING:
    from cnilab.cluster.live import ClusterLive
    from cnilab.kernel.events import NamespaceEvents


def state_line(live: ClusterLive) -> dict[str, Any]:
    """The first JSON line: the cluster as it is when watching starts, each node's checks."""
    from cnilab.cli_watch import observed_state
    from cnilab.cluster.plan import lab_id

    return {"kind": "state", "cluster": lab_id(live.prefix), "prefix": live.prefix,
            "checks": live.view.checks(), "state": observed_state(live)}


def watch(
    ctx: typer.Context,
    json_lines: JsonLinesOption = False,
    highlight: HighlightOption = 3.0,
    lang: LangOption = None,
) -> None:
    """Show the cluster live, redrawn at every kernel change.

    Every node, pod, the LAN gateway and the outside world, whoever makes the change: `cluster
    up` / `down`, `ip` typed by hand, `cnilab cluster shell`. Per node: ens3, cni0, ip_forward,
    the default route, a route to every other node's pod CIDR, pods ready. For a live demo:
    `sudo cnilab cluster watch` on the projector, `sudo cnilab cluster shell node01` in a second
    terminal. Ctrl-C stops.

    \b
    Examples:
      sudo cnilab cluster watch
      sudo cnilab cluster --prefix demo- watch --json-lines
    """
    from cnilab.cli_watch import follow_live
    from cnilab.cluster.live import ClusterLive, follows
    from cnilab.kernel import require_privileges

    lang = cluster_lang(ctx, lang)
    with guarded(ctx, lang):
        lang = lang_of(ctx, lang)
        require_privileges()
        prefix = cluster_opts(ctx).prefix or ""
        live = ClusterLive((), highlight_for=highlight, prefix=prefix)

        def view(events: NamespaceEvents) -> Callable[[], Any]:
            from cnilab.cluster.live_view import render_cluster

            screen = console()
            height = screen.size.height if screen.is_terminal else None
            return lambda: render_cluster(live, lang, live.lit(time.monotonic()),
                                          len(events.watched),
                                          screen.size.height if height else None)

        follow_live(live, follows(prefix), lambda: state_line(live),
                    None if json_lines else view)
