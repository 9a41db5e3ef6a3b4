"""Playing the container runtime: make the pod's namespace, run its network's plugins, keep
the result.

What containerd does for a pod sandbox, in the open: it creates the network namespace, sets
CNI_COMMAND, CNI_CONTAINERID, CNI_NETNS, CNI_IFNAME, CNI_ARGS and CNI_PATH, runs the plugins of
the network's conflist in order (each given the previous result) and caches the result
(libcni's "cni.dev/attachment") for CHECK and DEL. The plugins always run inside the lesson's
node namespace, never in the machine's own. Everything the runtime makes (its folder, the node
and its outside world, the pods' namespaces, each attachment, a pod's server) is an op recorded
in the ledger before it is made, so `teardown` finishes the job after a crash at any point.
"""

from __future__ import annotations

import contextlib
import json
import secrets
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from cnilab.cni import network, request, spec
from cnilab.cni.attach import AttachNetwork, StateDir
from cnilab.cni.bridge import PrependRoute, paths_share_netns
from cnilab.cni.chain import NetworkList, reference_path
from cnilab.cni.exec import (
    Call,
    config_version,
    find_reference,
    invoke,
    require_reference,
    traced,
)
from cnilab.cni.install import install
from cnilab.cni.network import IFNAME, PortMapping
from cnilab.cni.spec import CniError
from cnilab.cni.standin import StartStandIn, running_pid
from cnilab.compat import field, valueclass
from cnilab.errors import ConfigError
from cnilab.kernel import Kernel, netns_path
from cnilab.lab.proofs import Proof, http_get
from cnilab.ledger import Ledger, run_dir
from cnilab.names import Identity
from cnilab.ops import OPS, AddNetns, LinkUp, Op, StartServer, registry_of
from cnilab.owner import Owner
from cnilab.runfiles import PRIVATE_MODE, safe_dir, write_atomic

# The ops the runtime's ledger reads back: the engine's and the runtime's own.
LESSON = "cni"  # the ledger's lesson name
CNI_OPS = {**OPS, **registry_of(StateDir, AttachNetwork, StartStandIn, PrependRoute)}
PLUGINS = ("cnilab", "bridge")  # --plugin: ours, or the reference bridge on the same network
POD_NAME_MAX = 40


@valueclass
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


@valueclass
class Added:
    """What `add` or `attach` did: the pod, the plugin calls in order, the proofs of its ports."""

    pod: Pod
    calls: list[Call]
    proofs: list[Proof] = field(default_factory=list)


