"""What the cluster is now, read from the kernel: nodes, interfaces, MACs, pods, routes, ports.

Everything here comes from an observation (links, addresses, routes, sockets), never from the
plan's constants; the plan only says which namespaces to look at. The quiz grades against this.
"""

from __future__ import annotations

from ipaddress import IPv4Interface
from typing import Any

from cnilab.cluster.cluster import Cluster
from cnilab.cluster.plan import LAN_BRIDGE, POD_IF, UPLINK, WORLD_IF
from cnilab.kernel import list_netns
from cnilab.kernel.sockets import TcpSocket, tcp_sockets
from cnilab.ops.files import read_etc
from cnilab.state import Link, Namespace, Snapshot, first_ip

# A socket bound to every address (:: takes IPv4 too, its clients as ::ffff:a.b.c.d).
ANY = {"0.0.0.0", "::"}


def _lan_link(ns: Namespace, lan_netns: str) -> Link | None:
    """The node's interface on the cluster LAN: the veth whose peer is in the LAN namespace."""
    return next((ln for ln in ns.links
                 if ln.kind == "veth" and (ln.peer or "").startswith(lan_netns + ":")), None)


def _ports(socks: list[TcpSocket]) -> list[dict[str, Any]]:
    ports = []
    for s in sorted((s for s in socks if s.listening), key=lambda s: (s.local_port, s.local)):
        clients = sum(1 for c in socks if c.established and c.local_port == s.local_port
                      and s.local in ANY | {c.local, c.local.removeprefix("::ffff:")})
        ports.append({"address": s.local, "port": s.local_port, "process": s.process,
                      "pid": s.pid, "established": clients})
    return ports


def _flags(ports: list[dict[str, Any]]) -> dict[str, list[str]]:
    """The --flags in the command line of each process that listens (/proc/PID/cmdline)."""
    flags: dict[str, list[str]] = {}
    for p in ports:
        if p["pid"] is None or p["process"] in flags:
            continue
        try:
            with open(f"/proc/{p['pid']}/cmdline", "rb") as f:
                args = f.read().decode(errors="replace").split("\0")
        except OSError:
            continue  # it exited meanwhile
        flags[p["process"]] = [a for a in args if a.startswith("--")
                               and not a.startswith(("--cnilab-", "--fds=", "--ready="))]
    return flags


def _bridges(ns: Namespace) -> list[dict[str, Any]]:
    return [{"name": b.name, "up": b.up, "carrier": b.carrier, "mac": b.mac,
             "addresses": list(b.addresses),
             "ports": [p.name for p in ns.links if p.master == b.name]}
            for b in ns.links if b.kind == "bridge"]


def hosts(text: str | None) -> dict[str, list[str]]:
    """A hosts file as address -> names (the names `route` prints for an address)."""
    found: dict[str, list[str]] = {}
    for line in (text or "").splitlines():
        words = line.split("#", 1)[0].split()
        if len(words) > 1:
            found.setdefault(words[0], []).extend(words[1:])
    return found


def summary(cluster: Cluster) -> tuple[list[str], int]:
    """The nodes whose namespace exists, and how many pods' namespaces do (what `up` prints):
    /run/netns listed, no namespace read (a thousand pods take seconds to read)."""
    plan, present = cluster.plan, list_netns()
    return ([n.name for n in plan.nodes if plan.netns(n) in present],
            sum(plan.pod_netns(p) in present for p in plan.all_pods()))


def read_status(cluster: Cluster, snap: Snapshot | None = None) -> dict[str, Any]:
    """The cluster as the kernel holds it now (`cnilab cluster status --json`)."""
    plan = cluster.plan
    snap = snap or cluster.snapshot()
    nodes = []
    for node in plan.nodes:
        ns = snap.ns(plan.netns(node))
        if ns is None:
            continue
        lan_link = _lan_link(ns, plan.lan_netns)
        lan_end = (snap.ns(plan.lan_netns) or Namespace(None)).link(
            (lan_link.peer or "").split(":", 1)[-1]) if lan_link else None
        pod_bridge = next((b for b in ns.links if b.kind == "bridge" and b.addresses
                           and IPv4Interface(b.addresses[0]).network.subnet_of(plan.pod_network)),
                          None)
        pods = []
        for pod in plan.pods(node):
            pod_ns = snap.ns(plan.pod_netns(pod))
            if pod_ns is not None:
                pods.append({"name": pod.name, "netns": plan.pod_netns(pod),
                             "ip": first_ip(pod_ns.link(POD_IF))})
        nodes.append({
            "name": node.name,
            "netns": plan.netns(node),
            "interface": lan_link.name if lan_link else None,
            "ip": first_ip(lan_link),
            "mac": lan_link.mac if lan_link else None,
            # `ip -br addr` prints ens3@ifN: N is the index of its veth peer, in the LAN
            "peer_index": lan_end.index if lan_end else None,
            "hosts": hosts(read_etc(plan.netns(node), "hosts")),
            "pod_cidr": (str(IPv4Interface(pod_bridge.addresses[0]).network)
                         if pod_bridge else None),
            "pod_bridge": pod_bridge.name if pod_bridge else None,
            "bridges": _bridges(ns),
            "pods": pods,
            "routes": [{"dst": r.dst, "via": r.gateway, "dev": r.dev} for r in ns.routes],
            "ports": (ports := _ports(tcp_sockets(plan.netns(node)))),
            "flags": _flags(ports),
        })
    lan = snap.ns(plan.lan_netns)
    world = snap.ns(plan.world_netns)
    switch = lan.link(LAN_BRIDGE) if lan else None
    return {
        "nodes": nodes,
        "gateway": {
            "netns": plan.lan_netns,
            "ip": first_ip(switch),
            "uplink": first_ip(lan.link(UPLINK)) if lan else None,
            "nat": list(lan.nat or ()) if lan else [],
        },
        "lan": {"bridge": LAN_BRIDGE if switch else None,
                "ports": [ln.name for ln in lan.links if ln.master == LAN_BRIDGE] if lan else []},
        "outside": {"netns": plan.world_netns,
                    "ip": first_ip(world.link(WORLD_IF)) if world else None},
    }
