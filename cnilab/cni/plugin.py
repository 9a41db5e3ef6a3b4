"""cnilab, the main CNI plugin: the eight steps as a bridge-style plugin (ADD, CHECK, DEL, ...).

The node is the namespace the plugin runs in (`node=None`), or, called in-process, any
namespace given as `node`. Every kernel change is one of the lab's ops, applied through
cnilab.kernel.Kernel. IPAM is delegated to the plugin named by `ipam.type`, found on CNI_PATH
and executed as the spec says (in-process calls may use cnilab-ipam's code directly).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shlex
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from ipaddress import IPv4Interface
from typing import TYPE_CHECKING, Any

from cnilab.cni import spec
from cnilab.cni.spec import CniError
from cnilab.errors import KernelError
from cnilab.ops import (
    AddAddress,
    AddBridge,
    AddRoute,
    AddRule,
    AddVeth,
    LinkUp,
    Op,
    SetMaster,
    SetSysctl,
    rule_tokens,
)

if TYPE_CHECKING:
    from cnilab.kernel import Kernel
    from cnilab.state import Link

DEFAULT_BRIDGE = "cni0"
UNSUPPORTED = ("vlan", "vlanTrunk", "promiscMode", "macspoofchk")  # bridge plugin fields we lack
MULTICAST = "224.0.0.0/4"
COMMENT_RE = re.compile(r'^cnilab name: "(?P<name>[^"]*)" id: "(?P<id>[^"]*)"$')


@dataclass(frozen=True)
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
        raise CniError(spec.INVALID_CONFIG, why if isinstance(bridge, str) else
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
    digest = hashlib.sha256(f"{network}\0{container_id}\0{ifname}".encode()).hexdigest()
    return "veth" + digest[:8]


def masq_comment(network: str, container_id: str) -> str:
    """The iptables comment that ties a NAT rule to its network and container."""
    return f'cnilab name: "{network}" id: "{container_id}"'


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


# -- IPAM delegation ------------------------------------------------------------------------------


def find_plugin(name: str, cni_path: Sequence[str]) -> str:
    """The executable called `name` in the CNI_PATH folders."""
    if "/" in name or not name:
        raise CniError(spec.INVALID_CONFIG, f"plugin type {name!r} is not a plain name")
    for folder in cni_path:
        exe = os.path.join(folder, name)
        if os.path.isfile(exe) and os.access(exe, os.X_OK):
            return exe
    raise CniError(spec.PLUGIN_NOT_FOUND, f"cannot find plugin {name!r} in CNI_PATH "
                   f"{':'.join(cni_path) or '(empty)'}")


def exec_plugin(exe: str, command: str, conf: Mapping[str, Any], container_id: str = "",
                netns: str = "", ifname: str = "", args: str = "",
                cni_path: Sequence[str] = ()) -> dict[str, Any] | None:
    """Execute a CNI plugin as a runtime or delegating plugin does; its error as a CniError."""
    env = {**os.environ, "CNI_COMMAND": command, "CNI_CONTAINERID": container_id,
           "CNI_NETNS": netns, "CNI_IFNAME": ifname, "CNI_ARGS": args,
           "CNI_PATH": ":".join(cni_path)}
    done = subprocess.run([exe], input=json.dumps(conf).encode(), env=env,
                          capture_output=True, check=False)
    out = done.stdout.decode(errors="replace").strip()
    try:
        answer = json.loads(out) if out else None
    except ValueError:
        answer = None
    if done.returncode != 0:
        if isinstance(answer, dict) and "code" in answer:
            raise CniError.from_dict(answer)
        why = (done.stderr.decode(errors="replace").strip() or out or "no output").splitlines()
        raise CniError(spec.KERNEL_REFUSED, f"{os.path.basename(exe)} {command} failed "
                       f"(exit {done.returncode}): {why[-1]}")
    if out and not isinstance(answer, dict):
        raise CniError(spec.DECODE_FAILURE, f"{os.path.basename(exe)} printed no JSON object")
    return answer


def ipam(command: str, conf: Mapping[str, Any], container_id: str, netns: str, ifname: str,
         args: str, cni_path: Sequence[str] | None) -> dict[str, Any] | None:
    """Delegate to the IPAM plugin: executed from CNI_PATH, or in-process for cnilab-ipam when
    the caller gave no CNI_PATH (the in-process API)."""
    kind = conf["ipam"]["type"]
    if cni_path is None and kind == "cnilab-ipam":
        from cnilab.cni import ipam as local

        env = spec.Environment(command, container_id, netns, ifname,
                               spec.parse_cni_args(args))
        return local.handle(env, dict(conf))
    exe = find_plugin(kind, cni_path or ())
    return exec_plugin(exe, command, conf, container_id, netns, ifname, args, cni_path or ())


# -- the commands ---------------------------------------------------------------------------------


def _kernel(kernel: Kernel | None) -> Kernel:
    if kernel is not None:
        return kernel
    from cnilab.kernel import Kernel

    return Kernel()


def _checked(config: Mapping[str, Any], command: str, container_id: str, netns: str,
             ifname: str, args: str) -> tuple[dict[str, Any], BridgeConfig, str]:
    """The same checks the executable makes on its environment and stdin."""
    from cnilab.kernel import netns_path

    path = netns_path(netns) if netns else ""
    spec.read_environment({"CNI_COMMAND": command, "CNI_CONTAINERID": container_id,
                           "CNI_NETNS": path, "CNI_IFNAME": ifname, "CNI_ARGS": args,
                           "CNI_PATH": "-"})
    conf = spec.check_config(dict(config), command)
    return conf, parse_bridge(conf), path


def _apply(kernel: Kernel, op: Op, done: list[Op]) -> None:
    op.apply(kernel)
    done.append(op)


def _ensure(kernel: Kernel, op: AddBridge | AddAddress, node: str | None,
            done: list[Op]) -> None:
    """Make the shared bridge (or its gateway address) unless it exists; a parallel ADD may
    make it between our look and our try, which is fine."""
    try:
        _apply(kernel, op, done)
    except KernelError:
        if isinstance(op, AddBridge):
            link = kernel.get_link(node, op.name)
            ok = link is not None and link.kind == "bridge"
        else:
            link = kernel.get_link(node, op.dev)
            ok = link is not None and op.cidr in link.addresses
        if not ok:
            raise


def add(config: Mapping[str, Any], container_id: str, netns: str, ifname: str = "eth0", *,
        node: str | None = None, kernel: Kernel | None = None, args: str = "",
        cni_path: Sequence[str] | None = None) -> dict[str, Any]:
    """ADD: attach the pod's namespace to the bridge; returns the result. Leaves nothing on error.

    netns: the pod's namespace (path or /run/netns name); node: where the bridge lives.
    """
    conf, bc, path = _checked(config, "ADD", container_id, netns, ifname, args)
    k = _kernel(kernel)
    if not os.path.exists(path):
        raise CniError(spec.UNKNOWN_CONTAINER, f"the network namespace {path} does not exist")
    if k.get_link(path, ifname) is not None:
        raise CniError(spec.INTERFACE_EXISTS, f"interface {ifname} already exists in {path}")
    host = host_veth_name(bc.name, container_id, ifname)
    if k.get_link(node, host) is not None:
        raise CniError(spec.INTERFACE_EXISTS, f"the node already has {host}, the host end for "
                       f"{container_id}/{ifname}", "DEL that attachment first")
    br = k.get_link(node, bc.bridge)
    if br is not None and br.kind != "bridge":
        raise CniError(spec.INTERFACE_EXISTS, f"{bc.bridge} exists on the node and is a "
                       f"{br.kind}, not a bridge")
    got = ipam("ADD", conf, container_id, path, ifname, args, cni_path) or {}
    done: list[Op] = []
    try:
        ips = [IPv4Interface(i["address"]) for i in got.get("ips", [])]
        if not ips:
            raise CniError(spec.KERNEL_REFUSED, f"IPAM {bc.ipam_type} returned no address")
        return _attach(k, bc, node, path, container_id, ifname, host, ips, got, done, br)
    except BaseException:
        _rollback(k, node, bc, done)
        with contextlib.suppress(CniError):
            ipam("DEL", conf, container_id, path, ifname, args, cni_path)
        raise
    finally:
        k.close_netns(path)  # an open socket would keep the pod's namespace alive


def _attach(k: Kernel, bc: BridgeConfig, node: str | None, path: str, container_id: str,
            ifname: str, host: str, ips: list[IPv4Interface], got: Mapping[str, Any],
            done: list[Op], br: Link | None) -> dict[str, Any]:
    """Wire the pod in; `br` is the bridge as seen just before (None: not there yet)."""
    gateways = [spec.gateway_of(got, ip) for ip in ips]
    if br is None:
        _ensure(k, AddBridge(node, bc.bridge), node, done)
    if bc.is_gateway:
        for ip, gw in zip(ips, gateways):
            if gw is None:
                continue
            cidr = f"{gw}/{ip.network.prefixlen}"
            if br is None or cidr not in br.addresses:
                _ensure(k, AddAddress(node, bc.bridge, cidr), node, done)
        # The node routes between pods and the world: forwarding stays on (as the reference).
        SetSysctl(node, "net.ipv4.ip_forward", "1").apply(k)
    if br is None or not br.up:
        LinkUp(node, bc.bridge).apply(k)
    # The pod end is created directly in the pod's namespace: the node may have its own eth0.
    _apply(k, AddVeth(node, host, ifname, path), done)
    if bc.mtu:
        k.set_mtu(node, host, bc.mtu)
        k.set_mtu(path, ifname, bc.mtu)
    SetMaster(node, host, bc.bridge).apply(k)
    if bc.hairpin:
        k.set_hairpin(node, host)
    LinkUp(node, host).apply(k)
    for ip in ips:
        AddAddress(path, ifname, str(ip)).apply(k)
    LinkUp(path, ifname).apply(k)
    routes = [dict(r) for r in got.get("routes", [])]
    if bc.is_default_gateway and not any(r["dst"] == "0.0.0.0/0" for r in routes):
        routes.append({"dst": "0.0.0.0/0", "gw": str(gateways[0])})
    for r in routes:
        gw = r.get("gw") or next((str(g) for g in gateways if g is not None), None)
        if gw is None:
            raise CniError(spec.INVALID_CONFIG, f"route {r['dst']} has no gateway to go via")
        AddRoute(path, "default" if r["dst"] == "0.0.0.0/0" else r["dst"], gw).apply(k)
    if bc.ip_masq:
        k.require_iptables()
        for ip in ips:
            for rule in masq_ops(node, bc, container_id, ip):
                _apply(k, rule, done)
    return _result(k, bc, node, path, ifname, host, ips, gateways, routes, got)


def _result(k: Kernel, bc: BridgeConfig, node: str | None, path: str, ifname: str, host: str,
            ips: list[IPv4Interface], gateways: list[Any], routes: list[dict[str, str]],
            got: Mapping[str, Any]) -> dict[str, Any]:
    interfaces: list[dict[str, Any]] = []
    for where, name, sandbox in ((node, bc.bridge, None), (node, host, None),
                                 (path, ifname, path)):
        mac = k.mac_of(where, name)
        if mac is None:
            raise CniError(spec.KERNEL_REFUSED, "a link vanished while the pod was attached")
        entry: dict[str, Any] = {"name": name, "mac": mac}
        if bc.mtu and name != bc.bridge:
            entry["mtu"] = bc.mtu
        if sandbox:
            entry["sandbox"] = sandbox
        interfaces.append(entry)
    ip_list = []
    for ip, gw in zip(ips, gateways):
        entry = {"address": str(ip), "interface": 2}
        if gw is not None:
            entry["gateway"] = str(gw)
        ip_list.append(entry)
    return spec.convert_result({"interfaces": interfaces, "ips": ip_list, "routes": routes,
                                "dns": got.get("dns") or {}}, bc.version)


def _rollback(k: Kernel, node: str | None, bc: BridgeConfig, done: list[Op]) -> None:
    for op in reversed(done):
        if isinstance(op, AddAddress):
            continue  # the gateway address goes with the bridge, or stays for the other pods
        if isinstance(op, AddBridge):
            # The bridge is shared: remove it only if no other pod has been plugged in since.
            ns = k.observe([node]).ns(node)
            if ns is not None and any(ln.master == bc.bridge for ln in ns.links):
                continue
        with contextlib.suppress(KernelError):
            op.undo(k)


def delete(config: Mapping[str, Any], container_id: str, netns: str = "", ifname: str = "eth0",
           *, node: str | None = None, kernel: Kernel | None = None, args: str = "",
           cni_path: Sequence[str] | None = None) -> None:
    """DEL: remove the pod's link, NAT rules and address; already gone is success."""
    conf, bc, path = _checked(config, "DEL", container_id, netns, ifname, args)
    k = _kernel(kernel)
    if path and os.path.exists(path):
        try:
            k.delete_link(path, ifname)  # its peer on the bridge goes with it
        finally:
            k.close_netns(path)
    k.delete_link(node, host_veth_name(bc.name, container_id, ifname))
    if bc.ip_masq and k.has_iptables:
        _delete_rules(k, node, lambda name, cid: name == bc.name and cid == container_id)
    ipam("DEL", conf, container_id, path, ifname, args, cni_path)


