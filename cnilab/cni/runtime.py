"""Playing the container runtime: make the pod's namespace, call a CNI plugin, keep its result.

What containerd does for a pod sandbox, in the open: it creates the network namespace, sets
CNI_COMMAND, CNI_CONTAINERID, CNI_NETNS, CNI_IFNAME, CNI_ARGS and CNI_PATH, writes the network
configuration on the plugin's stdin, reads the result from its stdout and caches it (libcni's
"cni.dev/attachment") for CHECK and DEL. The plugin always runs inside the lesson's node
namespace, never in the machine's own.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cnilab.cni import spec
from cnilab.cni.install import install
from cnilab.cni.spec import CniError
from cnilab.errors import CollisionError, ConfigError, MissingTool
from cnilab.kernel import Kernel, list_netns, netns_path
from cnilab.ledger import RUN_DIR, RUN_DIR_ENV, Ledger
from cnilab.ops import AddNetns, LinkUp

# Where the reference plugins live: /opt/cni/bin (upstream tarballs, kubeadm), /usr/lib/cni
# (Debian, Ubuntu), /usr/libexec/cni (Fedora, RHEL). CNI_PATH, when set, goes first.
REFERENCE_DIRS = ("/opt/cni/bin", "/usr/lib/cni", "/usr/libexec/cni")
NETWORK = "cnilab-pods"
SUBNET = "10.244.1.0/24"
BRIDGE = "cni0"
IFNAME = "eth0"


@dataclass
class Call:
    """One execution of a plugin, exactly as the runtime made it."""

    plugin: str
    command: str
    env: dict[str, str]
    config: dict[str, Any]
    code: int = 0
    stdout: str = ""
    answer: dict[str, Any] | None = None
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        """Exit code 0."""
        return self.code == 0

    def error(self) -> CniError:
        """The plugin's error object as an exception."""
        if isinstance(self.answer, dict) and "code" in self.answer:
            return CniError.from_dict(self.answer)
        return CniError(spec.KERNEL_REFUSED, f"{os.path.basename(self.plugin)} {self.command} "
                        f"failed (exit {self.code}) without an error object: {self.stdout[:200]}")


def reference_dirs(environ: Mapping[str, str] = os.environ) -> list[str]:
    """The folders searched for reference plugins: CNI_PATH's, then the usual places."""
    given = [d for d in environ.get("CNI_PATH", "").split(":") if d]
    return list(dict.fromkeys([*given, *REFERENCE_DIRS]))


def find_reference(name: str, dirs: Sequence[str] | None = None) -> str | None:
    """Where a reference plugin (containernetworking-plugins) is installed, if it is."""
    for folder in reference_dirs() if dirs is None else dirs:
        exe = os.path.join(folder, name)
        if os.access(exe, os.X_OK):
            return exe
    return None


def invoke(exe: str, command: str, config: dict[str, Any], *, node: str, container_id: str = "",
           netns: str = "", ifname: str = "", args: str = "", cni_path: Sequence[str] = (),
           stdin: bytes | None = None) -> Call:
    """Execute a plugin inside the node namespace `node` with the CNI environment and config."""
    env = {"CNI_COMMAND": command, "CNI_CONTAINERID": container_id, "CNI_NETNS": netns,
           "CNI_IFNAME": ifname, "CNI_ARGS": args, "CNI_PATH": ":".join(cni_path)}
    env = {k: v for k, v in env.items() if v}
    data = json.dumps(config).encode() if stdin is None else stdin
    # nsenter --net only: the plugin needs the node's netlink, /proc/sys/net and iptables.
    argv = ["nsenter", f"--net={netns_path(node)}", "--", exe]
    start = time.perf_counter()
    done = subprocess.run(argv, input=data, capture_output=True, check=False,
                          env={"PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
                               **env})
    seconds = time.perf_counter() - start
    out = done.stdout.decode(errors="replace")
    try:
        answer = json.loads(out) if out.strip() else None
    except ValueError:
        answer = None
    return Call(exe, command, env, config, done.returncode, out,
                answer if isinstance(answer, dict) else None, seconds)


