"""The bridge plugin's configuration and names: what the network config asks for, the node's
veth name and the NAT rules of a pod (how they are tagged, made and found again).

No kernel calls at import; the rule helpers take the Kernel they act through.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Mapping, Sequence
from ipaddress import IPv4Interface
from typing import TYPE_CHECKING, Any

from cnilab.cni import spec
from cnilab.cni.exec import delegate, report_delegation
from cnilab.cni.spec import CniError
from cnilab.compat import sha256, valueclass
from cnilab.errors import KernelError
from cnilab.ops import AddRule, KernelApi, Op
from cnilab.state import Snapshot

if TYPE_CHECKING:
    from cnilab.kernel import Kernel

DEFAULT_BRIDGE = "cni0"
UNSUPPORTED = ("vlan", "vlanTrunk", "promiscMode", "macspoofchk")  # bridge plugin fields we lack
MULTICAST = "224.0.0.0/4"
# Bounded, whatever the lengths of the network name and container ID (the spec sets none, and
# iptables cuts a comment at 256 bytes, after which DEL and GC could no longer find the rule):
# hashes, as the reference plugins name their chains (CNI-<hash of network + container ID>).
# Patterns, compiled by re on first use (and cached): most calls never read a comment or a MAC.
COMMENT_PATTERN = r"^cnilab net (?P<net>[0-9a-f]{8}) id (?P<id>[0-9a-f]{16})$"
MAC_PATTERN = r"^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$"


@valueclass(frozen=True)
class BridgeConfig:
    """The main plugin's part of the network configuration, checked."""

    name: str
    version: str
    bridge: str = DEFAULT_BRIDGE
    is_gateway: bool = False
    is_default_gateway: bool = False
    ip_masq: bool = False
    mtu: int | None = None
    hairpin: bool = False
    ipam_type: str = ""


def _flag(conf: Mapping[str, Any], key: str) -> bool:
    value = conf.get(key, False)
    if not isinstance(value, bool):
        raise CniError(spec.INVALID_CONFIG, f"{key} must be true or false, not {value!r}")
    return value


def parse_bridge(conf: Mapping[str, Any]) -> BridgeConfig:
    """Check bridge, isGateway, isDefaultGateway, ipMasq, mtu, hairpinMode and ipam.type."""
    for key in UNSUPPORTED:
        if conf.get(key):
            raise CniError(spec.UNSUPPORTED_FIELD,
                           f"unsupported field: {key}={json.dumps(conf[key])}")
    bridge = conf.get("bridge", DEFAULT_BRIDGE)
    if not isinstance(bridge, str) or (why := spec.check_ifname(bridge, "bridge")):
        raise CniError(spec.INVALID_CONFIG, why if isinstance(bridge, str) and why else
                       f"bridge {bridge!r} is not a name")
    mtu = conf.get("mtu")
    if mtu is not None and (not isinstance(mtu, int) or isinstance(mtu, bool)
                            or not 68 <= mtu <= 65535):
        raise CniError(spec.INVALID_CONFIG, f"mtu {mtu!r} is not a number from 68 to 65535")
    ipam = conf.get("ipam")
    if not isinstance(ipam, dict) or not isinstance(ipam.get("type"), str) or not ipam["type"]:
        raise CniError(spec.INVALID_CONFIG, "the network configuration has no ipam.type")
    default_gw = _flag(conf, "isDefaultGateway")
    return BridgeConfig(conf["name"], conf["cniVersion"], bridge,
                        _flag(conf, "isGateway") or default_gw, default_gw,
                        _flag(conf, "ipMasq"), mtu or None, _flag(conf, "hairpinMode"),
                        ipam["type"])


def host_veth_name(network: str, container_id: str, ifname: str) -> str:
    """The node's end of the pod's veth: 'veth' + 8 hex digits, the same on every call."""
    digest = sha256(f"{network}\0{container_id}\0{ifname}".encode()).hexdigest()
    return "veth" + digest[:8]


