"""`cnilab cni ...`: play the container runtime and watch a CNI plugin work. Parses and prints only.

Heavy imports (the runtime, the kernel, the diagrams, Rich) happen inside the commands. Every
sentence comes from lessons/ui in the user's language; --json prints one JSON object per command.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from enum import Enum
from ipaddress import IPv4Interface
from typing import TYPE_CHECKING, Annotated, Any

import typer

from cnilab.console import JsonOption, LangOption, guarded, lang_of, opts, out
from cnilab.errors import CnilabError

if TYPE_CHECKING:
    from cnilab.cni.exec import Call
    from cnilab.cni.runtime import Pod, Runtime

HELP = """Play the container runtime: make a pod's namespace, call a CNI plugin, keep its result.

The node is the namespace cnilab-node, so nothing on this machine changes. Kernel commands need
root.

\b
Examples:
  sudo cnilab cni add web                  # ADD with the cnilab plugin
  sudo cnilab cni add db --plugin bridge   # the same call to the reference bridge plugin
  sudo cnilab cni check web
  sudo cnilab cni del web
  sudo cnilab cni teardown
"""

cni_app = typer.Typer(help=HELP, no_args_is_help=True, rich_markup_mode=None)


class Plugin(str, Enum):
    """The main plugin of the lesson's network."""

    cnilab = "cnilab"
    bridge = "bridge"


PluginOption = Annotated[Plugin, typer.Option(
    "--plugin", help="cnilab, or bridge: the reference plugin on the same network.")]


def _runtime(ctx: typer.Context) -> Runtime:
    from cnilab.cni.runtime import Runtime

    return Runtime(prefix=opts(ctx).prefix or "")


def _t(key: str, lang: str, **params: Any) -> str:
    from cnilab.i18n import t

    return t(f"ui.{key}", lang, **params)


def _escape(text: str) -> str:
    from rich.markup import escape

    return escape(text)


def _section(number: int, lang: str) -> None:
    from rich.rule import Rule

    from cnilab import lessons

    try:
        text = lessons.load("cni", lang).step(number)
    except CnilabError:
        return
    out(Rule(f"[bold]{number}[/] · {_escape(text.title)}", align="left"))
    out(f"[dim]{_escape(text.what)}[/]")


def _show_call(call: Call, lang: str) -> None:
    from rich.syntax import Syntax
    from rich.table import Table

    table = Table(show_header=False, show_edge=False, box=None)
    for key, value in call.env.items():
        table.add_row(f"[cyan]{key}[/]", _escape(value))
    out(f"[bold]{_escape(_t('cni_runs', lang, plugin=call.plugin, command=call.command))}[/]")
    out(table)
    out(f"[bold]{_escape(_t('cni_stdin', lang))}[/]")
    out(Syntax(json.dumps(call.config, indent=2, ensure_ascii=False), "json",
               theme="ansi_dark", background_color="default"))
    verdict = _t("cni_exit", lang, code=call.code)
    key = "cni_answered" if call.stdout.strip() else "cni_answered_nothing"
    colour = "green" if call.ok else "red"
    said = _t(key, lang, verdict=verdict, ms=round(call.seconds * 1000))
    out(f"[bold {colour}]{_escape(said)}[/]")
    if call.stdout.strip():
        out(Syntax(call.stdout.strip(), "json", theme="ansi_dark", background_color="default"))


def call_json(call: Call) -> dict[str, Any]:
    """One plugin call as --json shows it."""
    return {"plugin": call.plugin, "command": call.command, "env": call.env,
            "config": call.config, "exit": call.code, "answer": call.answer,
            "ms": round(call.seconds * 1000, 1)}


def _finish(calls: list[Call], as_json: bool, **extra: Any) -> None:
    """Print the JSON report if asked; raise the first failed call's error (exit 1)."""
    failed = next((c for c in calls if not c.ok), None)
    if as_json:
        report = {"ok": failed is None, **extra, "calls": [call_json(c) for c in calls]}
        out(json.dumps(report, ensure_ascii=False), raw=True)
    if failed is not None:
        raise failed.error()


def _calls(ctx: typer.Context, lang: str | None, as_json: bool, section: int | None,
           run: Callable[[Runtime], list[Call]], **extra: Any) -> None:
    """Run plugin calls under the runtime's lock; show the lesson section, env and answers."""
    with guarded(ctx, lang):
        lang = lang_of(ctx, lang)
        rt = _runtime(ctx)
        with rt.locked():
            calls = run(rt)
        if not as_json:
            if section is not None:
                _section(section, lang)
            for call in calls:
                _show_call(call, lang)
        _finish(calls, as_json, **extra)