def _delete_rules(k: Kernel, node: str | None, doomed: Any) -> int:
    count = 0
    for line in k.iptables(node, ["-t", "nat", "-S", "POSTROUTING"]).splitlines():
        tokens = shlex.split(line)
        if "--comment" not in tokens or tokens[0] != "-A":
            continue
        m = COMMENT_RE.match(tokens[tokens.index("--comment") + 1])
        if m and doomed(m["name"], m["id"]):
            k.iptables(node, ["-t", "nat", "-D", *tokens[1:]], missing_ok=True)
            count += 1
    return count


def check(config: Mapping[str, Any], container_id: str, netns: str, ifname: str = "eth0", *,
          node: str | None = None, kernel: Kernel | None = None, args: str = "",
          cni_path: Sequence[str] | None = None) -> None:
    """CHECK: everything prevResult says was made must still be there; error 102 names what
    is missing."""
    conf, bc, path = _checked(config, "CHECK", container_id, netns, ifname, args)
    prev = conf.get("prevResult")
    if prev is None:
        raise CniError(spec.INVALID_CONFIG, "CHECK needs prevResult in the configuration")
    version = prev.get("cniVersion", bc.version)
    problems = spec.validate_result(prev, version if version in spec.SUPPORTED_VERSIONS
                                    else bc.version)
    if problems:
        raise CniError(spec.DECODE_FAILURE, f"prevResult is not a valid result: {problems[0]}")
    k = _kernel(kernel)
    if not os.path.exists(path):
        raise CniError(spec.UNKNOWN_CONTAINER, f"the network namespace {path} does not exist")
    ipam("CHECK", conf, container_id, path, ifname, args, cni_path)
    try:
        snap = k.observe([node, path], nat_in=[node] if bc.ip_masq else [])
    finally:
        k.close_netns(path)
    missing = _differences(snap, bc, node, path, container_id, ifname, prev)
    if missing:
        raise CniError(spec.CHECK_FAILED, f"{container_id}/{ifname}: " + "; ".join(missing))


