"""Preflight checks: can this machine run the lab, and is anything in the way?

Kernel features are tried for real, inside a throw-away namespace that doctor makes and removes.
"""

from __future__ import annotations

import os
import shutil
import sys
from dataclasses import dataclass

from cnilab.errors import CnilabError
from cnilab.kernel import Kernel, has_privileges, list_netns
from cnilab.ledger import Ledger
from cnilab.ops import AddBridge, AddRule, AddVeth
from cnilab.steps import build_steps, setup_ops
from cnilab.topology import Topology


@dataclass(frozen=True)
class Check:
    """One preflight result."""

    name: str
    ok: bool
    detail: str
    hint: str | None = None


def _try(name: str, fn, ok_detail: str, hint: str) -> Check:  # type: ignore[no-untyped-def]
    try:
        fn()
    except (CnilabError, OSError) as e:
        return Check(name, False, str(e), hint)
    return Check(name, True, ok_detail)


def run_doctor(topo: Topology, kernel: Kernel, ledger: Ledger) -> list[Check]:
    """Every check, in order; kernel probes only when privileged."""
    checks = [Check("python", True, f"cnilab runs on Python {sys.version.split()[0]}")]
    privileged = has_privileges()
    checks.append(Check("privileges", privileged,
                        "root with CAP_NET_ADMIN and CAP_SYS_ADMIN" if privileged
                        else "not root: cnilab cannot change network namespaces",
                        None if privileged else "run with sudo"))
    ipt = shutil.which("iptables")
    backend = kernel.iptables_backend()
    checks.append(Check("iptables", ipt is not None,
                        f"{ipt} ({backend} backend)" if ipt else "not installed (step 8 needs it)",
                        None if ipt else "sudo apt-get install iptables"))
    checks.append(Check("iproute2", shutil.which("ip") is not None,
                        "the `ip` command is installed (for the printed commands and shell)"
                        if shutil.which("ip") else "`ip` is not installed",
                        None if shutil.which("ip") else "sudo apt-get install iproute2"))
    if privileged:
        checks += _kernel_features(kernel, ipt is not None)
        checks.append(_collisions(topo, kernel, ledger))
    checks.append(Check("leftovers", not ledger.exists(),
                        f"a lab is up ({len(ledger.ops())} objects recorded in {ledger.path})"
                        if ledger.exists() else "no lab from an earlier run",
                        "`cnilab status` shows it, `cnilab teardown` removes it"
                        if ledger.exists() else None))
    return checks


def _kernel_features(kernel: Kernel, iptables: bool) -> list[Check]:
    probe = f"cnilab-doctor-{os.getpid()}"
    made = _try("netns", lambda: kernel.add_netns(probe),
                "network namespaces can be created under /run/netns",
                "the kernel needs CONFIG_NET_NS; in a container, run it --privileged")
    checks = [made]
    if not made.ok:
        return checks
    try:
        checks.append(_try("bridge", lambda: AddBridge(probe, "probe-br").apply(kernel),
                           "bridges work", "load the bridge module: sudo modprobe bridge"))
        checks.append(_try("veth", lambda: AddVeth(probe, "probe-a", "probe-b").apply(kernel),
                           "veth pairs work", "load the veth module: sudo modprobe veth"))
        if iptables:
            rule = AddRule(probe, "nat", "POSTROUTING", ("-s", "10.0.0.0/8", "-j", "MASQUERADE"))
            checks.append(_try("nf_nat", lambda: rule.apply(kernel),
                               "NAT (MASQUERADE) rules load",
                               "load NAT support: sudo modprobe nf_nat iptable_nat"))
    finally:
        kernel.remove_netns(probe)
    return checks


def _collisions(topo: Topology, kernel: Kernel, ledger: Ledger) -> Check:
    snap = kernel.observe([None] if topo.in_place else [])
    taken = []
    ops = [op for s in build_steps(topo) for op in s.ops] + list(setup_ops(topo))
    for op in ops:
        for key in op.claims():
            if key[0] == "netns" and key[1] in list_netns() and not ledger.owns(key, kernel):
                taken.append(f"namespace {key[1]}")
            elif key[0] == "link" and topo.in_place and key[1] == "":
                ns = snap.ns(None)
                link = ns.link(key[2]) if ns else None
                if link is not None and not ledger.is_ours(key, snap):
                    taken.append(f"link {key[2]}")
    taken = list(dict.fromkeys(taken))
    return Check("names", not taken,
                 "the lab's names are free (or cnilab's)" if not taken
                 else "already taken, not by cnilab: " + ", ".join(taken),
                 None if not taken else "remove them, or choose other names with --config")
