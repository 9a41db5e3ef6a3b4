"""The scenarios as data: which lab, which fault (as ops), which causes to grade, the fix.

Nothing here touches the kernel: a fault is a list of ops built from the lab's topology (or the
cluster's plan), applied later through the ledger. The prose (story, symptom, hints, solution)
lives in lessons/scenarios/{en,ko}.toml; the fix commands are here, because the kernel tests run
exactly the commands `cnilab scenario solution` prints.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable
from typing import Union

from cnilab.cluster.plan import GATEWAY, OUTSIDE_HOST, ClusterPlan
from cnilab.compat import valueclass
from cnilab.errors import ConfigError
from cnilab.lab import LAST_STEP
from cnilab.lab.steps import build_steps
from cnilab.lab.topology import Container, Topology
from cnilab.ops import FORWARDING, AddAddress, AddRule, Op, SetSysctl
from cnilab.ops.faults import DelAddress, DelRoute, DelRule, LinkDown, NoMaster, SetPolicy

LAB, CLUSTER = "eight-steps", "cluster"  # the lesson a scenario breaks
BRIDGE_NF = "net.bridge.bridge-nf-call-iptables"  # exists only with br_netfilter
Plan = Union[Topology, ClusterPlan]


@valueclass(frozen=True)
class Scenario:
    """One break-and-fix lab: the lesson it breaks, its fault, the causes graded, the fix."""

    name: str
    lesson: str
    difficulty: int  # 1 easy .. 3 hard
    faults: Callable[[Plan], list[Op]]
    causes: tuple[str, ...]  # kernel facts (grade.CAUSES) that must hold once it is fixed
    fix: tuple[str, ...]  # shell commands, {placeholders} filled from params()
    alternatives: tuple[tuple[str, ...], ...] = ()  # other fixes that must pass too
    needs_bridge_nf: bool = False


def red_blue(topo: Topology) -> tuple[Container, Container]:
    """The first two containers (red and blue in the course's lab)."""
    if len(topo.containers) < 2:
        raise ConfigError.of("scenario_two_containers")
    return topo.containers[0], topo.containers[1]


def masquerade_rule(topo: Topology) -> AddRule:
    """Step 8's MASQUERADE rule, exactly as the lab adds it."""
    return next(op for op in build_steps(topo)[LAST_STEP - 1].ops if isinstance(op, AddRule))


def invocation(prefix: str) -> str:
    """How the student calls cnilab for this lab: `cnilab`, or with its --prefix."""
    return "cnilab" + (f" --prefix {shlex.quote(prefix)}" if prefix else "")


def params(plan: Plan) -> dict[str, str]:
    """The names and addresses the scenario texts and fix commands use."""
    if isinstance(plan, ClusterPlan):
        return cluster_params(plan)
    topo = plan
    red, blue = red_blue(topo)
    return {
        "cnilab": invocation(topo.prefix), "mark": topo.identity.mark,
        "red": red.name, "blue": blue.name, "red_ns": topo.netns(red), "blue_ns": topo.netns(blue),
        "node": topo.node or "", "internet": topo.internet or "", "bridge": topo.bridge,
        "gw": str(topo.bridge_address.ip), "subnet": str(topo.subnet),
        "red_ip": str(red.address.ip), "blue_ip": str(blue.address.ip),
        "red_cidr": str(red.address), "blue_cidr": str(blue.address),
        "red_veth": red.veth, "blue_veth": blue.veth, "red_port": red.peer, "blue_port": blue.peer,
        "uplink": topo.uplink, "node_ip": str(topo.uplink_address.ip),
        "outside_ip": str(topo.internet_address.ip),
    }


def cluster_params(plan: ClusterPlan) -> dict[str, str]:
    """The names and addresses of the cluster scenario's texts and fix."""
    cp, n1 = plan.nodes[0], plan.nodes[1]
    return {
        "cnilab": invocation(plan.prefix),
        "cp": plan.netns(cp), "n1": plan.netns(n1), "cp_name": cp.name, "n1_name": n1.name,
        "cp_ip": str(cp.address.ip), "n1_ip": str(n1.address.ip),
        "cp_cidr": str(cp.pod_cidr), "n1_cidr": str(n1.pod_cidr), "lan": plan.lan_netns,
        "gateway_ip": str(GATEWAY.ip), "outside_ip": str(OUTSIDE_HOST.ip),
    }


# -- the faults ----------------------------------------------------------------------------------


def _lab(plan: Plan) -> Topology:
    assert isinstance(plan, Topology)
    return plan


def _no_forwarding(plan: Plan) -> list[Op]:
    return [SetSysctl(_lab(plan).node, FORWARDING, "0")]


def _port_down(plan: Plan) -> list[Op]:
    topo = _lab(plan)
    return [LinkDown(topo.node, red_blue(topo)[1].peer)]


def _not_on_bridge(plan: Plan) -> list[Op]:
    topo = _lab(plan)
    return [NoMaster(topo.node, red_blue(topo)[0].peer, topo.bridge)]


def _no_default_route(plan: Plan) -> list[Op]:
    topo = _lab(plan)
    return [DelRoute(topo.netns(red_blue(topo)[0]), "default", str(topo.bridge_address.ip))]


def _wrong_mask(plan: Plan) -> list[Op]:
    topo = _lab(plan)
    blue = red_blue(topo)[1]
    ns = topo.netns(blue)
    # As typed without its prefix length (`ip addr add 192.168.15.2 dev ...` means /32). The
    # default route goes first: the kernel drops it anyway once its gateway is off every subnet.
    return [DelRoute(ns, "default", str(topo.bridge_address.ip)),
            DelAddress(ns, blue.veth, str(blue.address)),
            AddAddress(ns, blue.veth, f"{blue.address.ip}/32")]


def _no_masquerade(plan: Plan) -> list[Op]:
    topo = _lab(plan)
    rule = masquerade_rule(topo)
    return [DelRule(rule.netns, rule.table, rule.chain, rule.spec, rule.comment)]


def _bare_masquerade(plan: Plan) -> list[Op]:
    topo = _lab(plan)
    rule = masquerade_rule(topo)
    # The lecture's rule, without `! -o BRIDGE`; bridge netfilter on, as Kubernetes needs it.
    return [SetSysctl(topo.node, BRIDGE_NF, "1"),
            DelRule(rule.netns, rule.table, rule.chain, rule.spec, rule.comment),
            AddRule(topo.node, "nat", "POSTROUTING", ("-s", str(topo.subnet), "-j", "MASQUERADE"),
                    topo.identity.mark)]


def _forward_drop(plan: Plan) -> list[Op]:
    return [SetPolicy(_lab(plan).node, "filter", "FORWARD", "DROP")]


def _duplicate_ip(plan: Plan) -> list[Op]:
    topo = _lab(plan)
    red, blue = red_blue(topo)
    return [AddAddress(topo.netns(blue), blue.veth, str(red.address))]


def _missing_pod_route(plan: Plan) -> list[Op]:
    assert isinstance(plan, ClusterPlan)
    cp, n1 = plan.nodes[0], plan.nodes[1]
    return [DelRoute(plan.netns(cp), str(n1.pod_cidr), str(n1.address.ip))]


ON_NODE = "ip netns exec {node} "

SCENARIOS: tuple[Scenario, ...] = (
    Scenario("no-forwarding", LAB, 1, _no_forwarding, ("forwarding",),
             (ON_NODE + "sysctl -w net.ipv4.ip_forward=1",),
             ((ON_NODE + "sysctl -w net.ipv4.conf.all.forwarding=1",),)),
    Scenario("port-down", LAB, 1, _port_down, ("ports_up",),
             ("ip -n {node} link set {blue_port} up",)),
    Scenario("not-on-bridge", LAB, 1, _not_on_bridge, ("ports_attached",),
             ("ip -n {node} link set {red_port} master {bridge}",)),
    Scenario("no-default-route", LAB, 1, _no_default_route, ("default_routes",),
             ("ip -n {red_ns} route add default via {gw}",),
             # Two halves of the address space: what VPN clients do to win over a default.
             (("ip -n {red_ns} route add 0.0.0.0/1 via {gw}",
               "ip -n {red_ns} route add 128.0.0.0/1 via {gw}"),)),
    Scenario("wrong-mask", LAB, 2, _wrong_mask, ("masks",),
             ("ip -n {blue_ns} addr del {blue_ip}/32 dev {blue_veth}",
              "ip -n {blue_ns} addr add {blue_cidr} dev {blue_veth}",
              "ip -n {blue_ns} route add default via {gw}"),
             (("ip -n {blue_ns} addr add {blue_cidr} dev {blue_veth}",
               "ip -n {blue_ns} route add default via {gw}"),)),
    Scenario("no-masquerade", LAB, 2, _no_masquerade, ("masquerade",),
             (ON_NODE + "iptables -t nat -A POSTROUTING -s {subnet} ! -o {bridge} -j MASQUERADE",),
             ((ON_NODE + "iptables -t nat -A POSTROUTING -s {subnet} -o {uplink} "
                         "-j SNAT --to-source {node_ip}",),)),
    Scenario("bare-masquerade", LAB, 3, _bare_masquerade, ("masquerade", "bridge_nf"),
             (ON_NODE + "iptables -t nat -D POSTROUTING -s {subnet} -m comment --comment {mark} "
                        "-j MASQUERADE",
              ON_NODE + "iptables -t nat -A POSTROUTING -s {subnet} ! -o {bridge} -j MASQUERADE"),
             ((ON_NODE + "iptables -t nat -I POSTROUTING -s {subnet} -d {subnet} -j RETURN",),),
             needs_bridge_nf=True),
    Scenario("forward-drop", LAB, 3, _forward_drop, ("forward_accepts",),
             (ON_NODE + "iptables -A FORWARD -i {bridge} -j ACCEPT",
              ON_NODE + "iptables -A FORWARD -o {bridge} -j ACCEPT"),
             ((ON_NODE + "iptables -P FORWARD ACCEPT",),)),
    Scenario("duplicate-ip", LAB, 3, _duplicate_ip, ("unique_addresses",),
             ("ip -n {blue_ns} addr del {red_cidr} dev {blue_veth}",
              "ip -n {node} neigh flush dev {bridge}"),
             (("ip -n {blue_ns} -4 addr flush dev {blue_veth}",
               "ip -n {blue_ns} addr add {blue_cidr} dev {blue_veth}",
               "ip -n {blue_ns} route add default via {gw}",
               "ip -n {node} neigh flush dev {bridge}"),)),
    Scenario("missing-pod-route", CLUSTER, 2, _missing_pod_route, ("pod_routes",),
             ("ip -n {cp} route add {n1_cidr} via {n1_ip}",),
             # The LAN's router learns the pod CIDR instead (as a cloud route table does).
             (("ip -n {lan} route add {n1_cidr} via {n1_ip}",),)),
)


def names() -> list[str]:
    """Every scenario's name, in the order `scenario list` shows them."""
    return [s.name for s in SCENARIOS]


def find(name: str) -> Scenario:
    """The scenario called `name`, or a ConfigError listing them."""
    for s in SCENARIOS:
        if s.name == name:
            return s
    raise ConfigError.of("scenario_unknown", name=name, names=", ".join(names()))


def commands(templates: tuple[str, ...], values: dict[str, str]) -> list[str]:
    """Fix commands with the lab's names filled in."""
    return [line.format(**values) for line in templates]