def _differences(snap: Any, bc: BridgeConfig, node: str | None, path: str, container_id: str,
                 ifname: str, prev: Mapping[str, Any]) -> list[str]:
    node_ns, pod_ns = snap.ns(node), snap.ns(path)
    out = []
    br = node_ns.link(bc.bridge) if node_ns else None
    if br is None or br.kind != "bridge":
        out.append(f"bridge {bc.bridge} is missing")
    pod = pod_ns.link(ifname) if pod_ns else None
    if pod is None:
        return [*out, f"{ifname} is missing from {path}"]
    ifaces = prev.get("interfaces", [])
    want = next((i for i in ifaces if i.get("sandbox") and i["name"] == ifname), None)
    if want and want.get("mac") and want["mac"] != pod.mac:
        out.append(f"{ifname} has MAC {pod.mac}, prevResult says {want['mac']}")
    for ipc in prev.get("ips", []):
        if ipc["address"] not in pod.addresses:
            out.append(f"{ifname} lacks {ipc['address']}")
    for r in prev.get("routes", []):
        dst = "default" if r["dst"] == "0.0.0.0/0" else r["dst"]
        if not any(have.dst == dst for have in pod_ns.routes):
            out.append(f"route {r['dst']} is missing in {path}")
    host = host_veth_name(bc.name, container_id, ifname)
    link = node_ns.link(host) if node_ns else None
    if link is None or link.master != bc.bridge:
        out.append(f"{host} is not a port of {bc.bridge}")
    if bc.ip_masq:
        rules = {rule_tokens(r) for r in (node_ns.nat or ())} if node_ns else set()
        for ipc in prev.get("ips", []):
            for op in masq_ops(node, bc, container_id, IPv4Interface(ipc["address"])):
                if rule_tokens(("-A", op.chain, *op.spec)) not in rules:
                    out.append(f"NAT rule {' '.join(op.spec)} is missing")
    return out