class Runtime(Owner):
    """The lesson's runtime: a node namespace, pods as namespaces, results cached on disk."""

    def __init__(self, prefix: str = "", root: str | None = None,
                 kernel: Kernel | None = None) -> None:
        self.prefix = prefix
        base = Path(root) if root else run_dir()
        self.identity = Identity(LESSON, prefix)  # checks the prefix before anything is made
        self.lab_id = self.identity.lab_id
        self.state = base / "cni" / self.lab_id
        self.bin = self.state / "bin"
        self.conf_dir = self.state / "net.d"
        self.data_dir = self.state / "networks"
        self.cache = self.state / "results"
        # Named for this lesson: the cluster's outside world is <prefix>cnilab-world.
        self.node = self.identity.netns("cnilab-cni-node")
        self.world = self.identity.netns("cnilab-cni-world")
        self.kernel = kernel or Kernel(self.state)  # the pods' servers keep PID files there
        self.ledger = Ledger.of(self.identity, str(base), ops=CNI_OPS)
        self._networks: dict[str, NetworkList] = {}  # by main plugin, once asked

    def pod_netns(self, pod: str) -> str:
        """The namespace name of a pod."""
        return f"{self.prefix}pod-{pod}"

    def cni_path(self) -> tuple[str, ...]:
        """CNI_PATH: our plugins, then wherever the reference ones are."""
        return (str(self.bin), *reference_path())

    def network(self, plugin: str = "cnilab") -> NetworkList:
        """The lesson's network, with cnilab or the reference bridge as its main plugin.

        The reference plugins are asked VERSION once per network and runtime, as libcni asks
        when it loads a conflist, not again for every use.
        """
        if plugin not in PLUGINS:
            raise ConfigError.of("cni_unknown_plugin", plugin=plugin)
        if plugin not in self._networks:
            version = network.VERSION
            ref = find_reference("tuning") if plugin == "cnilab" else require_reference(plugin)
            if ref is not None:  # which spec versions the installed reference plugins speak
                version = config_version(invoke(ref, "VERSION",
                                                {"cniVersion": network.VERSION}))
            self._networks[plugin] = network.lesson_network(plugin, str(self.data_dir),
                                                            version)
        return self._networks[plugin]

    # -- what the runtime made, from the ledger ----------------------------------------------

    def pods(self) -> list[Pod]:
        """Every pod the ledger records: its namespace, and its attachment once made."""
        pods: dict[str, Pod] = {}
        mine = self.prefix + "pod-"
        for op in self.ledger.ops():
            if isinstance(op, AddNetns) and op.name.startswith(mine):
                pods[op.name[len(mine):]] = Pod(op.name[len(mine):], op.name)
            elif isinstance(op, StartStandIn):
                pid = running_pid(op.pidfile, op.name)
                pods[op.name] = Pod(op.name, f"/proc/{pid or 0}/ns/net")
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
                or (isinstance(op, (AttachNetwork, StartStandIn))
                    and getattr(op, "pod", getattr(op, "name", None)) == pod.name)]

    # -- the runtime's verbs -----------------------------------------------------------------

    def ensure_node(self) -> None:
        """The runtime's folder, plugins and config, its node and the node's outside world."""
        wanted: list[Op] = [StateDir(None, str(self.state)), AddNetns(None, self.node),
                            LinkUp(self.node, "lo"), *network.world_ops(self.node, self.world,
                                                                self.identity.mark)]
        snap = self.kernel.observe([self.node, self.world])
        self.ledger.check_free(wanted, snap)
        recorded = self.ledger.ops()
        missing = [op for op in wanted if op not in recorded or not op.satisfied(snap)]
        self.ledger.apply(missing, self.kernel)
        self.kernel.close_netns(self.world)
        install(self.bin)
        safe_dir(self.conf_dir, 0o700)
        conflist = json.loads(self.network().to_json())
        write_atomic(self.conf_dir / f"10-{network.NETWORK}.conflist",
                     json.dumps(conflist, indent=2).encode(), PRIVATE_MODE)

    def _check_new(self, name: str) -> None:
        if not spec.ID_RE.match(name) or len(name) > POD_NAME_MAX:
            raise ConfigError.of("cni_bad_pod_name", name=name, limit=POD_NAME_MAX)
        if any(p.name == name for p in self.pods()):
            raise ConfigError.of("cni_pod_exists", name=name)

    def add(self, name: str, net: NetworkList | None = None, plugin: str = "cnilab",
            ports: Sequence[PortMapping] = (), mac: str | None = None,
            ip: str | None = None) -> Added:
        """Create the pod's namespace, ADD it to the network (the conflist's plugins in order);
        with ports, start a web server in the pod and prove the node publishes it.
        On failure the namespace goes again; the failed call is the last-but-rollback one."""
        self._check_new(name)
        net = net or self.network(plugin)
        _check_ports(net, ports)
        request.check_mac(mac)
        request.check_ip(net, ip)
        self.ensure_node()
        netns = self.pod_netns(name)
        sandbox = [AddNetns(None, netns), LinkUp(netns, "lo")]  # lo: what `loopback` does
        self.ledger.check_free(sandbox, self.kernel.observe([]))
        self.ledger.apply(sandbox, self.kernel)
        self.kernel.close_netns(netns)  # an open socket would keep the namespace alive
        added = self._attach(name, netns_path(netns), net, ports, mac, ip)
        if not added.pod.attach:
            self.ledger.undo(self.kernel, sandbox)
            return Added(Pod(name, netns), added.calls)
        servers = [StartServer(netns, p, f"hello from pod {name}")
                   for p in dict.fromkeys(m.pod for m in ports if m.protocol == "tcp")]
        self.ledger.apply(servers, self.kernel)
        added.proofs = [self.prove_port(name, m) for m in ports if m.protocol == "tcp"]
        return added

    def standin(self, name: str) -> Pod:
        """Start a container with no network (`docker run --network none`): a process alone in
        a new network namespace, owned by cnilab; attach it next with its PID."""
        self._check_new(name)
        self.ensure_node()
        op = StartStandIn(None, name, str(self.state / f"standin-{name}.pid"))
        self.ledger.apply([op], self.kernel)
        return self.pod(name)

    def attach(self, name: str, path: str, net: NetworkList | None = None,
               plugin: str = "cnilab", ports: Sequence[PortMapping] = (),
               mac: str | None = None, ip: str | None = None) -> Added:
        """ADD a namespace someone else made (a process's: /proc/PID/ns/net) to the network, as
        Kubernetes does with its runtime's sandbox. A stand-in of ours keeps its name."""
        existing = next((p for p in self.pods() if p.name == name), None)
        ours = existing is not None and existing.attach is None and existing.netns == path
        if not ours:
            self._check_new(name)
        request.check_netns(path)
        if paths_share_netns(path, "/proc/self/ns/net"):  # never a pod's route for this machine
            raise ConfigError.of("cni_sandbox_is_host", path=path)
        attached = {p.name: [p.attach.sandbox_id, p.attach.identify(p.attach.sandbox)]
                    for p in self.pods() if p.attach is not None}
        request.check_free(path, attached)
        net = net or self.network(plugin)
        _check_ports(net, ports)
        request.check_mac(mac)
        request.check_ip(net, ip)
        self.ensure_node()
        return self._attach(name, path, net, ports, mac, ip)

    def _attach(self, name: str, path: str, net: NetworkList, ports: Sequence[PortMapping],
                mac: str | None, ip: str | None) -> Added:
        cid = secrets.token_hex(32)
        args = [("IgnoreUnknown", "1"), ("K8S_POD_NAMESPACE", "default"), ("K8S_POD_NAME", name),
                ("K8S_POD_INFRA_CONTAINER_ID", cid)]
        args += [("MAC", mac)] if mac else []
        args += [("IP", ip)] if ip else []
        caps: dict[str, Any] = {"portMappings": [m.to_dict() for m in ports]} if ports else {}
        caps.update({"mac": mac} if mac else {})
        caps.update({"ips": [ip]} if ip else {})
        attach = AttachNetwork(self.node, name, path, cid, IFNAME, net.to_json(),
                               ":".join(self.cni_path()), spec.format_cni_args(args),
                               json.dumps(caps), str(self.cache),
                               AttachNetwork.identify(path))
        with plugin_calls() as calls:
            self.ledger.apply([attach], self.kernel)
            return Added(self.pod(name), calls)
        return Added(Pod(name, path), calls)  # a plugin failed: its call shows why

    def prove_port(self, name: str, port: PortMapping) -> Proof:
        """A real HTTP request from the node's outside world to the node's published port."""
        node_ip = network.NODE_UPLINK.split("/")[0]
        body, why_not = http_get(self.world, node_ip, port.host)
        ok = body is not None and f"pod {name}" in body
        seen: tuple[str, dict[str, Any]] = ("", {"text": body if body is not None else why_not})
        return Proof("http_forwarded", {"node": node_ip, "port": port.host, "who": name}, ok,
                     seen, f"ip netns exec {self.world} curl -s http://{node_ip}:{port.host}/")

    def check(self, name: str) -> list[Call]:
        """CHECK every plugin of the pod's network, with the cached result as prevResult."""
        pod = self.pod(name)
        if pod.attach is None or not pod.result:
            raise ConfigError.of("cni_pod_half", name=name)
        with plugin_calls() as calls:
            pod.attach.runner().check(pod.attach.net(), pod.attach.attachment())
        return calls

    def delete(self, name: str) -> list[Call]:
        """DEL (every plugin, in reverse), then what else the pod had; all by the ledger."""
        pod = self.pod(name)
        with plugin_calls() as calls:
            self.ledger.undo(self.kernel, self._ops_of(pod))
        return calls

    def detach(self, name: str) -> list[Call]:
        """DEL the pod's network (every plugin, in reverse); its namespace or process stays,
        as `docker network disconnect` leaves the container running."""
        pod = self.pod(name)
        if pod.attach is None:
            raise ConfigError.of("cni_pod_half", name=name)
        with plugin_calls() as calls:
            self.ledger.undo(self.kernel, [op for op in self._ops_of(pod)
                                           if isinstance(op, (AttachNetwork, StartServer))])
        return calls

    def _ours(self) -> tuple[str, dict[str, Any]]:
        # STATUS and GC are CNI 1.1.0 verbs: the cnilab plugin alone, told 1.1.0.
        conf = network.network_config("cnilab", str(self.data_dir), "1.1.0")
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
        return [invoke(exe, "VERSION", {"cniVersion": network.VERSION}, node=self.node)]

    def teardown(self) -> list[Op]:
        """DEL every pod, remove the pods', the node's and the world's namespaces and the
        runtime's folder: everything the ledger records, by the one teardown path."""
        self.kernel.close()
        try:
            return self.ledger.undo(self.kernel)
        finally:
            self.kernel.close()

    def observe(self) -> Any:
        """The node and every pod, as the kernel shows them (NAT rules of the node)."""
        spaces = [self.node, *(p.netns for p in self.pods())]
        return self.kernel.observe(spaces, nat_in=[self.node])


@contextlib.contextmanager
def plugin_calls() -> Iterator[list[Call]]:
    """The plugin calls made inside the block, to show; a plugin's error is in its call's
    answer, so it is not raised again (an error before any plugin ran is)."""
    with traced() as calls:
        try:
            yield calls
        except CniError:
            if not calls:
                raise


def _check_ports(net: NetworkList, ports: Sequence[PortMapping]) -> None:
    """Refuse --port before anything is made when no plugin of the chain publishes ports (the
    lesson chains portmap only when the reference plugins speak CNI 1.0.0: not 0.9's)."""
    if ports and not any(p.get("type") == "portmap" for p in net.plugins):
        raise ConfigError.of("cni_no_portmap", network=net.name,
                             plugins=", ".join(str(p.get("type")) for p in net.plugins))
