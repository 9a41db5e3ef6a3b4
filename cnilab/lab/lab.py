"""The lab as a domain object: run a step, tear down, observe, prove. No printing, no exiting."""

from __future__ import annotations

from collections.abc import Iterable

from cnilab.compat import field, valueclass
from cnilab.errors import ConfigError, KernelError, PrerequisiteError
from cnilab.kernel import Kernel
from cnilab.lab import proofs
from cnilab.lab.firewall import forward_notes
from cnilab.lab.proofs import Proof
from cnilab.lab.steps import (
    FORWARDING,
    FreshNodeSysctl,
    Step,
    build_steps,
    observed_namespaces,
    server_namespaces,
    setup_ops,
)
from cnilab.lab.topology import Topology
from cnilab.ledger import Ledger, run_dir
from cnilab.ops import OPS, AddRule, Op, registry_of
from cnilab.ops.faults import FAULT_OPS
from cnilab.ops.trace import AddTraceTable
from cnilab.owner import Owner
from cnilab.state import Snapshot
from cnilab.trace.site import LOOPBACK, Site

# The ops a lab's ledger reads back: the steps', a killed trace's table and a scenario's faults
# (teardown removes them).
LAB_OPS = {**OPS, **registry_of(FreshNodeSysctl, AddTraceTable), **FAULT_OPS}


def lab_ledger(topo: Topology) -> Ledger:
    """The ledger of the lab `topo` describes (its lesson and exact prefix)."""
    return Ledger.of(topo.identity, ops=LAB_OPS)


@valueclass
class StepReport:
    """What running one step did."""

    step: Step
    applied: list[Op] = field(default_factory=list)
    staged: list[Op] = field(default_factory=list)  # the isolated lab's node/outside, made first
    proofs: list[Proof] = field(default_factory=list)
    after: Snapshot | None = None
    notes: list[tuple[str, dict[str, str]]] = field(default_factory=list)  # (ui key, params)

    @property
    def already_done(self) -> bool:
        """True when the kernel already held this step: nothing was changed."""
        return not self.applied


class Lab(Owner):
    """One lab (topology + kernel + ledger). Call its methods under `with lab.locked():`."""

    def __init__(self, topo: Topology, kernel: Kernel | None = None,
                 ledger: Ledger | None = None) -> None:
        self.topo = topo
        self.kernel = kernel or Kernel(run_dir())
        self.ledger = ledger or lab_ledger(topo)
        self.steps = build_steps(topo)
        # Listening sockets are read only where a step starts a server.
        self._servers = server_namespaces(self.steps)
        self._last: Snapshot | None = None  # the state observed after our own last step
        self.kept: list[Op] = []  # recorded, but not proven ours at the last teardown

    def step(self, number: int) -> Step:
        """Step `number` (1..8)."""
        if not 1 <= number <= len(self.steps):
            raise ConfigError.of("no_step", number=number, last=len(self.steps))
        return self.steps[number - 1]

    def snapshot(self, reuse: bool = False) -> Snapshot:
        """Observe every namespace of the lab (NAT rules in the node, listening sockets where a
        step starts a server). reuse: read again only what our own changes touched."""
        return self.kernel.observe(observed_namespaces(self.topo), nat_in=[self.topo.node],
                                   listen_in=self._servers, reuse=reuse)

    def done_steps(self, snap: Snapshot) -> list[int]:
        """Numbers of the steps the kernel state satisfies (checked, not remembered)."""
        return [s.number for s in self.steps if s.done(snap)]

    # -- running ---------------------------------------------------------------------------------

    def run_step(self, number: int, prove: bool = True, reuse: bool = False) -> StepReport:
        """Apply the missing ops of step `number`, after checking everything it depends on.

        reuse: start from the state observed right after the previous step (no one else can
        have changed it in between, e.g. run-all without pauses), instead of observing again.
        """
        step = self.step(number)
        self._check_mode()
        snap = self._last if reuse and self._last is not None else self.snapshot()
        report = StepReport(step)
        for earlier in self.steps[: number - 1]:
            if not earlier.done(snap):
                raise PrerequisiteError.of("prereq", number=number, missing=earlier.number)
        stage = [op for op in setup_ops(self.topo) if not op.satisfied(snap)]
        missing = list(step.missing(snap))
        self.ledger.check_no_other_lab(step.ops, snap)  # done by another lab is not done here
        if not missing:
            report.after = self._last = snap
            return report
        # Every name of the step, made or not: half a step on someone else's object is refused.
        self.ledger.check_free(stage + list(step.ops), snap, self.kernel)
        if any(isinstance(op, AddRule) for op in missing):
            self.kernel.require_iptables()
        if self.topo.in_place and number == 8:
            report.notes += forwarding_notes(snap, self.topo)
        if self.topo.in_place and number in (7, 8):  # the steps whose proofs cross FORWARD
            report.notes += forward_notes(self.kernel, self.topo)
        report.staged = self.apply(stage)
        before: list[Proof] = []
        rules: list[Op] = [op for op in missing if isinstance(op, AddRule)]
        if prove and number == 8 and rules and self.topo.internet is not None:
            # Routes and forwarding first, then a packet, then the rule: the outside host sees
            # 192.168.15.1 and cannot answer. That is what MASQUERADE is for.
            report.applied = self.apply([op for op in missing if op not in rules])
            before = proofs.unmasqueraded(self.topo)
            missing = rules
        report.applied += self.apply(missing)
        # Without pauses no one else changes the lab: what our ops did not touch stands.
        report.after = self._last = self.snapshot(reuse=reuse)
        if not step.done(report.after):
            left = ", ".join(op.command(self.topo.node) for op in step.missing(report.after))
            raise KernelError.of("step_incomplete", number=number, left=left)
        if prove:
            report.proofs = before + self.proofs(number)
            if report.proofs:  # the diagram then shows what the packets taught (FDB, ARP)
                report.after = self._last = self.snapshot()
        return report

    def prepare(self, number: int) -> list[StepReport]:
        """Make sure steps 1..number-1 (and the stage) exist, for a student to do step `number`."""
        reports = [self.run_step(n, prove=False, reuse=True) for n in range(1, number)]
        if number == 1:  # no earlier step to run, but the student needs the stage
            snap = self.snapshot()
            stage = [op for op in setup_ops(self.topo) if not op.satisfied(snap)]
            self.ledger.check_free(stage, snap, self.kernel)
            self.apply(stage)
        return reports

    def rewind(self, number: int) -> list[Op]:
        """Undo what cnilab made of steps `number` and later, so a student can do it again.

        A finished lab would otherwise already hold step `number`: `check` would pass with no
        work. Only recorded ops go (a student's own objects stay, as teardown leaves them)."""
        later = {op.prepared_key() for s in self.steps if s.number >= number for op in s.ops}
        undone: list[Op] = []
        for op in reversed([op for op in self.ledger.ops() if op.prepared_key() in later]):
            if op.undoable():  # proven ours first, as teardown does
                undone += self.ledger.undo(self.kernel, [op])
            else:  # an address, a route, a state: it goes only with its namespace otherwise
                op.rewind(self.kernel)
                self.ledger.forget([op])
                undone.append(op)
        return undone

    def proofs(self, number: int) -> list[Proof]:
        """The packet proofs that become possible once step `number` is done."""
        return proofs.step_proofs(self.topo, number)

    def apply(self, ops: Iterable[Op]) -> list[Op]:
        """Apply ops through the ledger, the lab's mode recorded before its first op."""
        self.ledger.set_mode(self.topo.in_place)
        return super().apply(ops)

    def _check_mode(self) -> None:
        mode = self.ledger.mode()
        if mode is not None and mode != self.topo.in_place:
            up = "--in-place" if mode else "isolated"
            raise ConfigError.of("mode", mode=up)

    # -- teardown --------------------------------------------------------------------------------

    def teardown(self) -> list[Op]:
        """Undo, newest first, what the ledger recorded and the kernel proves ours. Idempotent.

        What was recorded but is not provably ours (an intent whose object someone else made)
        stays, listed in self.kept.
        """
        report = self.ledger.teardown(self.kernel)
        self.kept = report.kept
        self.ledger.clear()
        return report.undone