def status(config: Mapping[str, Any], *, node: str | None = None, kernel: Kernel | None = None,
           cni_path: Sequence[str] | None = None) -> None:
    """STATUS: ready for ADDs (IPAM has room) and the bridge, if made, is up (else 51)."""
    conf = spec.check_config(dict(config), "STATUS")
    bc = parse_bridge(conf)
    ipam("STATUS", conf, "", "", "", "", cni_path)
    br = _kernel(kernel).get_link(node, bc.bridge)
    if br is not None and not br.up:
        raise CniError(spec.LIMITED_CONNECTIVITY, f"bridge {bc.bridge} is down: pods on it "
                       "are cut off")


def gc(config: Mapping[str, Any], *, node: str | None = None, kernel: Kernel | None = None,
       cni_path: Sequence[str] | None = None) -> int:
    """GC: drop NAT rules and addresses of attachments not in cni.dev/valid-attachments."""
    conf = spec.check_config(dict(config), "GC")
    bc = parse_bridge(conf)
    keep = {cid for cid, _ in spec.valid_attachments(conf)}
    k = _kernel(kernel)
    removed = 0
    if k.has_iptables:
        removed = _delete_rules(k, node, lambda name, cid: name == bc.name and cid not in keep)
    ipam("GC", conf, "", "", "", "", cni_path)
    return removed


def handle(env: spec.Environment, conf: dict[str, Any]) -> dict[str, Any] | None:
    """One CNI call to the executable: the node is the namespace it runs in."""
    args = ";".join(f"{k}={v}" for k, v in env.args.items())
    common: dict[str, Any] = {"args": args, "cni_path": env.path}
    if env.command == "ADD":
        return add(conf, env.container_id, env.netns, env.ifname, **common)
    if env.command == "DEL":
        delete(conf, env.container_id, env.netns, env.ifname, **common)
    elif env.command == "CHECK":
        check(conf, env.container_id, env.netns, env.ifname, **common)
    elif env.command == "STATUS":
        status(conf, cni_path=env.path)
    elif env.command == "GC":
        gc(conf, cni_path=env.path)
    return None


def main() -> int:
    """Entry point of the cnilab executable."""
    return spec.main(handle)