def network_hash(network: str) -> str:
    """8 hex digits naming a network in a rule comment."""
    return sha256(network.encode()).hexdigest()[:8]


def attachment_hash(network: str, container_id: str) -> str:
    """16 hex digits naming a (network, container) in a rule comment."""
    return sha256(f"{network}\0{container_id}".encode()).hexdigest()[:16]


def masq_comment(network: str, container_id: str) -> str:
    """The iptables comment that ties a NAT rule to its network and container (44 bytes)."""
    return f"cnilab net {network_hash(network)} id {attachment_hash(network, container_id)}"


def masq_ops(node: str | None, bc: BridgeConfig, container_id: str,
             address: IPv4Interface) -> list[AddRule]:
    """As the reference bridge plugin: within the subnet, no NAT; elsewhere (not multicast),
    MASQUERADE. Two rules in POSTROUTING instead of its per-container chain."""
    comment, src = masq_comment(bc.name, container_id), f"{address.ip}/32"
    return [
        AddRule(node, "nat", "POSTROUTING", ("-s", src, "-d", str(address.network),
                                             "-j", "ACCEPT"), comment),
        AddRule(node, "nat", "POSTROUTING", ("-s", src, "!", "-d", MULTICAST,
                                             "-j", "MASQUERADE"), comment),
    ]


@valueclass(frozen=True)
class PrependRoute(Op):
    """ip route prepend DST via GATEWAY dev DEV: a pod's route, added as the reference plugins
    add it (no NLM_F_EXCL), so a second network's default route goes before the first one
    instead of failing with "File exists"."""

    dst: str = "default"
    gateway: str = ""
    dev: str = ""

    def apply(self, kernel: KernelApi) -> None:
        kernel.add_route(self.netns, self.dst, self.gateway, dev=self.dev, prepend=True)

    def satisfied(self, snap: Snapshot) -> bool:
        ns = snap.ns(self.netns)
        return ns is not None and any(r.dst == self.dst and r.gateway == self.gateway
                                      and r.dev == self.dev for r in ns.routes)

    def argv(self) -> list[str]:
        return ["ip", "route", "prepend", self.dst, "via", self.gateway, "dev", self.dev]


def delete_rules(k: Kernel, node: str | None, network: str,
                 doomed: Callable[[str], bool]) -> int:
    """Delete the network's NAT rules whose attachment hash `doomed` picks, found by their
    comment in the node's POSTROUTING (every rule read): all in one iptables-restore."""
    import shlex  # only here: a DEL that knows its rules reads none

    net, gone = network_hash(network), []  # -D lines
    for line in k.iptables(node, ["-t", "nat", "-S", "POSTROUTING"]).splitlines():
        tokens = shlex.split(line)
        if "--comment" not in tokens or tokens[0] != "-A":
            continue
        m = re.match(COMMENT_PATTERN, tokens[tokens.index("--comment") + 1])
        if m and m["net"] == net and doomed(m["id"]):
            gone.append(["-D", *tokens[1:]])
    try:
        if gone:
            k.iptables_restore(node, "nat", gone)
    except KernelError:  # a parallel DEL or GC took one since: each alone, gone is fine
        for words in gone:
            k.iptables(node, ["-t", "nat", *words], missing_ok=True)
    return len(gone)


def unicast_mac(mac: str) -> bool:
    """A unicast MAC like 02:42:0a:f4:01:05, as the bridge plugins demand."""
    return re.match(MAC_PATTERN, mac) is not None and not int(mac[:2], 16) & 1


