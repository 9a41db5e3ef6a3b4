"""Network configuration lists and plugin chains, as libcni runs them for a runtime.

A conflist names a network, its cniVersion and plugins in order. ADD calls each plugin with the
previous one's result as prevResult and caches the last result; CHECK and DEL give the cached
result back as prevResult, DEL in reverse order (portmap's rules go before the address they
point at is released). A plugin that declares a capability (`"capabilities": {"portMappings":
true}`) gets the runtime's argument for it under `runtimeConfig`; the others never see it.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from cnilab.cni import spec
from cnilab.cni.exec import Call, find_plugin, invoke
from cnilab.cni.spec import CniError
from cnilab.compat import field, valueclass
from cnilab.errors import CollisionError, ConfigError
from cnilab.runfiles import PRIVATE_MODE, read_file, read_small, safe_dir, write_atomic

CACHE_KIND = "cni.dev/attachment"
CONF_SUFFIXES = (".conflist", ".conf", ".json")
MAX_CONF_BYTES = 1 << 20


@valueclass(frozen=True)
class NetworkList:
    """A network configuration list: name, cniVersion and the plugins, in order."""

    name: str
    version: str
    plugins: tuple[Mapping[str, Any], ...]
    disable_check: bool = False

    def to_json(self) -> str:
        """The conflist as JSON (what the ledger and the cache keep)."""
        return json.dumps({"cniVersion": self.version, "name": self.name,
                           "disableCheck": self.disable_check, "plugins": list(self.plugins)})

    def plugin_config(self, index: int, prev: Mapping[str, Any] | None = None,
                      capability_args: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """What plugin `index` gets on stdin (libcni's buildOneConfig)."""
        conf = {**self.plugins[index], "name": self.name, "cniVersion": self.version}
        if prev is not None:
            conf["prevResult"] = dict(prev)
        caps = conf.get("capabilities") or {}
        runtime = {k: v for k, v in (capability_args or {}).items() if caps.get(k) is True}
        if runtime:
            conf["runtimeConfig"] = runtime
        return conf

    def main_type(self) -> str:
        """The first plugin's type (the one that makes the interface)."""
        return str(self.plugins[0]["type"])


def parse_list(data: Any, source: str) -> NetworkList:
    """A decoded conflist, or a single plugin's config made into a one-plugin list."""
    if not isinstance(data, dict):
        raise ConfigError.of("cni_conf_bad", path=source, detail="not a JSON object")
    plugins = data.get("plugins")
    if plugins is None and "type" in data:  # a .conf: one plugin (libcni ConfListFromConf)
        plugins = [{k: v for k, v in data.items() if k not in ("name", "cniVersion")}]
    if not isinstance(plugins, list) or not plugins:
        raise ConfigError.of("cni_conf_bad", path=source, detail="no plugins")
    for i, plugin in enumerate(plugins):
        if not isinstance(plugin, dict) or not isinstance(plugin.get("type"), str) \
                or not plugin["type"]:
            raise ConfigError.of("cni_conf_bad", path=source, detail=f"plugins[{i}] has no type")
    name, version = data.get("name"), data.get("cniVersion")
    if not isinstance(name, str) or not spec.ID_RE.match(name):
        raise ConfigError.of("cni_conf_bad", path=source, detail=f"name {name!r} is not valid")
    if not isinstance(version, str) or not version:
        raise ConfigError.of("cni_conf_bad", path=source, detail="no cniVersion")
    disable = data.get("disableCheck", False)
    if not isinstance(disable, bool):
        raise ConfigError.of("cni_conf_bad", path=source, detail="disableCheck is not a bool")
    return NetworkList(name, version, tuple(plugins), disable)


def load(path: str | os.PathLike[str]) -> NetworkList:
    """Read a .conflist (or a single .conf) file; one clear error for whatever is wrong."""
    p = Path(path)
    try:
        raw = read_small(p, MAX_CONF_BYTES)  # a FIFO or /dev/zero: refused, not read
    except IsADirectoryError:
        raise ConfigError.of("cni_conf_bad", path=p, detail="a directory") from None
    except OSError as e:
        raise ConfigError.of("cni_conf_unreadable", path=p, detail=e.strerror) from None
    try:
        data = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise ConfigError.of("cni_conf_bad", path=p, detail="not UTF-8") from None
    except RecursionError:
        raise ConfigError.of("cni_conf_bad", path=p, detail="nested too deeply") from None
    except ValueError as e:
        raise ConfigError.of("cni_conf_bad", path=p, detail=f"not JSON ({e})") from None
    return parse_list(data, str(p))


def find(conf_dir: str | os.PathLike[str], name: str) -> NetworkList:
    """The network called `name` in a config folder, as libcni's LoadConfList looks for it."""
    folder = Path(conf_dir)
    try:
        files = sorted(f for f in folder.iterdir() if f.suffix in CONF_SUFFIXES and f.is_file())
    except OSError as e:
        raise ConfigError.of("cni_conf_unreadable", path=folder, detail=e.strerror) from None
    seen = []
    for suffixes in ((".conflist",), (".conf", ".json")):  # conflists first, as libcni
        for f in (f for f in files if f.suffix in suffixes):
            try:
                net = load(f)
            except ConfigError:
                continue  # libcni skips a file it cannot read while looking for a name
            if net.name == name:
                return net
            seen.append(net.name)
    raise ConfigError.of("cni_no_network", name=name, folder=folder,
                         known=", ".join(dict.fromkeys(seen)) or "-")


@valueclass(frozen=True)
class Attachment:
    """One container's attachment to a network (libcni's RuntimeConf)."""

    container_id: str
    netns: str
    ifname: str = "eth0"
    args: tuple[tuple[str, str], ...] = ()
    capability_args: Mapping[str, Any] = field(default_factory=dict)

    @property
    def cni_args(self) -> str:
        """CNI_ARGS as the runtime sets it: K=V;K=V."""
        return spec.format_cni_args(self.args)


@valueclass(frozen=True)
class Runner:
    """Runs a network's plugins for a runtime: where they are, where they run, the cache."""

    cni_path: tuple[str, ...]
    cache_dir: Path
    node: str | None = None  # the namespace the plugins run in (None: this one)

    def call(self, net: NetworkList, index: int, command: str, att: Attachment,
             prev: Mapping[str, Any] | None) -> Call:
        """One plugin of the chain, executed as the spec says."""
        conf = net.plugin_config(index, prev, att.capability_args)
        exe = find_plugin(str(conf["type"]), self.cni_path)
        return invoke(exe, command, conf, container_id=att.container_id, netns=att.netns,
                      ifname=att.ifname, args=att.cni_args, cni_path=self.cni_path,
                      node=self.node)

    def add(self, net: NetworkList, att: Attachment) -> dict[str, Any]:
        """ADD every plugin in order, each given the previous result; cache the last one.

        On a failure the whole chain gets DEL (what a runtime does after a failed ADD), so a
        failed ADD leaves nothing behind; then the plugin's error is raised.
        """
        result: dict[str, Any] | None = None
        for i in range(len(net.plugins)):
            call = self.call(net, i, "ADD", att, result)
            if not call.ok or not isinstance(call.answer, dict):
                error = call.error() if not call.ok else CniError(
                    spec.DECODE_FAILURE, f"{net.plugins[i]['type']} ADD printed no result")
                with contextlib.suppress(CniError):  # the ADD's error is the one to report
                    self.delete(net, att)
                raise error
            result = call.answer
        assert result is not None
        self.write_cache(net, att, result)
        return result

    def delete(self, net: NetworkList, att: Attachment) -> None:
        """DEL every plugin in reverse order with the cached result; then drop the cache."""
        prev = self.cached_result(net, att)
        for i in reversed(range(len(net.plugins))):
            call = self.call(net, i, "DEL", att, prev)
            if not call.ok:
                raise call.error()
        self.cache_path(net, att).unlink(missing_ok=True)

    def check(self, net: NetworkList, att: Attachment) -> None:
        """CHECK every plugin in order with the cached result (which it needs)."""
        if net.disable_check:
            return
        prev = self.cached_result(net, att)
        if prev is None:
            raise CniError(spec.INVALID_CONFIG, f"no cached result for {att.container_id} on "
                           f"{net.name}: CHECK needs one")
        for i in range(len(net.plugins)):
            call = self.call(net, i, "CHECK", att, prev)
            if not call.ok:
                raise call.error()

    # -- the cache (libcni's /var/lib/cni/results) ---------------------------------------------

    def cache_path(self, net: NetworkList, att: Attachment) -> Path:
        """NETWORK-CONTAINERID-IFNAME in the cache folder, as libcni names it."""
        return self.cache_dir / f"{net.name}-{att.container_id}-{att.ifname}"

    def cached_result(self, net: NetworkList, att: Attachment) -> dict[str, Any] | None:
        """The result cached by ADD, if any (a runtime killed before caching has none)."""
        entry = read_cache(self.cache_path(net, att))
        result = entry.get("result") if entry else None
        return result if isinstance(result, dict) else None

    def write_cache(self, net: NetworkList, att: Attachment, result: Mapping[str, Any]) -> None:
        """Keep the result for CHECK and DEL (root-only file, written whole)."""
        entry = {"kind": CACHE_KIND, "containerId": att.container_id, "ifName": att.ifname,
                 "networkName": net.name, "netns": att.netns, "cniArgs": [list(a) for a in
                                                                        att.args],
                 "capabilityArgs": dict(att.capability_args), "config": json.loads(
                     net.to_json()), "result": dict(result)}
        safe_dir(self.cache_dir, 0o700)
        write_atomic(self.cache_path(net, att), json.dumps(entry, indent=1).encode(),
                     PRIVATE_MODE)


def read_cache(path: Path) -> dict[str, Any] | None:
    """A cache entry, or None when there is none (or it is not ours to read: runfiles)."""
    try:
        raw = read_file(path)
        data = json.loads(raw) if raw is not None and len(raw) <= MAX_CONF_BYTES else None
    except (CollisionError, ValueError, RecursionError):
        return None
    return data if isinstance(data, dict) and data.get("kind") == CACHE_KIND else None


def cni_path(*folders: str | os.PathLike[str]) -> tuple[str, ...]:
    """CNI_PATH from folders that exist, in order, without repeats."""
    return tuple(dict.fromkeys(str(f) for f in folders if os.path.isdir(f)))


def reference_path(extra: Sequence[str | os.PathLike[str]] = ()) -> tuple[str, ...]:
    """`extra` folders first, then wherever the reference plugins are installed."""
    from cnilab.cni.exec import reference_dirs

    return cni_path(*extra, *reference_dirs())
