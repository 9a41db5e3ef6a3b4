"""`cnilab cni ...`: play the container runtime and watch CNI plugins work. Parses and prints only.

Heavy imports (the runtime, the kernel, the diagrams, Rich) happen inside the commands. Every
sentence comes from lessons/ui in the user's language; --json prints one JSON object per command.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Optional

import typer

from cnilab.cli.console import (
    JsonOption,
    LangOption,
    guarded,
    lab_commands,
    lang_of,
    out,
    out_json_line,
    prefix_of,
    warn,
)
from cnilab.cli.pager import paged

if TYPE_CHECKING:
    from cnilab.cni.chain import NetworkList
    from cnilab.cni.exec import Call
    from cnilab.cni.network import PortMapping
    from cnilab.cni.runtime import Added, Runtime

HELP = """Play the container runtime: make a pod's namespace, run a network's CNI plugins, keep
the result.

The node is the namespace cnilab-cni-node (with cnilab-cni-world outside it), so nothing on this
machine changes. Kernel commands need root.

\b
Examples:
  sudo cnilab cni add web --port 8080:80     # ADD: cnilab, then tuning and portmap
  sudo cnilab cni add db --plugin bridge     # the reference bridge plugin instead
  sudo cnilab cni add api --conflist my.conflist
  sudo cnilab cni none box ; sudo cnilab cni attach --pid PID box
  sudo cnilab cni check web ; sudo cnilab cni del web ; sudo cnilab cni teardown
"""

cni_app = typer.Typer(help=HELP, no_args_is_help=True, rich_markup_mode=None)


class Plugin(str, Enum):
    """The main plugin of the lesson's network."""

    cnilab = "cnilab"
    bridge = "bridge"


PluginOption = Annotated[Plugin, typer.Option(
    "--plugin", help="cnilab, or bridge: the reference plugin on the same network.")]
ConflistOption = Annotated[Optional[Path], typer.Option(
    "--conflist", help="Use this network configuration list (.conflist or .conf) instead.")]
NetworkOption = Annotated[Optional[str], typer.Option(
    "--network", help="Use the network of this name from --conf-dir instead.")]
ConfDirOption = Annotated[Optional[Path], typer.Option(
    "--conf-dir", help="Where --network looks (default: the lesson's own net.d).")]
PortOption = Annotated[Optional[list[str]], typer.Option(
    "--port", help="Publish HOST:POD[/tcp|udp] (portmap); a web server answers on POD.")]
AttachPortOption = Annotated[Optional[list[str]], typer.Option(
    "--port", help="Publish HOST:POD[/tcp|udp] (portmap) to the container's own server on POD "
    "(attach starts none).")]
MacOption = Annotated[Optional[str], typer.Option(
    "--mac", help="The pod's MAC (CNI_ARGS MAC= and runtimeConfig.mac).")]
IpOption = Annotated[Optional[str], typer.Option(
    "--ip", help="The pod's address (CNI_ARGS IP= and runtimeConfig.ips).")]


def _runtime(ctx: typer.Context) -> Runtime:
    from cnilab.cni.runtime import Runtime

    return Runtime(prefix=prefix_of(ctx))


def _network(rt: Runtime, plugin: Plugin, conflist: Path | None, network: str | None,
             conf_dir: Path | None) -> NetworkList:
    from cnilab.cni import chain

    if conflist is not None:
        return chain.load(conflist)
    if network is not None:
        return chain.find(conf_dir or rt.conf_dir, network)
    return rt.network(plugin.value)


def _ports(texts: list[str] | None) -> list[PortMapping]:
    from cnilab.cni.network import parse_port

    return [parse_port(p) for p in texts or ()]


def _finish(calls: list[Call], as_json: bool, lang: str, added: Added | None = None,
            **extra: Any) -> None:
    """Print the JSON report if asked; raise the first failed call's error (exit 1), or say
    that a proof failed (exit 9)."""
    from cnilab.errors import ProofFailed
    from cnilab.render.cni import report_json

    if as_json:
        out(report_json(calls, lang, added, **extra), raw=True)
    failed = next((c for c in calls if not c.ok), None)
    if failed is not None:
        raise failed.error()
    if added is not None and not all(p.ok for p in added.proofs):
        raise ProofFailed.of("cni_proof", name=added.pod.name)


def _calls(ctx: typer.Context, lang: str | None, as_json: bool, number: int | None,
           run: Callable[[Runtime], list[Call]], diagram: bool = False, **extra: Any) -> None:
    """Run plugin calls under the runtime's lock; show the lesson section, env and answers (and
    the node's diagram after them)."""
    from cnilab.render import cni as view

    with guarded(ctx, lang):
        lang = lang_of(ctx, lang)
        rt = _runtime(ctx)
        with rt.locked():
            calls = run(rt)
        if not as_json:
            out(*view.calls_lines(calls, lang, number))
            if diagram:
                out(view.node_diagram(rt, lang))
        _finish(calls, as_json, lang, **extra)