def pod_mac(conf: Mapping[str, Any], args: Mapping[str, str]) -> str | None:
    """The MAC the runtime asks for: runtimeConfig.mac, else args.cni.mac, else CNI_ARGS MAC=
    (the reference bridge plugin's order: the last one found wins)."""
    found: list[tuple[str, Any, int]] = []
    if args.get("MAC"):
        found.append(("CNI_ARGS MAC", args["MAC"], spec.INVALID_ENVIRONMENT))
    cni_args = conf.get("args", {}).get("cni", {}) if isinstance(conf.get("args"), dict) else {}
    if isinstance(cni_args, dict) and cni_args.get("mac"):
        found.append(("args.cni.mac", cni_args["mac"], spec.INVALID_CONFIG))
    runtime = conf.get("runtimeConfig")
    if isinstance(runtime, dict) and runtime.get("mac"):
        found.append(("runtimeConfig.mac", runtime["mac"], spec.INVALID_CONFIG))
    if not found:
        return None
    what, mac, code = found[-1]
    if not isinstance(mac, str) or not unicast_mac(mac):
        raise CniError(code, f"{what} {mac!r} is not a unicast MAC address like "
                       "02:42:0a:f4:01:05")
    return mac.lower()


def paths_share_netns(a: str, b: str) -> bool:
    """Whether two namespace paths are one namespace (the same inode on nsfs)."""
    try:
        sa, sb = os.stat(a), os.stat(b)
    except OSError:
        return False
    return (sa.st_dev, sa.st_ino) == (sb.st_dev, sb.st_ino)


def kernel_or_new(kernel: Kernel | None) -> Kernel:
    """The Kernel given, or a new one (the executable's case)."""
    if kernel is not None:
        return kernel
    from cnilab.kernel import Kernel

    return Kernel()


@valueclass(frozen=True)
class PodCall:
    """One call of the plugin, checked once: the request, its bridge config, the node it acts
    in (None: the namespace it runs in) and the kernel it acts through."""

    req: spec.Request
    bc: BridgeConfig
    node: str | None
    kernel: Kernel

    @property
    def env(self) -> spec.Environment:
        """The call's CNI_* values."""
        return self.req.env

    @property
    def host(self) -> str:
        """The node's end of the pod's veth."""
        return host_veth_name(self.bc.name, self.env.container_id, self.env.ifname)

    def ipam(self, command: str | None = None) -> dict[str, Any] | None:
        """Delegate this call (or `command` with the same values) to the IPAM plugin, and write
        the call on stderr (the plugin's log, which the CNI lesson shows)."""
        req = self.req if command is None else self.req.as_command(command)
        kind = self.bc.ipam_type
        try:
            answer = delegate(kind, req)
        except CniError as e:
            report_delegation(kind, req.command, req.config, e.to_dict())
            raise
        report_delegation(kind, req.command, req.config, answer)
        return answer


def pod_call(req: spec.Request, node: str | None = None,
             kernel: Kernel | None = None) -> PodCall:
    """The plugin's view of a checked request, and one more check: the pod's namespace is not
    the node's own (ADD would give the node a pod's default route, DEL would delete the node's
    own interface)."""
    path = req.env.netns
    if path and paths_share_netns(path, _where(node)):
        raise CniError(spec.INVALID_ENVIRONMENT, f"CNI_NETNS {path} is the node's own network "
                       "namespace, not a container's", "give the container's namespace")
    return PodCall(req, parse_bridge(req.config), node, kernel_or_new(kernel))


def _where(node: str | None) -> str:
    """The path of the node's namespace: this process's own, or a given one."""
    if node is None:
        return "/proc/self/ns/net"
    from cnilab.kernel.netns import netns_path

    return netns_path(node)


def request(command: str, config: Mapping[str, Any], container_id: str = "", netns: str = "",
            ifname: str = "", args: str = "", cni_path: Sequence[str] | None = None
            ) -> spec.Request:
    """The request of a caller in this process (the in-process API): a namespace may be named
    by its /run/netns name; checked as the executable checks its environment and stdin."""
    from cnilab.kernel.netns import netns_path

    return spec.request(command, config, container_id, netns_path(netns) if netns else "",
                        ifname, args, cni_path)
