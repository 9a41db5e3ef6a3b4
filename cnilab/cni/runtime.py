"""Playing the container runtime: make the pod's namespace, run its network's plugins, keep
the result.

What containerd does for a pod sandbox, in the open: it creates the network namespace, sets
CNI_COMMAND, CNI_CONTAINERID, CNI_NETNS, CNI_IFNAME, CNI_ARGS and CNI_PATH, writes each plugin's
configuration on its stdin, reads the result from its stdout and caches it (libcni's
"cni.dev/attachment") for CHECK and DEL. The plugins always run inside the lesson's node
namespace, never in the machine's own. Everything the runtime makes (its folder, the node, the
pods' namespaces, each attachment) is an op recorded in the ledger before it is made, so
`teardown` finishes the job after a crash at any point.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cnilab.cni import spec
from cnilab.cni.attach import AttachNetwork, StateDir
from cnilab.cni.chain import NetworkList, parse_list, reference_path
from cnilab.cni.exec import Call, find_reference, invoke, traced
from cnilab.cni.install import install
from cnilab.cni.spec import CniError
from cnilab.errors import ConfigError, MissingTool
from cnilab.kernel import Kernel, netns_path
from cnilab.ledger import Ledger, run_dir
from cnilab.ops import AddNetns, LinkUp, Op

PLUGINS = ("cnilab", "bridge")  # --plugin: ours, or the reference bridge on the same network
NETWORK = "cnilab-pods"
SUBNET = "10.244.1.0/24"
BRIDGE = "cni0"
IFNAME = "eth0"
POD_NAME_MAX = 40


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
    """What the runtime knows of one pod: its namespace and, once attached, its attachment."""

    name: str
    netns: str  # a namespace name (the runtime's own) or a path (a process's namespace)
    attach: AttachNetwork | None = None
    result: dict[str, Any] = field(default_factory=dict)

    @property
    def network(self) -> NetworkList | None:
        """The network it is attached to."""
        return self.attach.net() if self.attach else None

    @property
    def container_id(self) -> str:
        """CNI_CONTAINERID of its attachment."""
        return self.attach.container_id if self.attach else ""

    @property
    def ifname(self) -> str:
        """CNI_IFNAME of its attachment."""
        return self.attach.ifname if self.attach else IFNAME


class Runtime:
    """The lesson's runtime: a node namespace, pods as namespaces, results cached on disk."""

    def __init__(self, prefix: str = "", root: str | None = None,
                 kernel: Kernel | None = None) -> None:
        self.prefix = prefix
        base = Path(root) if root else run_dir()
        self.lab_id = f"{prefix}cni".strip("-_.") or "cni"
        self.state = base / "cni" / self.lab_id
        self.bin = self.state / "bin"
        self.data_dir = self.state / "networks"
        self.cache = self.state / "results"
        self.node = f"{prefix}cnilab-node"
        self.kernel = kernel or Kernel()
        self.ledger = Ledger(self.lab_id, str(base))

    def locked(self):  # type: ignore[no-untyped-def]
        """Hold this lesson's lock (one runtime at a time, like the eight-step lab)."""
        from cnilab.kernel import require_privileges

        require_privileges()
        return self.ledger.lock()

    def pod_netns(self, pod: str) -> str:
        """The namespace name of a pod."""
        return f"{self.prefix}pod-{pod}"

    def cni_path(self) -> tuple[str, ...]:
        """CNI_PATH: our plugins, then wherever the reference ones are."""
        return (str(self.bin), *reference_path())

    def network(self, plugin: str = "cnilab") -> NetworkList:
        """The lesson's network, with cnilab or the reference bridge as its plugin."""
        if plugin not in PLUGINS:
            raise ConfigError.of("cni_unknown_plugin", plugin=plugin)
        if plugin != "cnilab" and find_reference(plugin) is None:
            raise MissingTool.of("cni_no_reference", plugin=plugin)
        return parse_list(network_config(plugin, str(self.data_dir)), NETWORK)

    # -- what the runtime made, from the ledger ----------------------------------------------

    def pods(self) -> list[Pod]:
        """Every pod the ledger records: its namespace, and its attachment once made."""
        pods: dict[str, Pod] = {}
        mine = self.prefix + "pod-"
        for op in self.ledger.ops():
            if isinstance(op, AddNetns) and op.name.startswith(mine):
                pods[op.name[len(mine):]] = Pod(op.name[len(mine):], op.name)
            elif isinstance(op, AttachNetwork):
                pod = pods.setdefault(op.pod, Pod(op.pod, op.sandbox))
                pod.attach, pod.result = op, op.result() or {}
        return sorted(pods.values(), key=lambda p: p.name)

    def pod(self, name: str) -> Pod:
        """One pod, or ConfigError naming the ones there are."""
        pods = self.pods()
        for p in pods:
            if p.name == name:
                return p
        if not pods:
            raise ConfigError.of("cni_no_pod_none", name=name)
        raise ConfigError.of("cni_no_pod", name=name, known=", ".join(p.name for p in pods))

    def _ops_of(self, pod: Pod) -> list[Op]:
        return [op for op in self.ledger.ops()
                if (isinstance(op, AddNetns) and op.name == pod.netns) or op.netns == pod.netns
                or (isinstance(op, AttachNetwork) and op.pod == pod.name)]

    # -- the runtime's verbs -----------------------------------------------------------------

    def ensure_node(self) -> None:
        """The runtime's folder, plugins and node namespace (made once, recorded)."""
        wanted: list[Op] = [StateDir(None, str(self.state)), AddNetns(None, self.node),
                            LinkUp(self.node, "lo")]
        snap = self.kernel.observe([self.node])
        self.ledger.check_free(wanted, snap)
        recorded = self.ledger.ops()
        missing = [op for op in wanted if op not in recorded or not op.satisfied(snap)]
        self.ledger.apply(missing, self.kernel)
        install(self.bin)

    def add(self, name: str, plugin: str = "cnilab") -> tuple[Pod, list[Call]]:
        """Create the pod's namespace and ADD it to the network; on failure the namespace goes.

        Returns the pod and the plugin calls made (a failed call last: the pod is not attached).
        """
        if not spec.ID_RE.match(name) or len(name) > POD_NAME_MAX:
            raise ConfigError.of("cni_bad_pod_name", name=name, limit=POD_NAME_MAX)
        if any(p.name == name for p in self.pods()):
            raise ConfigError.of("cni_pod_exists", name=name)
        net = self.network(plugin)
        self.ensure_node()
        netns = self.pod_netns(name)
        sandbox = [AddNetns(None, netns), LinkUp(netns, "lo")]  # lo: what `loopback` does
        self.ledger.check_free(sandbox, self.kernel.observe([]))
        self.ledger.apply(sandbox, self.kernel)
        self.kernel.close_netns(netns)  # an open socket would keep the namespace alive
        cid = secrets.token_hex(32)
        args = f"IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME={name};" \
               f"K8S_POD_INFRA_CONTAINER_ID={cid}"
        attach = AttachNetwork(self.node, name, netns_path(netns), cid, IFNAME, net.to_json(),
                               ":".join(self.cni_path()), args, "{}", str(self.cache))
        with traced() as calls:
            try:
                self.ledger.apply([attach], self.kernel)
            except CniError:
                self.ledger.undo(self.kernel, sandbox)
                if not calls:
                    raise
                return Pod(name, netns), calls
        return self.pod(name), calls

    def check(self, name: str) -> list[Call]:
        """CHECK every plugin of the pod's network, with the cached result as prevResult."""
        pod = self._attached(name)
        assert pod.attach is not None and pod.network is not None
        with traced() as calls:
            try:
                pod.attach.runner().check(pod.network, pod.attach.attachment())
            except CniError:
                if not calls:
                    raise
        return calls

    def delete(self, name: str) -> list[Call]:
        """DEL (every plugin, in reverse), then remove the pod's namespace; all by the ledger."""
        pod = self.pod(name)
        with traced() as calls:
            try:
                self.ledger.undo(self.kernel, self._ops_of(pod))
            except CniError:
                if not calls:
                    raise
        return calls

    def _attached(self, name: str) -> Pod:
        pod = self.pod(name)
        if pod.attach is None or not pod.result:
            raise ConfigError.of("cni_pod_half", name=name)
        return pod

    def _ours(self) -> tuple[str, dict[str, Any]]:
        conf = network_config("cnilab", str(self.data_dir))
        return str(self.bin / "cnilab"), conf

    def status(self) -> list[Call]:
        """STATUS (CNI 1.1.0) to our plugin."""
        self.ensure_node()
        exe, conf = self._ours()
        return [invoke(exe, "STATUS", conf, cni_path=self.cni_path(), node=self.node)]

    def gc(self) -> list[Call]:
        """GC (CNI 1.1.0): everything not attached to a pod the runtime knows goes."""
        self.ensure_node()
        exe, conf = self._ours()
        keep = [{"containerID": p.container_id, "ifname": p.ifname} for p in self.pods()
                if p.attach is not None]
        conf["cni.dev/valid-attachments"] = keep
        return [invoke(exe, "GC", conf, cni_path=self.cni_path(), node=self.node)]

    def version(self, plugin: str = "cnilab") -> list[Call]:
        """VERSION: which spec versions the plugin speaks."""
        self.network(plugin)  # a known plugin, installed
        self.ensure_node()
        exe = str(self.bin / "cnilab") if plugin == "cnilab" else find_reference(plugin)
        assert exe is not None
        return [invoke(exe, "VERSION", {"cniVersion": "1.0.0"}, node=self.node)]

    def teardown(self) -> list[Op]:
        """DEL every pod, remove the pods' and the node's namespaces and the runtime's folder."""
        self.kernel.close()
        try:
            return self.ledger.undo(self.kernel)
        finally:
            self.kernel.close()

    def observe(self) -> Any:
        """The node and every pod, as the kernel shows them (NAT rules of the node)."""
        spaces = [self.node, *(p.netns for p in self.pods())]
        return self.kernel.observe(spaces, nat_in=[self.node])


