"""cnilab, the main CNI plugin: the eight steps as a bridge-style plugin (ADD, DEL; CHECK, STATUS
and GC in verify.py).

The node is the namespace the plugin runs in (`node=None`), or, called in-process, any
namespace given as `node`. Every kernel change is one of the lab's ops, applied through
cnilab.kernel.Kernel. IPAM is delegated to the plugin named by `ipam.type` (cnilab-ipam runs in
this process; any other is executed from CNI_PATH as the spec says).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Mapping, Sequence
from ipaddress import IPv4Interface
from typing import TYPE_CHECKING, Any

from cnilab.cni import spec
from cnilab.cni.bridge import (
    PodCall,
    PrependRoute,
    attachment_hash,
    delete_rules,
    masq_ops,
    pod_call,
    pod_mac,
    request,
)
from cnilab.cni.spec import CniError
from cnilab.compat import field, valueclass
from cnilab.errors import KernelError
from cnilab.ops import (
    AddAddress,
    AddBridge,
    AddVeth,
    LinkUp,
    Op,
    SetMac,
    SetMaster,
    SetSysctl,
    apply_rules,
    undo_rules,
)

if TYPE_CHECKING:
    from cnilab.kernel import Kernel
    from cnilab.state import Link


@valueclass
class Attaching:
    """An ADD under way: the call, what IPAM gave, the bridge as seen before (None: not there
    yet), the MAC asked for, and what was made so far (undone if the ADD fails)."""

    call: PodCall
    got: dict[str, Any]
    bridge: Link | None
    mac: str | None
    done: list[Op] = field(default_factory=list)

    @property
    def ips(self) -> list[IPv4Interface]:
        """The pod's addresses, as IPAM gave them."""
        return [IPv4Interface(i["address"]) for i in self.got.get("ips", [])]

    def apply(self, op: Op) -> None:
        """Apply an op and remember it, to undo it if the ADD fails."""
        op.apply(self.call.kernel)
        self.done.append(op)

    def ensure(self, op: AddBridge | AddAddress) -> None:
        """Make the shared bridge (or its gateway address) unless it exists; a parallel ADD
        may make it between our look and our try, which is fine."""
        k, node = self.call.kernel, self.call.node
        try:
            self.apply(op)
        except KernelError:
            if isinstance(op, AddBridge):
                link = k.get_link(node, op.name)
                ok = link is not None and link.kind == "bridge"
            else:
                link = k.get_link(node, op.dev)
                ok = link is not None and op.cidr in link.addresses
            if not ok:
                raise


def add(config: Mapping[str, Any], container_id: str, netns: str, ifname: str = "eth0", *,
        node: str | None = None, kernel: Kernel | None = None, args: str = "",
        cni_path: Sequence[str] | None = None) -> dict[str, Any]:
    """ADD: attach the pod's namespace to the bridge; returns the result. Leaves nothing on error.

    netns: the pod's namespace (path or /run/netns name); node: where the bridge lives.
    """
    req = request("ADD", config, container_id, netns, ifname, args, cni_path)
    return attach(pod_call(req, node, kernel))


def attach(call: PodCall) -> dict[str, Any]:
    """ADD of a checked call (the executable's and the in-process API's)."""
    env, k, node, bc = call.env, call.kernel, call.node, call.bc
    mac = pod_mac(call.req.config, env.args)
    path = env.netns
    if not os.path.exists(path):
        raise CniError(spec.UNKNOWN_CONTAINER, f"the network namespace {path} does not exist")
    if k.has_link(path, env.ifname):
        raise CniError(spec.INTERFACE_EXISTS, f"interface {env.ifname} already exists in {path}")
    if k.has_link(node, call.host):
        raise CniError(spec.INTERFACE_EXISTS, f"the node already has {call.host}, the host end "
                       f"for {env.container_id}/{env.ifname}", "DEL that attachment first")
    br = k.get_link(node, bc.bridge)
    if br is not None and br.kind != "bridge":
        raise CniError(spec.INTERFACE_EXISTS, f"{bc.bridge} exists on the node and is a "
                       f"{br.kind}, not a bridge")
    ctx = Attaching(call, call.ipam() or {}, br, mac)
    try:
        if not ctx.ips:
            raise CniError(spec.KERNEL_REFUSED, f"IPAM {bc.ipam_type} returned no address")
        return _attach(ctx)
    except BaseException:
        _rollback(ctx)
        with contextlib.suppress(CniError):
            call.ipam("DEL")
        raise
    finally:
        k.close_netns(path)  # an open socket would keep the pod's namespace alive