def _added(ctx: typer.Context, lang: str | None, as_json: bool,
           run: Callable[[Runtime], Added]) -> None:
    """Run an ADD (add or attach) and show the calls, the diagram and the proofs."""
    from cnilab.render import cni as view

    with guarded(ctx, lang), paged(ctx):
        lang = lang_of(ctx, lang)
        rt = _runtime(ctx)
        with rt.locked():
            added = run(rt)
        if not as_json:
            out(*view.calls_lines(added.calls, lang, 1))
            if added.pod.attach is not None:
                out(*view.section_lines(4, lang))
                out(view.node_diagram(rt, lang))
                out(*view.proof_lines(added.proofs, lang))
        _finish(added.calls, as_json, lang, added)


@cni_app.command()
def add(
    ctx: typer.Context,
    pod: Annotated[str, typer.Argument(help="A name for the pod (its namespace: pod-NAME).")],
    plugin: PluginOption = Plugin.cnilab,
    conflist: ConflistOption = None,
    network: NetworkOption = None,
    conf_dir: ConfDirOption = None,
    port: PortOption = None,
    mac: MacOption = None,
    ip: IpOption = None,
    as_json: JsonOption = False,
    lang: LangOption = None,
) -> None:
    """Make a pod's namespace and ADD it to the network.

    Each plugin of the network runs in turn, as libcni runs a conflist.

    \b
    Example:
      sudo cnilab cni add web --port 8080:80
    """
    def run(rt: Runtime) -> Added:
        net = _network(rt, plugin, conflist, network, conf_dir)
        return rt.add(pod, net, ports=_ports(port), mac=mac, ip=ip)

    _added(ctx, lang, as_json, run)


@cni_app.command()
def none(ctx: typer.Context,
         pod: Annotated[str, typer.Argument(help="A name for the container.")],
         as_json: JsonOption = False, lang: LangOption = None) -> None:
    """Start a stand-in container with no network.

    What `docker run --network none` gives: a process in a namespace of its own, lo only.

    \b
    Example:
      sudo cnilab cni none box
    """
    from cnilab.render import cni as view

    with guarded(ctx, lang):
        lang = lang_of(ctx, lang)
        rt = _runtime(ctx)
        with rt.locked():
            made = rt.standin(pod)
        pid = made.netns.split("/")[2]
        if as_json:
            out_json_line({"ok": True, "pod": pod, "pid": int(pid), "netns": made.netns})
            return
        out(*view.section_lines(10, lang))
        out(view.ui("cni_standin", lang, pod=pod, pid=pid, netns=made.netns))
        from cnilab.render.commands import Listing

        # A command to copy: folded between words with ` \` in a terminal, never cut.
        attach = f"sudo cnilab cni attach --pid {pid} {pod}"
        out(Listing([lab_commands(ctx, "cni").command(attach)]))


@cni_app.command()
def attach(
    ctx: typer.Context,
    pod: Annotated[Optional[str], typer.Argument(
        help="A name for it (default: the container's, pidPID, or the namespace file's).")] = None,
    pid: Annotated[Optional[int], typer.Option(
        "--pid", help="The process whose network namespace gets the network.")] = None,
    netns: Annotated[Optional[Path], typer.Option(
        "--netns", help="Or the namespace as a path, e.g. /run/netns/x.")] = None,
    container: Annotated[Optional[str], typer.Option(
        "--container", help="Or a running Docker or Podman container, by name or ID (its PID "
        "from docker inspect, else podman inspect).")] = None,
    plugin: PluginOption = Plugin.cnilab,
    conflist: ConflistOption = None,
    network: NetworkOption = None,
    conf_dir: ConfDirOption = None,
    port: AttachPortOption = None,
    mac: MacOption = None,
    ip: IpOption = None,
    as_json: JsonOption = False,
    lang: LangOption = None,
) -> None:
    """ADD the network to a container that already runs.

    Its namespace already exists: a container's, started with no network (docker run
    --network none). Nothing is started in it: a published --port reaches whatever the
    container itself serves.

    \b
    Example:
      sudo cnilab cni attach --container box
      sudo cnilab cni attach --pid $(docker inspect -f '{{.State.Pid}}' box) box
    """
    from cnilab.cni.engines import attach_target

    with guarded(ctx, lang):
        path, name = attach_target(pod, pid, None if netns is None else str(netns), container)

    def run(rt: Runtime) -> Added:
        net = _network(rt, plugin, conflist, network, conf_dir)
        return rt.attach(name, path, net, ports=_ports(port), mac=mac, ip=ip)

    _added(ctx, lang, as_json, run)


