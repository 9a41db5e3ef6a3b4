"""`cnilab cni ...`: play the container runtime and watch a CNI plugin work. Parses and prints only.

Heavy imports (the runtime, the kernel, the diagrams) happen inside the commands.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from ipaddress import IPv4Interface
from typing import TYPE_CHECKING, Annotated, Any

import typer

from cnilab.errors import CnilabError

if TYPE_CHECKING:
    from cnilab.cni.runtime import Call, Runtime

HELP = """Play the container runtime: make a pod's namespace, call a CNI plugin, keep its result.

The node is the namespace cnilab-node, so nothing on this machine changes. Kernel commands need
root.

Examples:

  sudo cnilab cni add web               # ADD with the cnilab plugin

  sudo cnilab cni add db --plugin bridge   # the same call to the reference bridge plugin

  sudo cnilab cni check web ; sudo cnilab cni del web ; sudo cnilab cni teardown
"""

cni_app = typer.Typer(help=HELP, no_args_is_help=True, rich_markup_mode=None)


def out(*objects: Any, raw: bool = False) -> None:
    """Print through the main command line's console (Rich loads on first use)."""
    from cnilab.console import out as print_out

    print_out(*objects, raw=raw)


def escape(text: str) -> str:
    """Rich markup-escape."""
    from rich.markup import escape as rich_escape

    return rich_escape(text)

JsonOpt = Annotated[bool, typer.Option("--json", help="Print the plugin's JSON answer only.")]


def _root_opt(ctx: typer.Context, name: str) -> Any:
    return getattr(ctx.find_root().obj, name, None)


def _runtime(ctx: typer.Context) -> Runtime:
    from cnilab.cni.runtime import Runtime

    return Runtime(prefix=_root_opt(ctx, "prefix") or "")


@contextmanager
def _guarded(ctx: typer.Context) -> Iterator[None]:
    """One line and an exit code for every domain error, as everywhere in cnilab."""
    from cnilab.console import guarded

    with guarded(ctx):
        yield


def _section(ctx: typer.Context, number: int) -> None:
    from rich.rule import Rule

    from cnilab import lessons

    try:
        text = lessons.load("cni", lessons.check_lang(_root_opt(ctx, "lang"))).step(number)
    except CnilabError:
        return
    out(Rule(f"[bold]{number}[/] · {escape(text.title)}", align="left"))
    out(f"[dim]{escape(text.what)}[/]")


def _show_call(call: Call) -> None:
    from rich.syntax import Syntax
    from rich.table import Table

    table = Table(show_header=False, show_edge=False, box=None)
    for key, value in call.env.items():
        table.add_row(f"[cyan]{key}[/]", escape(value))
    out(f"[bold]The runtime runs[/] {escape(call.plugin)} [dim](inside the node)[/]"
              " with this environment:")
    out(table)
    out("[bold]and this network configuration on stdin:[/]")
    out(Syntax(json.dumps(call.config, indent=2), "json", theme="ansi_dark",
                     background_color="default"))
    verdict = "[green]exit 0[/]" if call.ok else f"[red]exit {call.code}[/]"
    out(f"[bold]The plugin answered[/] ({verdict}, {call.seconds * 1000:.0f} ms)"
              + (":" if call.stdout.strip() else " with nothing on stdout."))
    if call.stdout.strip():
        out(Syntax(call.stdout.strip(), "json", theme="ansi_dark",
                         background_color="default"))


def _finish(call: Call, as_json: bool) -> None:
    if as_json:
        out(json.dumps(call.answer, indent=2) if call.answer is not None else "null", raw=True)
    if not call.ok:
        raise call.error()


def _one_call(ctx: typer.Context, call_of: Callable[[Runtime], Call], section: int,
              as_json: bool) -> None:
    """Run one plugin call under the runtime's lock; show the lesson section, env and answer."""
    with _guarded(ctx):
        rt = _runtime(ctx)
        with rt.locked():
            call = call_of(rt)
        if not as_json:
            _section(ctx, section)
            _show_call(call)
        _finish(call, as_json)


