"""CHECK, STATUS and GC of the cnilab plugin: compare the kernel with a result, report readiness,
collect what no known attachment uses.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from ipaddress import IPv4Interface
from typing import TYPE_CHECKING, Any

from cnilab.cni import spec
from cnilab.cni.bridge import (
    BridgeConfig,
    PodCall,
    attachment_hash,
    delete_rules,
    host_veth_name,
    masq_ops,
    pod_call,
    request,
)
from cnilab.cni.spec import CniError
from cnilab.ops import rule_tokens

if TYPE_CHECKING:
    from cnilab.kernel import Kernel


def check(config: Mapping[str, Any], container_id: str, netns: str, ifname: str = "eth0", *,
          node: str | None = None, kernel: Kernel | None = None, args: str = "",
          cni_path: Sequence[str] | None = None) -> None:
    """CHECK: everything prevResult says was made must still be there; error 102 names what
    is missing."""
    req = request("CHECK", config, container_id, netns, ifname, args, cni_path)
    check_call(pod_call(req, node, kernel))


def check_call(call: PodCall) -> None:
    """CHECK of a checked call (the executable's and the in-process API's)."""
    env, bc, node, path = call.env, call.bc, call.node, call.env.netns
    prev = call.req.config.get("prevResult")
    if prev is None:
        raise CniError(spec.INVALID_CONFIG, "CHECK needs prevResult in the configuration")
    version = prev.get("cniVersion", bc.version)
    problems = spec.validate_result(prev, version if version in spec.SUPPORTED_VERSIONS
                                    else bc.version)
    if problems:
        raise CniError(spec.DECODE_FAILURE, f"prevResult is not a valid result: {problems[0]}")
    k = call.kernel
    if not os.path.exists(path):
        raise CniError(spec.UNKNOWN_CONTAINER, f"the network namespace {path} does not exist")
    call.ipam()
    try:
        snap = k.observe([node, path], nat_in=[node] if bc.ip_masq else [])
    finally:
        k.close_netns(path)
    missing = _differences(snap, bc, node, path, env.container_id, env.ifname, prev)
    if missing:
        raise CniError(spec.CHECK_FAILED, f"{env.container_id}/{env.ifname}: "
                       + "; ".join(missing))


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
    status_call(pod_call(request("STATUS", config, cni_path=cni_path), node, kernel))


def status_call(call: PodCall) -> None:
    """STATUS of a checked call."""
    call.ipam()
    br = call.kernel.get_link(call.node, call.bc.bridge)
    if br is not None and not br.up:
        raise CniError(spec.LIMITED_CONNECTIVITY, f"bridge {call.bc.bridge} is down: pods on "
                       "it are cut off")


def gc(config: Mapping[str, Any], *, node: str | None = None, kernel: Kernel | None = None,
       cni_path: Sequence[str] | None = None) -> int:
    """GC: drop NAT rules and addresses of attachments not in cni.dev/valid-attachments."""
    return gc_call(pod_call(request("GC", config, cni_path=cni_path), node, kernel))


def gc_call(call: PodCall) -> int:
    """GC of a checked call: how many NAT rules went."""
    bc, k = call.bc, call.kernel
    keep = {cid for cid, _ in spec.valid_attachments(call.req.config)}
    removed = 0
    if k.has_iptables:
        kept = {attachment_hash(bc.name, cid) for cid in keep}
        removed = delete_rules(k, call.node, bc.name, lambda h: h not in kept)
    call.ipam()
    return removed


def handle(call: PodCall) -> None:
    """CHECK, STATUS or GC, as the call's command says."""
    {"CHECK": check_call, "STATUS": status_call, "GC": gc_call}[call.env.command](call)
