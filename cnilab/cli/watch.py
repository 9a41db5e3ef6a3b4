"""`cnilab watch`: the lab live, redrawn from the kernel's own events. Parse, loop, print.

The kernel-facing half is cnilab.kernel.events, the model cnilab.watch, the screen render.live.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Collection
from typing import TYPE_CHECKING, Annotated, Any

import typer

from cnilab.cli.console import (
    HighlightOption,
    JsonLinesOption,
    LangOption,
    cluster_lang,
    command_line,
    console,
    guarded,
    lang_of,
    lesson_in,
    out,
    out_json_line,
    topology_of,
)
from cnilab.cli.follow import cluster_live, follow_live, lab_follows
from cnilab.compat import asdict

if TYPE_CHECKING:
    from cnilab.cluster.live import ClusterLive
    from cnilab.kernel.events import NamespaceEvents
    from cnilab.lab.topology import Topology
    from cnilab.watch import Change, LiveLab

watch_app = typer.Typer()


def observed_state(live: LiveLab) -> dict[str, Any]:
    """What is watched now as plain data: the snapshot, with each namespace's ARP and FDB."""
    state = live.current.to_dict()
    for name, seen in live.seen.items():
        space = state["spaces"][name or ""]
        space["neighbours"] = [asdict(n) for n in seen.neighbours]
        space["fdb"] = [asdict(f) for f in seen.fdb]
    return state


def state_line(live: LiveLab, topo: Topology) -> dict[str, Any]:
    """The first JSON line: the lab as it is when watching starts."""
    return {"kind": "state", "lab": topo.lab_id, "in_place": topo.in_place,
            "steps": {str(s.number): s.number in live.done for s in live.steps},
            "state": observed_state(live)}


@watch_app.command()
def watch(
    ctx: typer.Context,
    json_lines: JsonLinesOption = False,
    every: Annotated[bool, typer.Option(
        "--all", help="Follow every namespace under /run/netns, not only the lab's.")] = False,
    highlight: HighlightOption = 3.0,
    lang: LangOption = None,
) -> None:
    """Show the lab live, redrawn at every change in the kernel.

    Whoever makes the change: cnilab, `ip` typed by hand, a student in `cnilab shell`. For a
    live demo: `sudo cnilab watch` on the projector, `sudo cnilab shell host` in a second
    terminal, and type `ip` commands there. Ctrl-C stops.

    \b
    Examples:
      sudo cnilab watch
      sudo cnilab watch --json-lines
    """
    from cnilab.kernel import require_privileges
    from cnilab.lab.steps import build_steps, server_namespaces
    from cnilab.watch import LiveLab

    with guarded(ctx, lang):
        topo, lang = topology_of(ctx), lang_of(ctx, lang)
        require_privileges()
        steps = build_steps(topo)  # 1 to 9, as `status` grades them
        live = LiveLab(steps, highlight_for=highlight)

        def view(events: NamespaceEvents) -> Callable[[], Any]:
            from cnilab.render.live import render_live

            titles = {s.number: lesson_in(ctx, lang).step(s.number).title for s in steps}
            cnilab = command_line(ctx)
            return lambda: render_live(live, topo, titles, lang, live.lit(time.monotonic()),
                                       len(events.watched), cnilab)

        _watch(live, lab_follows(topo, every), lambda: state_line(live, topo),
               None if json_lines else view, own=topo.in_place, nat_in=[topo.node],
               listen_in=server_namespaces(steps))


def _watch(live: LiveLab, follow: Callable[[str], bool], state: Callable[[], dict[str, Any]],
           view: Callable[[NamespaceEvents], Callable[[], Any]] | None, own: bool = False,
           nat_in: Collection[str | None] = (), listen_in: Collection[str | None] = ()) -> None:
    """view None: the `state` line, then a JSON line per change; else the screen `view` draws.
    listen_in: where to read listening sockets (the kernel announces none)."""
    from cnilab.watch import follow as follow_events

    def loop(events: NamespaceEvents) -> None:
        if view is None:
            out_json_line(state())
            follow_events(events, live, print_changes, timed=False)
        else:
            _screen(events, live, view(events))

    try:
        follow_live(live, follow, loop, own=own, nat_in=nat_in, listen_in=listen_in)
    except BrokenPipeError:  # `cnilab watch --json-lines | head`
        os.dup2(os.open(os.devnull, os.O_WRONLY), 1)


def print_changes(changes: list[Change]) -> None:
    """One JSON line per change (`--json-lines`)."""
    for c in changes:
        out_json_line(c.to_dict())


def _screen(events: NamespaceEvents, live: LiveLab, view: Callable[[], Any]) -> None:
    from rich.live import Live

    from cnilab.watch import follow as run

    if not console().is_terminal:  # a log, not a screen: one picture per change
        out(view())
        run(events, live, lambda changes: out(view()) if changes else None, timed=False)
        return
    with Live(view(), console=console(), auto_refresh=False, screen=True,
              redirect_stdout=False, redirect_stderr=False) as screen:
        run(events, live, lambda _: screen.update(view(), refresh=True), timed=True)


def cluster_state_line(live: ClusterLive) -> dict[str, Any]:
    """The first JSON line: the cluster as it is when watching starts, each node's checks."""
    from cnilab.cluster.plan import lab_id

    return {"kind": "state", "cluster": lab_id(live.prefix), "prefix": live.prefix,
            "checks": live.view.checks(), "state": observed_state(live)}


def cluster_watch(
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
    from cnilab.cluster.live import follows

    lang = cluster_lang(ctx, lang)
    with guarded(ctx, lang):
        lang = lang_of(ctx, lang)
        prefix, live = cluster_live(ctx, highlight)

        def view(events: NamespaceEvents) -> Callable[[], Any]:
            from cnilab.render.cluster import render_cluster

            screen = console()
            height = screen.size.height if screen.is_terminal else None
            cnilab = command_line(ctx)
            return lambda: render_cluster(live, lang, live.lit(time.monotonic()),
                                          len(events.watched),
                                          screen.size.height if height else None, cnilab)

        _watch(live, follows(prefix), lambda: cluster_state_line(live),
               None if json_lines else view)
