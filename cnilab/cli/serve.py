"""`cnilab serve` and `cnilab cluster serve`: the lab live in a browser. Parse, serve, print.

The model is the watch's (cnilab.watch, fed by the kernel's events), the scene render/web/scene.py
and cluster_scene.py, the server render/web/server.py (the standard library's HTTP server and
Server-Sent Events), the last trace render/web/traces.py.
"""

from __future__ import annotations

import errno
import time
from collections.abc import Callable, Collection
from typing import TYPE_CHECKING, Annotated, Any

import typer

from cnilab.cli.console import (
    HighlightOption,
    LangOption,
    cluster_lang,
    guarded,
    lang_of,
    out,
    topology_of,
    warn,
)
from cnilab.cli.follow import cluster_live, follow_live, lab_follows
from cnilab.errors import CnilabError, ConfigError

if TYPE_CHECKING:
    from cnilab.kernel.events import NamespaceEvents
    from cnilab.ops import Key
    from cnilab.render.web.server import PageServer
    from cnilab.watch import LiveLab

serve_app = typer.Typer()

ServePortOption = Annotated[int, typer.Option(
    "--port", min=0, max=65535, help="The TCP port to serve on (0: any free one).")]
ListenOption = Annotated[str, typer.Option(
    "--listen", help="The address to listen on. The default, 127.0.0.1, is this machine only; "
                     "anyone who can reach another address sees the lab.")]
Scene = Callable[["Collection[Key]"], dict[str, Any]]


@serve_app.command()
def serve(
    ctx: typer.Context,
    port: ServePortOption = 8765,
    listen: ListenOption = "127.0.0.1",
    highlight: HighlightOption = 3.0,
    lang: LangOption = None,
) -> None:
    """Draw the lab live in a browser (a projector, a second window).

    Namespaces as boxes, veth pairs as cables, the bridge as a switch with its ports, addresses,
    routes, NAT, ARP and FDB entries, the steps done; what changes is highlighted, whoever makes
    the change. The last `cnilab trace` shows along the cables. Read-only; Ctrl-C stops.

    \b
    Examples:
      sudo cnilab serve
      sudo cnilab serve --port 9000 --lang ko
    """
    from cnilab import lessons
    from cnilab.i18n import LANGS
    from cnilab.kernel import require_privileges
    from cnilab.lab import LAST_STEP
    from cnilab.lab.steps import build_steps
    from cnilab.render.web.scene import lab_scene
    from cnilab.watch import LiveLab

    with guarded(ctx, lang):
        topo, lang = topology_of(ctx), lang_of(ctx, lang)
        require_privileges()
        steps = build_steps(topo)[:LAST_STEP]
        live = LiveLab(steps, highlight_for=highlight)
        # Step titles only: the lesson's text as shipped (no command in it to rewrite).
        titles = {lg: {s.number: lessons.load("eight-steps", lg).step(s.number).title
                       for s in steps} for lg in LANGS}

        def scene(lit: Collection[Key]) -> dict[str, Any]:
            return {lg: lab_scene(live, topo, titles[lg], lg, lit) for lg in LANGS}

        _serve(live, lab_follows(topo, False), scene, topo.lab_id, listen, port, lang,
               own=topo.in_place, nat_in=[topo.node])


def cluster_serve(
    ctx: typer.Context,
    port: ServePortOption = 8765,
    listen: ListenOption = "127.0.0.1",
    highlight: HighlightOption = 3.0,
    lang: LangOption = None,
) -> None:
    """Draw the cluster live in a browser (a projector, a second window).

    A column per node with its pods above it (squares when there are many), cni0 as a switch,
    the LAN gateway and the outside world, each node's checks; what changes is highlighted. The
    last `cnilab cluster trace` shows along the cables. Read-only; Ctrl-C stops.

    \b
    Examples:
      sudo cnilab cluster serve
      sudo cnilab cluster --prefix demo- serve --port 9000
    """
    from cnilab.cluster.live import follows
    from cnilab.cluster.plan import lab_id
    from cnilab.i18n import LANGS
    from cnilab.render.web.cluster_scene import cluster_scene

    lang = cluster_lang(ctx, lang)
    with guarded(ctx, lang):
        lang = lang_of(ctx, lang)
        prefix, live = cluster_live(ctx, highlight)

        def scene(lit: Collection[Key]) -> dict[str, Any]:
            return {lg: cluster_scene(live, lg, lit) for lg in LANGS}

        _serve(live, follows(prefix), scene, lab_id(prefix), listen, port, lang)


def open_server(listen: str, port: int, lang: str) -> PageServer:
    """The server bound to `listen`:`port`, or a one-line error (a bad address, a busy port)."""
    import ipaddress

    from cnilab.render.web.server import Hub, PageServer

    try:
        ipaddress.ip_address(listen)
    except ValueError:
        raise ConfigError.of("serve_bad_listen", listen=listen) from None
    try:
        return PageServer(listen, port, Hub(), lang)
    except OSError as e:
        if e.errno == errno.EADDRINUSE:
            raise CnilabError.of("serve_port_busy", port=port) from None
        raise CnilabError.of("serve_cannot_listen", listen=listen, port=port,
                             reason=e.strerror or str(e)) from None


def _serve(live: LiveLab, follow: Callable[[str], bool], scene: Scene, lab_id: str, listen: str,
           port: int, lang: str, own: bool = False, nat_in: Collection[str | None] = ()) -> None:
    """Serve the page until Ctrl-C: the scene again at every change and when a highlight fades,
    the trace whenever one lands."""
    from cnilab.i18n import LANGS, t
    from cnilab.render.web.server import loopback
    from cnilab.render.web.traces import TraceWatch, trace_path
    from cnilab.watch import follow as follow_events

    server = open_server(listen, port, lang)
    hub = server.hub

    def trace(data: dict[str, Any] | None) -> None:
        hub.publish("trace", {lg: (data or {}).get(lg) for lg in LANGS})

    watch = TraceWatch(trace_path(lab_id), trace)

    def show(_: object) -> None:
        hub.publish("scene", scene(live.lit(time.monotonic())))

    def loop(events: NamespaceEvents) -> None:
        show(None)
        server.start()
        watch.start()
        out(t("serve.url", lang, url=server.url), raw=True)  # a URL cut in two opens nothing
        if not loopback(listen):
            warn(t("serve.exposed", lang, listen=listen))
        follow_events(events, live, show, timed=True)

    try:
        follow_live(live, follow, loop, own=own, nat_in=nat_in)
    finally:
        watch.stop()
        server.stop()