def config_version(answer: Call) -> str:
    """The cniVersion to write for a reference plugin, from its VERSION answer: 1.0.0, or its
    newest when it is older (containernetworking-plugins 0.9, as in Debian 11 and Ubuntu 22.04,
    stops at 0.4.0 and refuses a 1.0.0 configuration, as a runtime's admin would find)."""
    known = (answer.answer or {}).get("supportedVersions") or []
    if "1.0.0" in known or not known:
        return "1.0.0"
    return max(known, key=lambda v: tuple(int(x) for x in v.split(".") if x.isdigit()))


def network_config(plugin: str, data_dir: str, version: str | None = None,
                   subnet: str = SUBNET, bridge: str = BRIDGE) -> dict[str, Any]:
    """The lesson's network: one bridge, a /24 for pods, NAT out; for cnilab or the reference.

    The reference plugins (containernetworking-plugins 1.1) speak CNI up to 1.0.0.
    """
    ours = plugin == "cnilab"
    return {
        "cniVersion": version or ("1.1.0" if ours else "1.0.0"),
        "name": NETWORK,
        "type": "cnilab" if ours else "bridge",
        "bridge": bridge,
        "isGateway": True,
        "ipMasq": True,
        "ipam": {"type": "cnilab-ipam" if ours else "host-local", "subnet": subnet,
                 "routes": [{"dst": "0.0.0.0/0"}], "dataDir": data_dir},
    }


@dataclass
class Pod:
    """What the runtime remembers of one pod (libcni's cached attachment, plus the namespace)."""

    name: str
    netns: str
    container_id: str
    ifname: str
    plugin: str
    config: dict[str, Any]
    result: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """As cached on disk."""
        return {"kind": "cni.dev/attachment", "pod": self.name, "netns": self.netns,
                "containerId": self.container_id, "ifName": self.ifname,
                "networkName": self.config["name"], "plugin": self.plugin,
                "config": self.config, "result": self.result}