def _attach(ctx: Attaching) -> dict[str, Any]:
    """Wire the pod in."""
    call, br, ips = ctx.call, ctx.bridge, ctx.ips
    k, node, bc, path, ifname, host = (call.kernel, call.node, call.bc, call.env.netns,
                                       call.env.ifname, call.host)
    gateways = [spec.gateway_of(ctx.got, ip) for ip in ips]
    pin = br is None
    if br is None:
        ctx.ensure(AddBridge(node, bc.bridge))
    if bc.is_gateway:
        for ip, gw in zip(ips, gateways):
            if gw is None:
                continue
            cidr = f"{gw}/{ip.network.prefixlen}"
            if br is None or cidr not in br.addresses:
                ctx.ensure(AddAddress(node, bc.bridge, cidr))
                pin = True
        # The node routes between pods and the world: forwarding stays on (as the reference).
        SetSysctl(node, "net.ipv4.ip_forward", "1").apply(k)
    # The bridge's MAC is reused for the result only when pinned here: an unpinned bridge
    # follows its lowest port's MAC, so the veth added below may change it.
    bridge_mac = _pin_mac(k, node, bc.bridge) if pin else None
    if br is None or not br.up:
        LinkUp(node, bc.bridge).apply(k)
    # The pod end is created directly in the pod's namespace: the node may have its own eth0.
    ctx.apply(AddVeth(node, host, ifname, path))
    if ctx.mac:
        SetMac(path, ifname, ctx.mac).apply(k)  # before it is up: the runtime's --mac-address
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
    routes = [dict(r) for r in ctx.got.get("routes", [])]
    if bc.is_default_gateway and not any(r["dst"] == "0.0.0.0/0" for r in routes):
        routes.append({"dst": "0.0.0.0/0", "gw": str(gateways[0])})
    for r in routes:
        via = r.get("gw") or next((str(g) for g in gateways if g is not None), None)
        if via is None:
            raise CniError(spec.INVALID_CONFIG, f"route {r['dst']} has no gateway to go via")
        dst = "default" if r["dst"] == "0.0.0.0/0" else r["dst"]
        PrependRoute(path, dst, str(via), ifname).apply(k)
    if bc.ip_masq:
        k.require_iptables()
        rules = [r for ip in ips for r in masq_ops(node, bc, call.env.container_id, ip)]
        apply_rules(k, rules)  # one iptables-restore: one process, all or none of them
        ctx.done.extend(rules)
    return _result(ctx, gateways, routes, bridge_mac)


def _pin_mac(k: Kernel, node: str | None, bridge: str) -> str | None:
    """Set the bridge's MAC to the one it has. A bridge whose address was never set follows
    its lowest port MAC, so the gateway's MAC would change when that pod leaves and the other
    pods' ARP entries go stale (cni#285, moby#3414, netavark#833); once set, the kernel keeps it.
    As the reference plugin does, when it makes the bridge or gives it the gateway address."""
    current = k.mac_of(node, bridge)
    if current is not None:
        SetMac(node, bridge, current).apply(k)
    return current


def _result(ctx: Attaching, gateways: list[Any], routes: list[dict[str, str]],
            bridge_mac: str | None) -> dict[str, Any]:
    """The ADD result; `bridge_mac`: the bridge's, when this ADD pinned it (else read)."""
    call = ctx.call
    k, node, bc, path = call.kernel, call.node, call.bc, call.env.netns
    interfaces: list[dict[str, Any]] = []
    for where, name, sandbox in ((node, bc.bridge, None), (node, call.host, None),
                                 (path, call.env.ifname, path)):
        mac = bridge_mac if name == bc.bridge and bridge_mac else k.mac_of(where, name)
        if mac is None:
            raise CniError(spec.KERNEL_REFUSED, "a link vanished while the pod was attached")
        entry: dict[str, Any] = {"name": name, "mac": mac}
        if bc.mtu and name != bc.bridge:
            entry["mtu"] = bc.mtu
        if sandbox:
            entry["sandbox"] = sandbox
        interfaces.append(entry)
    ip_list = []
    for ip, gw in zip(ctx.ips, gateways):
        entry = {"address": str(ip), "interface": 2}
        if gw is not None:
            entry["gateway"] = str(gw)
        ip_list.append(entry)
    return spec.convert_result({"interfaces": interfaces, "ips": ip_list, "routes": routes,
                                "dns": ctx.got.get("dns") or {}}, bc.version)


def _rollback(ctx: Attaching) -> None:
    k, node, bc = ctx.call.kernel, ctx.call.node, ctx.call.bc
    for op in reversed(ctx.done):
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
    req = request("DEL", config, container_id, netns, ifname, args, cni_path)
    detach(pod_call(req, node, kernel))


def detach(call: PodCall) -> None:
    """DEL of a checked call (the executable's and the in-process API's)."""
    k, node, bc, path, cid = call.kernel, call.node, call.bc, call.env.netns, call.env.container_id
    addresses: list[str] = []
    if path and os.path.exists(path):
        try:
            pod = k.get_link(path, call.env.ifname)
            addresses = list(pod.addresses) if pod is not None else []
            k.delete_link(path, call.env.ifname)  # its peer on the bridge goes with it
        finally:
            k.close_netns(path)
    k.delete_link(node, call.host)
    if bc.ip_masq and k.has_iptables:
        # The pod's rules are known from its addresses: deleted in one iptables-restore, with
        # no walk over the node's rules. When they are not known (the pod's namespace or
        # interface is gone) or one is already gone, they are found by their comment.
        rules = [r for a in addresses if ":" not in a
                 for r in masq_ops(node, bc, cid, IPv4Interface(a))]
        if not (rules and undo_rules(k, rules)):
            mine = attachment_hash(bc.name, cid)
            delete_rules(k, node, bc.name, lambda h: h == mine)
    call.ipam()


def handle(req: spec.Request) -> dict[str, Any] | None:
    """One CNI call to the executable: the node is the namespace it runs in."""
    if req.command == "ADD":
        return attach(pod_call(req))
    if req.command == "DEL":
        detach(pod_call(req))
    elif req.command in ("CHECK", "STATUS", "GC"):
        from cnilab.cni import verify

        verify.handle(pod_call(req))
    return None


def main() -> int:
    """Entry point of the cnilab executable."""
    return spec.main(handle)