def _diagram(rt: Runtime) -> None:
    from cnilab.cni.plugin import host_veth_name
    from cnilab.render import render_diagram
    from cnilab.topology import Container, Topology

    pods = []
    for p in rt.pods():
        ips = p.result.get("ips") or [{"address": "0.0.0.0/32"}]
        pods.append(Container(p.netns, IPv4Interface(ips[0]["address"]), p.ifname,
                              host_veth_name(p.config["name"], p.container_id, p.ifname)))
    topo = Topology(tuple(pods), node_name=rt.node, internet_name=f"{rt.node}-none",
                    bridge=str(rt.config("cnilab")["bridge"]))
    out(render_diagram(rt.observe(), topo))


@cni_app.command()
def add(
    ctx: typer.Context,
    pod: Annotated[str, typer.Argument(help="A name for the pod (its namespace: pod-NAME).")],
    plugin: Annotated[str, typer.Option(
        "--plugin", help="cnilab, or bridge: the reference plugin on the same config.")
    ] = "cnilab",
    as_json: JsonOpt = False,
) -> None:
    """Create the pod's namespace and call ADD; show the env, the config, the result, the node.

    Example: sudo cnilab cni add web
    """
    with _guarded(ctx):
        rt = _runtime(ctx)
        with rt.locked():
            _, call = rt.add(pod, plugin)
        if not as_json:
            _section(ctx, 1)
            _show_call(call)
            if call.ok:
                _section(ctx, 4)
                _diagram(rt)
        _finish(call, as_json)


@cni_app.command()
def check(ctx: typer.Context, pod: Annotated[str, typer.Argument(help="The pod.")],
          as_json: JsonOpt = False) -> None:
    """CHECK: the plugin compares the kernel with the cached result (prevResult).

    Example: sudo cnilab cni check web
    """
    _one_call(ctx, lambda rt: rt.check(pod), 5, as_json)


@cni_app.command("del")
def delete(ctx: typer.Context, pod: Annotated[str, typer.Argument(help="The pod.")],
           as_json: JsonOpt = False) -> None:
    """DEL: the plugin removes the pod's network; then the runtime removes its namespace.

    Example: sudo cnilab cni del web
    """
    with _guarded(ctx):
        rt = _runtime(ctx)
        with rt.locked():
            call = rt.delete(pod)
        if not as_json:
            _section(ctx, 7)
            _show_call(call)
            _diagram(rt)
        _finish(call, as_json)


@cni_app.command()
def status(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """STATUS (CNI 1.1.0): can the plugin serve ADDs now?

    Example: sudo cnilab cni status
    """
    _one_call(ctx, lambda rt: rt.status(), 8, as_json)


@cni_app.command()
def gc(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """GC (CNI 1.1.0): the plugin drops what no known pod uses any more.

    Example: sudo cnilab cni gc
    """
    _one_call(ctx, lambda rt: rt.gc(), 8, as_json)


@cni_app.command()
def version(ctx: typer.Context, plugin: Annotated[str, typer.Option(
        "--plugin", help="cnilab or bridge.")] = "cnilab", as_json: JsonOpt = False) -> None:
    """VERSION: which CNI spec versions the plugin speaks.

    Example: sudo cnilab cni version --plugin bridge
    """
    with _guarded(ctx):
        rt = _runtime(ctx)
        if plugin not in ("cnilab", "bridge"):
            raise CnilabError.of("cni_unknown_plugin", plugin=plugin)
        with rt.locked():
            call = rt.version(plugin)
        if not as_json:
            _show_call(call)
        _finish(call, as_json)


@cni_app.command()
def install(folder: Annotated[str, typer.Option(
        "--dir", help="The CNI bin folder, e.g. /opt/cni/bin.")]) -> None:
    """Write the plugin executables cnilab and cnilab-ipam into a CNI bin folder.

    Example: sudo cnilab cni install --dir /opt/cni/bin
    """
    from cnilab.cni.install import install as write

    try:
        paths = write(folder)
    except OSError as e:
        from cnilab.console import console

        console(stderr=True).print(f"[bold red]cnilab: error:[/] cannot write into "
                                   f"{escape(folder)}: {e.strerror}")
        raise typer.Exit(5) from None
    for path in paths:
        out(f"wrote {path}")


@cni_app.command()
def teardown(ctx: typer.Context) -> None:
    """DEL every pod, remove the pods' and the node's namespaces (nothing else).

    Example: sudo cnilab cni teardown
    """
    with _guarded(ctx):
        rt = _runtime(ctx)
        with rt.locked():
            removed = rt.teardown()
        for name in removed:
            out(f"removed namespace {name}")
        if not removed:
            out("Nothing to remove: no CNI lesson is up here.")