class Runtime:
    """The lesson's runtime: a node namespace, pods as namespaces, results cached on disk."""

    def __init__(self, prefix: str = "", run_dir: str | None = None,
                 kernel: Kernel | None = None) -> None:
        self.prefix = prefix
        root = Path(run_dir or os.environ.get(RUN_DIR_ENV) or RUN_DIR)
        self.lab_id = f"{prefix}cni".strip("-_.") or "cni"
        self.state = root / "cni" / self.lab_id
        self.bin = self.state / "bin"
        self.data_dir = self.state / "networks"
        self.cache = self.state / "results"
        self.node = f"{prefix}cnilab-node"
        self.kernel = kernel or Kernel()
        self.ledger = Ledger.for_lesson("cni", prefix, str(root))

    # -- plumbing --------------------------------------------------------------------------------

    def locked(self):  # type: ignore[no-untyped-def]
        """Hold this lesson's lock (one runtime at a time, like the eight-step lab)."""
        from cnilab.kernel import require_privileges

        require_privileges()
        return self.ledger.lock()

    def pod_netns(self, pod: str) -> str:
        """The namespace name of a pod."""
        return f"{self.prefix}pod-{pod}"

    def cni_path(self, plugin: str) -> list[str]:
        """CNI_PATH: our plugins, then wherever the reference ones are."""
        return [str(self.bin), *(d for d in reference_dirs() if os.path.isdir(d))]

    def plugin_exe(self, plugin: str) -> str:
        """The main plugin's executable: ours (installed on demand) or the reference bridge."""
        if plugin == "cnilab":
            return str(self.bin / "cnilab")
        exe = find_reference(plugin)
        if exe is None:
            raise MissingTool(f"the reference {plugin!r} plugin is not installed",
                              hint="sudo apt-get install containernetworking-plugins")
        return exe

    def config(self, plugin: str) -> dict[str, Any]:
        """The network configuration the runtime sends to `plugin`."""
        if plugin not in ("cnilab", "bridge"):
            raise ConfigError.of("cni_unknown_plugin", plugin=plugin)
        version = config_version(self.version(plugin)) if plugin == "bridge" else None
        return network_config(plugin, str(self.data_dir), version)

    def _ensure_node(self) -> None:
        install(self.bin)
        if self.node in list_netns():
            if not (self.state / "node").exists():
                raise CollisionError.of("cni_node_taken", netns=self.node)
            return
        self.state.mkdir(parents=True, exist_ok=True)
        (self.state / "node").write_text(self.node, encoding="utf-8")
        AddNetns(None, self.node).apply(self.kernel)
        LinkUp(self.node, "lo").apply(self.kernel)

    def pods(self) -> list[Pod]:
        """Every pod the runtime has attached, from its cache."""
        out = []
        for path in sorted(self.cache.glob("*.json")) if self.cache.is_dir() else []:
            data = json.loads(path.read_text(encoding="utf-8"))
            out.append(Pod(data["pod"], data["netns"], data["containerId"], data["ifName"],
                           data["plugin"], data["config"], data["result"]))
        return out

    def pod(self, name: str) -> Pod:
        """One cached pod, or ConfigError naming the ones there are."""
        for p in self.pods():
            if p.name == name:
                return p
        known = ", ".join(p.name for p in self.pods())
        if not known:
            raise ConfigError.of("cni_no_pod_none", name=name)
        raise ConfigError.of("cni_no_pod", name=name, known=known)

    def _save(self, pod: Pod) -> None:
        self.cache.mkdir(parents=True, exist_ok=True)
        (self.cache / f"{pod.name}.json").write_text(json.dumps(pod.to_dict(), indent=1),
                                                     encoding="utf-8")

    def _call(self, pod: Pod, command: str, config: dict[str, Any]) -> Call:
        return invoke(self.plugin_exe(pod.plugin), command, config, node=self.node,
                      container_id=pod.container_id, netns=netns_path(pod.netns),
                      ifname=pod.ifname, args=f"IgnoreUnknown=1;K8S_POD_NAME={pod.name}",
                      cni_path=self.cni_path(pod.plugin))

    # -- the runtime's verbs -------------------------------------------------------------------

    def add(self, name: str, plugin: str = "cnilab") -> tuple[Pod, Call]:
        """Create the pod's namespace and call ADD; on failure the namespace goes again."""
        if not spec.ID_RE.match(name) or len(name) > 40:
            raise ConfigError.of("cni_bad_pod_name", name=name)
        if any(p.name == name for p in self.pods()):
            raise ConfigError.of("cni_pod_exists", name=name)
        config = self.config(plugin)
        self._ensure_node()
        netns = self.pod_netns(name)
        if netns in list_netns():
            raise CollisionError.of("cni_netns_taken", netns=netns)
        pod = Pod(name, netns, secrets.token_hex(32), IFNAME, plugin, config)
        AddNetns(None, netns).apply(self.kernel)
        try:
            LinkUp(netns, "lo").apply(self.kernel)  # what the loopback plugin would do
            self.kernel.close_netns(netns)
            call = self._call(pod, "ADD", config)
        except BaseException:
            self.kernel.remove_netns(netns)
            raise
        if not call.ok:
            self.kernel.remove_netns(netns)
            return pod, call
        pod.result = call.answer or {}
        self._save(pod)
        return pod, call

    def check(self, name: str) -> Call:
        """CHECK with the cached result as prevResult."""
        pod = self.pod(name)
        return self._call(pod, "CHECK", {**pod.config, "prevResult": pod.result})

    def delete(self, name: str) -> Call:
        """DEL with the cached result, then remove the pod's namespace and its cache entry."""
        pod = self.pod(name)
        call = self._call(pod, "DEL", {**pod.config, "prevResult": pod.result})
        if call.ok:
            self.kernel.remove_netns(pod.netns)
            (self.cache / f"{pod.name}.json").unlink(missing_ok=True)
        return call

    def status(self) -> Call:
        """STATUS (CNI 1.1.0) to our plugin."""
        self._ensure_node()
        return invoke(self.plugin_exe("cnilab"), "STATUS", self.config("cnilab"),
                      node=self.node, cni_path=self.cni_path("cnilab"))

    def gc(self) -> Call:
        """GC (CNI 1.1.0): everything not attached to a pod the runtime knows goes."""
        self._ensure_node()
        keep = [{"containerID": p.container_id, "ifname": p.ifname} for p in self.pods()]
        conf = {**self.config("cnilab"), "cni.dev/valid-attachments": keep}
        return invoke(self.plugin_exe("cnilab"), "GC", conf, node=self.node,
                      cni_path=self.cni_path("cnilab"))

    def version(self, plugin: str = "cnilab") -> Call:
        """VERSION: which spec versions the plugin speaks."""
        self._ensure_node()
        return invoke(self.plugin_exe(plugin), "VERSION", {"cniVersion": "1.0.0"},
                      node=self.node)

    def teardown(self) -> list[str]:
        """DEL every pod, then remove the pods' and the node's namespaces and the state."""
        removed = []
        for pod in self.pods():
            self._call(pod, "DEL", {**pod.config, "prevResult": pod.result})
            self.kernel.remove_netns(pod.netns)
            removed.append(pod.netns)
        self.kernel.close()
        if (self.state / "node").exists():
            self.kernel.remove_netns(self.node)
            removed.append(self.node)
        for sub in (self.cache, self.data_dir / NETWORK):
            if sub.is_dir():
                for f in sub.iterdir():
                    f.unlink()
                sub.rmdir()
        (self.state / "node").unlink(missing_ok=True)
        return removed

    def observe(self) -> Any:
        """The node and every pod, as the kernel shows them (NAT rules of the node)."""
        spaces = [self.node, *(p.netns for p in self.pods())]
        return self.kernel.observe(spaces, nat_in=[self.node])