SYSCTL_FILES = ("/etc/sysctl.conf", "/etc/sysctl.d", "/run/sysctl.d", "/usr/lib/sysctl.d")


def forwarding_notes(snap: Snapshot, topo: Topology) -> list[tuple[str, dict[str, str]]]:
    """In place, when ip_forward is already 1 before step 8: say so, and who likely did it."""
    ns = snap.ns(topo.node)
    if ns is None or ns.sysctls.get(FORWARDING) != "1":
        return []
    who = [("ui.who_file", {"path": path}) for path in _sysctl_files_forwarding()]
    who += [("ui.who_link", {"link": ln.name}) for ln in ns.links
            if ln.name in ("docker0", "podman0", "cni-podman0")]
    if not who:
        who = [("ui.who_unknown", {})]
    return [("ui.forwarding_on", {"who": key, **params}) for key, params in who[:1]]


def _sysctl_files_forwarding() -> list[str]:
    """sysctl files that set net.ipv4.ip_forward (or all forwarding) to 1."""
    import glob
    import re

    found = []
    pattern = re.compile(r"^\s*net[./]ipv4[./](ip_forward|conf[./]all[./]forwarding)\s*=\s*1",
                         re.M)
    for place in SYSCTL_FILES:
        for path in ([place] if place.endswith(".conf") else sorted(glob.glob(place + "/*.conf"))):
            try:
                with open(path, encoding="utf-8", errors="replace") as f:
                    if pattern.search(f.read()):
                        found.append(path)
            except OSError:
                continue
    return found


def lab_site(topo: Topology) -> Site:
    """The eight-step lab: host (the node), its containers, the internet (isolated mode)."""
    roles: dict[str | None, str] = {topo.node: "host"}
    roles.update({topo.netns(c): c.name for c in topo.containers})
    nets = [topo.subnet, LOOPBACK]
    if topo.internet is not None:
        roles[topo.internet] = "internet"
        # In place, the uplink is the machine's own network: never a trace's target.
        nets.append(topo.uplink_address.network)
    return Site(roles, tuple(nets), topo.internet, (topo.subnet,))