def _diagram(rt: Runtime, lang: str) -> None:
    from cnilab.cni.bridge import host_veth_name
    from cnilab.render import render_diagram
    from cnilab.topology import Container, Topology

    pods = []
    for p in rt.pods():
        if p.network is None:
            continue
        ips = p.result.get("ips") or [{"address": "0.0.0.0/32"}]
        pods.append(Container(p.netns, IPv4Interface(ips[0]["address"]), p.ifname,
                              host_veth_name(p.network.name, p.container_id, p.ifname)))
    topo = Topology(tuple(pods), node_name=rt.node, internet_name=f"{rt.node}-none",
                    bridge=str(rt.network().plugins[0]["bridge"]))
    out(render_diagram(rt.observe(), topo, lang=lang))


def _pod_json(pod: Pod) -> dict[str, Any]:
    return {"pod": pod.name, "netns": pod.netns, "containerId": pod.container_id,
            "result": pod.result or None}


@cni_app.command()
def add(
    ctx: typer.Context,
    pod: Annotated[str, typer.Argument(help="A name for the pod (its namespace: pod-NAME).")],
    plugin: PluginOption = Plugin.cnilab,
    as_json: JsonOption = False,
    lang: LangOption = None,
) -> None:
    """Create the pod's namespace and call ADD; show the env, the config, the result, the node.

    \b
    Example:
      sudo cnilab cni add web
    """
    with guarded(ctx, lang):
        lang = lang_of(ctx, lang)
        rt = _runtime(ctx)
        with rt.locked():
            made, calls = rt.add(pod, plugin.value)
        if not as_json:
            _section(1, lang)
            for call in calls:
                _show_call(call, lang)
            if all(c.ok for c in calls):
                _section(4, lang)
                _diagram(rt, lang)
        _finish(calls, as_json, **_pod_json(made))


@cni_app.command()
def check(ctx: typer.Context, pod: Annotated[str, typer.Argument(help="The pod.")],
          as_json: JsonOption = False, lang: LangOption = None) -> None:
    """CHECK: the plugin compares the kernel with the cached result (prevResult).

    \b
    Example:
      sudo cnilab cni check web
    """
    _calls(ctx, lang, as_json, 5, lambda rt: rt.check(pod), pod=pod)


@cni_app.command("del")
def delete(ctx: typer.Context, pod: Annotated[str, typer.Argument(help="The pod.")],
           as_json: JsonOption = False, lang: LangOption = None) -> None:
    """DEL: the plugin removes the pod's network; then the runtime removes its namespace.

    \b
    Example:
      sudo cnilab cni del web
    """
    with guarded(ctx, lang):
        lang = lang_of(ctx, lang)
        rt = _runtime(ctx)
        with rt.locked():
            calls = rt.delete(pod)
        if not as_json:
            _section(7, lang)
            for call in calls:
                _show_call(call, lang)
            _diagram(rt, lang)
        _finish(calls, as_json, pod=pod)


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
    """GC (CNI 1.1.0): the plugin drops what no known pod uses any more.

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
    """Write the plugin executables cnilab and cnilab-ipam into a CNI bin folder.

    \b
    Example:
      sudo cnilab cni install --dir /opt/cni/bin
    """
    from cnilab.cni.install import install as write
    from cnilab.errors import PermissionDenied

    with guarded(ctx, lang):
        lang = lang_of(ctx, lang)
        try:
            paths = write(folder)
        except OSError as e:
            raise PermissionDenied.of("cni_install_failed", folder=folder,
                                      reason=e.strerror or str(e)) from None
        if as_json:
            out(json.dumps({"ok": True, "wrote": [str(p) for p in paths]}, ensure_ascii=False),
                raw=True)
            return
        for path in paths:
            out(_escape(_t("cni_wrote", lang, path=path)))


@cni_app.command()
def teardown(ctx: typer.Context, as_json: JsonOption = False, lang: LangOption = None) -> None:
    """DEL every pod, remove the pods' and the node's namespaces (nothing else).

    \b
    Example:
      sudo cnilab cni teardown
    """
    with guarded(ctx, lang):
        lang = lang_of(ctx, lang)
        rt = _runtime(ctx)
        with rt.locked():
            undone = rt.teardown()
        what = [op.undo_command(rt.node) or op.command(rt.node) for op in undone]
        if as_json:
            out(json.dumps({"ok": True, "removed": what}, ensure_ascii=False), raw=True)
            return
        for line in what:
            out(f"{_escape(_t('removed', lang))}: {_escape(line)}")
        out(_t("cni_teardown_done", lang, count=len(what)) if what
            else _t("cni_nothing_to_remove", lang))