class Sandbox:
    """A node namespace plus pod namespaces under one prefix, to call any plugin with any
    configuration (tests, benchmarks). Its namespaces are ops in its own ledger (beside
    `bin_dir`); close() tears them down by the one teardown path.
    """

    def __init__(self, prefix: str, bin_dir: str | os.PathLike[str],
                 kernel: Kernel | None = None) -> None:
        if len(prefix) < 4:
            raise ConfigError.of("cni_short_prefix")
        self.prefix, self.bin = prefix, Path(bin_dir)
        self.kernel = kernel or Kernel()
        self.ledger = Ledger(f"{prefix}sandbox", str(self.bin.parent / "ledger"))
        install(self.bin)
        self.node = self._netns("node")

    def _netns(self, name: str) -> str:
        netns = self.prefix + name
        self.ledger.apply([AddNetns(None, netns), LinkUp(netns, "lo")], self.kernel)
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
            raise MissingTool.of("cni_no_reference", plugin=plugin)
        return exe

    @property
    def cni_path(self) -> list[str]:
        """Our bin folder first, then the reference plugins' folders."""
        return list(reference_path([self.bin]))

    def call(self, plugin: str, command: str, config: dict[str, Any], container_id: str = "",
             netns: str = "", ifname: str = "eth0", args: str = "",
             stdin: bytes | None = None, cni_path: Sequence[str] | None = None) -> Call:
        """Run `plugin` inside the node, as a runtime would."""
        return invoke(self.exe(plugin), command, config, container_id=container_id,
                      netns=netns, ifname=ifname, args=args,
                      cni_path=self.cni_path if cni_path is None else cni_path,
                      node=self.node, stdin=stdin)

    def close(self) -> None:
        """Remove the sandbox's namespaces (the node's bridge, veths and rules go with them)."""
        self.kernel.close()
        self.ledger.undo(self.kernel)