@cni_app.command()
def detach(ctx: typer.Context, pod: Annotated[str, typer.Argument(help="The pod.")],
           as_json: JsonOption = False, lang: LangOption = None) -> None:
    """DEL the network from an attached container.

    The container keeps running, with no network.

    \b
    Example:
      sudo cnilab cni detach box
    """
    _calls(ctx, lang, as_json, 7, lambda rt: rt.detach(pod), pod=pod)


@cni_app.command()
def check(ctx: typer.Context, pod: Annotated[str, typer.Argument(help="The pod.")],
          as_json: JsonOption = False, lang: LangOption = None) -> None:
    """CHECK: each plugin compares the kernel with the cached result.

    The cached result goes to the plugins as prevResult.

    \b
    Example:
      sudo cnilab cni check web
    """
    _calls(ctx, lang, as_json, 5, lambda rt: rt.check(pod), pod=pod)


@cni_app.command("del")
def delete(ctx: typer.Context, pod: Annotated[str, typer.Argument(help="The pod.")],
           as_json: JsonOption = False, lang: LangOption = None) -> None:
    """DEL: each plugin in reverse order, then the namespace goes.

    The runtime removes the pod's namespace after the plugins' DEL.

    \b
    Example:
      sudo cnilab cni del web
    """
    _calls(ctx, lang, as_json, 7, lambda rt: rt.delete(pod), diagram=True, pod=pod)


@cni_app.command()
def status(ctx: typer.Context, as_json: JsonOption = False, lang: LangOption = None) -> None:
    """STATUS (CNI 1.1.0): can the plugin serve ADDs now?

    \b
    Example:
      sudo cnilab cni status
    """
    _calls(ctx, lang, as_json, 8, lambda rt: rt.status())


@cni_app.command()
def gc(ctx: typer.Context, as_json: JsonOption = False, lang: LangOption = None) -> None:
    """GC (CNI 1.1.0): drop what no known pod uses any more.

    The runtime lists the attachments it knows; the plugin removes the rest.

    \b
    Example:
      sudo cnilab cni gc
    """
    _calls(ctx, lang, as_json, 8, lambda rt: rt.gc())


@cni_app.command()
def version(ctx: typer.Context, plugin: PluginOption = Plugin.cnilab,
            as_json: JsonOption = False, lang: LangOption = None) -> None:
    """VERSION: which CNI spec versions the plugin speaks.

    \b
    Example:
      sudo cnilab cni version --plugin bridge
    """
    _calls(ctx, lang, as_json, None, lambda rt: rt.version(plugin.value))


@cni_app.command()
def install(ctx: typer.Context, folder: Annotated[str, typer.Option(
        "--dir", help="The CNI bin folder, e.g. /opt/cni/bin.")],
        as_json: JsonOption = False, lang: LangOption = None) -> None:
    """Write cnilab and cnilab-ipam into a CNI bin folder.

    Where a runtime looks for plugins (containerd's bin_dir, e.g. /opt/cni/bin).

    \b
    Example:
      sudo cnilab cni install --dir /opt/cni/bin
    """
    from cnilab.cni.install import install as write
    from cnilab.render.cni import ui

    with guarded(ctx, lang):
        lang = lang_of(ctx, lang)
        paths = write(folder)
        if as_json:
            out_json_line({"ok": True, "wrote": [str(p) for p in paths]})
            return
        for path in paths:
            out(ui("cni_wrote", lang, path=path))


@cni_app.command()
def teardown(ctx: typer.Context, as_json: JsonOption = False, lang: LangOption = None) -> None:
    """DEL every pod, remove everything the lesson made (nothing else).

    \b
    Example:
      sudo cnilab cni teardown
    """
    from rich.markup import escape
    from rich.padding import Padding

    from cnilab.i18n import t
    from cnilab.render.cni import ui
    from cnilab.render.commands import Listing

    with guarded(ctx, lang):
        lang = lang_of(ctx, lang)
        rt = _runtime(ctx)
        with rt.locked():
            skipped = rt.ledger.problems  # read before teardown clears the ledger
            undone = rt.teardown()
        for problem in skipped:
            warn(problem.render(rt.ledger.path, lang))
        what = [op.undo_command(rt.node) or op.command(rt.node) for op in undone]
        if as_json:
            out_json_line({"ok": True, "removed": what})
            return
        for op, line in zip(undone, what):  # (no strict=: Python 3.9)
            out(f"{ui('removed', lang)}: {escape(line)}")
            if op.equivalent:  # cnitool never ran: the runtime called the plugins with DEL
                out(Padding(Listing([f"# {t('ui.' + op.equivalent, lang)}"]), (0, 0, 0, 2)))
        out(ui("cni_teardown_done", lang, count=len(what)) if what
            else ui("cni_nothing_to_remove", lang))
