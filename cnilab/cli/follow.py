"""What the live views share (`watch`, `serve` and their cluster forms): which namespaces they
follow, and their loop's start and end (signals wake it; Ctrl-C or SIGTERM ends it, exit 0)."""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Callable, Collection, Iterator
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import typer

    from cnilab.cluster.live import ClusterLive
    from cnilab.kernel.events import NamespaceEvents
    from cnilab.lab.topology import Topology
    from cnilab.watch import LiveLab


def cluster_live(ctx: typer.Context, highlight: float) -> tuple[str, ClusterLive]:
    """The cluster under this invocation's --prefix, as `cluster watch` and `cluster serve` follow
    it (root needed): its prefix, and its live model with nothing read yet."""
    from cnilab.cli.console import prefix_of
    from cnilab.cluster.live import ClusterLive
    from cnilab.kernel import require_privileges

    require_privileges()
    prefix = prefix_of(ctx)
    return prefix, ClusterLive((), highlight_for=highlight, prefix=prefix)


def lab_follows(topo: Topology, every: bool) -> Callable[[str], bool]:
    """Which named namespaces a live view follows: the lab's, any under its --prefix, or all."""
    names, prefix = set(topo.namespaces()), topo.prefix

    def follow(name: str) -> bool:
        return every or name in names or (bool(prefix) and name.startswith(prefix))

    return follow


@contextlib.contextmanager
def wake_on_signals() -> Iterator[int]:
    """A descriptor that wakes the loop on any signal (SIGWINCH: redraw); SIGTERM stops it."""
    r, w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)

    def stop(*_: object) -> None:
        raise KeyboardInterrupt

    old_wake = signal.set_wakeup_fd(w)
    old_term = signal.signal(signal.SIGTERM, stop)
    old_winch = signal.signal(signal.SIGWINCH, lambda *_: None)  # a handler, so it wakes us
    try:
        yield r
    finally:
        signal.set_wakeup_fd(old_wake)
        signal.signal(signal.SIGTERM, old_term)
        signal.signal(signal.SIGWINCH, old_winch)
        os.close(r)
        os.close(w)


def follow_live(live: LiveLab, follow: Callable[[str], bool],
                loop: Callable[[NamespaceEvents], None], own: bool = False,
                nat_in: Collection[str | None] = (),
                listen_in: Collection[str | None] = ()) -> None:
    """Watch the namespaces `follow` accepts, start `live` from them, run `loop` until Ctrl-C
    or SIGTERM (then return: exit 0)."""
    from cnilab.kernel.events import NamespaceEvents

    try:
        with wake_on_signals() as wake, NamespaceEvents(
                follow, own=own, nat_in=nat_in, wake_fd=wake, listen_in=listen_in) as events:
            live.nsid_map = events.nsid_map
            live.start({ns: events.read(ns) for ns in events.start()})
            loop(events)
    except KeyboardInterrupt:
        return  # Ctrl-C is how watching ends: no message, exit 0