class Sandbox:
    """A node namespace plus pod namespaces under one prefix, to call any plugin with any
    configuration (tests, benchmarks). close() removes every namespace it made, and only those.
    """

    def __init__(self, prefix: str, bin_dir: str | os.PathLike[str],
                 kernel: Kernel | None = None) -> None:
        if len(prefix) < 4:
            raise ConfigError.of("cni_short_prefix")
        self.prefix, self.bin = prefix, Path(bin_dir)
        self.kernel = kernel or Kernel()
        self.made: list[str] = []
        install(self.bin)
        self.node = self._netns("node")

    def _netns(self, name: str) -> str:
        netns = self.prefix + name
        AddNetns(None, netns).apply(self.kernel)
        self.made.append(netns)
        LinkUp(netns, "lo").apply(self.kernel)
        self.kernel.close_netns(netns)
        return netns

    def pod(self, name: str) -> str:
        """Make a pod namespace; its path, as CNI_NETNS wants it."""
        return netns_path(self._netns(name))

    def exe(self, plugin: str) -> str:
        """Our plugin from the sandbox's bin folder, or an installed reference plugin."""
        ours = self.bin / plugin
        if ours.exists():
            return str(ours)
        exe = find_reference(plugin)
        if exe is None:
            raise MissingTool(f"the reference {plugin!r} plugin is not installed",
                              hint="sudo apt-get install containernetworking-plugins")
        return exe

    @property
    def cni_path(self) -> list[str]:
        """Our bin folder first, then the reference plugins' folders."""
        return [str(self.bin), *(d for d in reference_dirs() if os.path.isdir(d))]

    def call(self, plugin: str, command: str, config: dict[str, Any], container_id: str = "",
             netns: str = "", ifname: str = "eth0", args: str = "",
             stdin: bytes | None = None) -> Call:
        """Run `plugin` inside the node, as a runtime would."""
        return invoke(self.exe(plugin), command, config, node=self.node,
                      container_id=container_id, netns=netns,
                      ifname=ifname if command not in ("VERSION", "STATUS", "GC") else "",
                      args=args, cni_path=self.cni_path, stdin=stdin)

    def close(self) -> None:
        """Remove the sandbox's namespaces (the node's bridge, veths and rules go with it)."""
        self.kernel.close()
        for netns in reversed(self.made):
            self.kernel.remove_netns(netns)
        self.made.clear()
