"""Preflight checks: can this machine run the lab, and is anything in the way?

Kernel features are tried for real, inside a throw-away namespace that doctor makes and removes.
Each result is a sentence key of lessons/ui (section [doctor]) and its parameters: the command
line prints it in the user's language.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Callable
from typing import Any

from cnilab.compat import field, valueclass
from cnilab.errors import CnilabError
from cnilab.kernel import Kernel, has_privileges, list_netns
from cnilab.lab.firewall import forward_drop
from cnilab.lab.steps import build_steps, setup_ops
from cnilab.lab.topology import Topology
from cnilab.ledger import Ledger
from cnilab.ops import AddBridge, AddRule, AddVeth
from cnilab.packages import install_command

# A normal user's PATH often lacks the sbin folders, where iptables lives on Debian.
SBIN = "/usr/local/sbin:/usr/sbin:/sbin"


@valueclass(frozen=True)
class Check:
    """One preflight result: a name, whether it passed, a sentence and a hint (keys + params)."""

    name: str
    ok: bool
    detail: str  # a sentence key: "doctor.KEY", or "error.KEY" for a cnilab error
    params: dict[str, Any] = field(default_factory=dict)
    hint: str | None = None  # a sentence key of section [doctor_hint]
    hint_params: dict[str, Any] = field(default_factory=dict)

    def text(self, lang: str) -> tuple[str, str | None]:
        """The detail and the hint in `lang`."""
        from cnilab.i18n import t

        return (t(self.detail, lang, **self.params),
                None if self.hint is None else t(f"doctor_hint.{self.hint}", lang,
                                                 **self.hint_params))


def _try(name: str, fn: Callable[[], object], ok: str, hint: str) -> Check:
    try:
        fn()
    except CnilabError as e:
        if e.key is not None:
            return Check(name, False, f"error.{e.key}", e.params, hint)
        return Check(name, False, "doctor.raw", {"text": e.message}, hint)
    except OSError as e:
        return Check(name, False, "doctor.raw", {"text": e.strerror or str(e)}, hint)
    return Check(name, True, f"doctor.{ok}")


def run_doctor(topo: Topology, kernel: Kernel, ledger: Ledger) -> list[Check]:
    """Every check, in order; kernel probes only when privileged."""
    checks = [Check("python", True, "doctor.python", {"version": sys.version.split()[0]})]
    privileged = has_privileges()
    checks.append(Check("privileges", True, "doctor.root") if privileged
                  else Check("privileges", False, "doctor.not_root", hint="sudo"))
    checks.append(_iptables_check(kernel, privileged))
    ip = shutil.which("ip") or shutil.which("ip", path=SBIN)
    checks.append(Check("iproute2", True, "doctor.ip", {"path": ip}) if ip
                  else Check("iproute2", False, "doctor.no_ip", hint="install_iproute2",
                             hint_params={"install": install_command("iproute2")}))
    if privileged:
        checks += _kernel_features(kernel, shutil.which("iptables") is not None)
        checks.append(_collisions(topo, kernel, ledger))
        if topo.in_place and shutil.which("iptables"):
            checks.append(_forward(topo, kernel))
    checks.append(Check("leftovers", False, "doctor.lab_up",
                        {"count": len(ledger.ops()), "path": str(ledger.path)}, "teardown")
                  if ledger.exists() else Check("leftovers", True, "doctor.no_lab"))
    return checks


def _iptables_check(kernel: Kernel, privileged: bool) -> Check:
    on_path = shutil.which("iptables")
    if on_path:
        return Check("iptables", True, "doctor.iptables",
                     {"path": on_path, "backend": kernel.iptables_backend()})
    in_sbin = shutil.which("iptables", path=SBIN)
    if in_sbin and not privileged:  # installed; only root's PATH (and rights) reach it
        return Check("iptables", True, "doctor.iptables_needs_root", {"path": in_sbin})
    return Check("iptables", False, "doctor.no_iptables", hint="install_iptables",
                 hint_params={"install": install_command("iptables")})


def _kernel_features(kernel: Kernel, iptables: bool) -> list[Check]:
    probe = f"cnilab-doctor-{os.getpid()}"
    made = _try("netns", lambda: kernel.add_netns(probe), "netns", "netns")
    checks = [made]
    if not made.ok:
        return checks
    try:
        checks.append(_try("bridge", lambda: AddBridge(probe, "probe-br").apply(kernel),
                           "bridge", "bridge"))
        checks.append(_try("veth", lambda: AddVeth(probe, "probe-a", "probe-b").apply(kernel),
                           "veth", "veth"))
        if iptables:
            rule = AddRule(probe, "nat", "POSTROUTING", ("-s", "10.0.0.0/8", "-j", "MASQUERADE"))
            checks.append(_try("nf_nat", lambda: rule.apply(kernel), "nf_nat", "nf_nat"))
    finally:
        kernel.remove_netns(probe)
    return checks


def _forward(topo: Topology, kernel: Kernel) -> Check:
    """In place: does the FORWARD policy let the containers' packets through (Docker's drops)?"""
    found = forward_drop(kernel, topo)
    if found is None:
        return Check("forward", True, "doctor.forward_accepts")
    params = found.params(topo)
    return Check("forward", False, "doctor.forward_drop", params, "forward_drop", params)


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
    if not taken:
        return Check("names", True, "doctor.names_free")
    return Check("names", False, "doctor.names_taken", {"names": ", ".join(taken)}, "names")
