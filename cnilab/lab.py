"""The lab as a domain object: run a step, tear down, observe, prove. No printing, no exiting."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from cnilab import probes
from cnilab.errors import CollisionError, ConfigError, KernelError, PrerequisiteError
from cnilab.kernel import Kernel, require_privileges
from cnilab.ledger import Ledger
from cnilab.ops import TAG, AddAddress, AddRule, Key, Op
from cnilab.probes import Proof
from cnilab.state import Snapshot
from cnilab.steps import Step, build_steps, observed_namespaces, setup_ops
from cnilab.topology import Topology


@dataclass
class StepReport:
    """What running one step did."""

    step: Step
    applied: list[Op] = field(default_factory=list)
    staged: list[Op] = field(default_factory=list)  # the isolated lab's node/outside, made first
    proofs: list[Proof] = field(default_factory=list)
    after: Snapshot | None = None

    @property
    def already_done(self) -> bool:
        """True when the kernel already held this step: nothing was changed."""
        return not self.applied


def describe(key: Key) -> str:
    """A key in words: 'namespace red', 'link v-net-0 in cnilab-host'."""
    if key[0] == "netns":
        return f"namespace {key[1]}"
    where = f" in namespace {key[1]}" if key[1] else ""
    return f"{key[0]} {key[-1]}{where}"


class Lab:
    """One lab (topology + kernel + ledger). Call its methods under `with lab.locked():`."""

    def __init__(self, topo: Topology, kernel: Kernel | None = None,
                 ledger: Ledger | None = None) -> None:
        self.topo = topo
        self.kernel = kernel or Kernel()
        self.ledger = ledger or Ledger(topo.lab_id)
        self.steps = build_steps(topo)
        self._last: Snapshot | None = None  # the state observed after our own last step

    def locked(self):  # type: ignore[no-untyped-def]
        """Check privileges, then hold the lab's lock."""
        require_privileges()
        return self.ledger.lock()

    def step(self, number: int) -> Step:
        """Step `number` (1..8)."""
        if not 1 <= number <= len(self.steps):
            raise ConfigError(f"there is no step {number}; steps are 1 to {len(self.steps)}")
        return self.steps[number - 1]

    def snapshot(self) -> Snapshot:
        """Observe every namespace of the lab (NAT rules in the node)."""
        return self.kernel.observe(observed_namespaces(self.topo), nat_in=[self.topo.node])

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
                raise PrerequisiteError(
                    f"step {number} needs step {earlier.number}, which is not done",
                    hint=f"run `cnilab step {earlier.number}` (or `cnilab run-all`) first")
        stage = [op for op in setup_ops(self.topo) if not op.satisfied(snap)]
        missing = list(step.missing(snap))
        if not missing:
            report.after = self._last = snap
            return report
        # Every name of the step, made or not: half a step on someone else's object is refused.
        self._check_free(stage + list(step.ops), snap)
        if any(isinstance(op, AddRule) for op in missing):
            self.kernel.require_iptables()
        before = probes.outside(self.topo, expect=False) if prove and number == 8 else []
        report.staged = self._apply(stage)
        report.applied = self._apply(missing)
        report.after = self._last = self.snapshot()
        if not step.done(report.after):
            left = ", ".join(op.command(self.topo.node) for op in step.missing(report.after))
            raise KernelError(f"step {number} ran but the kernel does not show: {left}")
        if prove:
            report.proofs = before + self.proofs(number)
        return report

    def proofs(self, number: int) -> list[Proof]:
        """The packet proofs that become possible once step `number` is done."""
        if number == 7:
            return probes.connectivity(self.topo)
        if number == 8:
            return probes.outside(self.topo, expect=True) + probes.nat_sources(self.topo)
        return []

    def _apply(self, ops: Iterable[Op]) -> list[Op]:
        self.ledger.set_mode(self.topo.in_place)
        done = []
        for op in ops:
            op = op.prepare(self.kernel)
            self.ledger.record(op)  # intent first: a crash after this is still torn down
            try:
                op.apply(self.kernel)
            except BaseException:
                self.ledger.forget_last()
                raise
            done.append(op)
        return done

    def _check_mode(self) -> None:
        mode = self.ledger.mode()
        if mode is not None and mode != self.topo.in_place:
            up = "--in-place" if mode else "isolated"
            raise ConfigError(f"this lab is already up in {up} mode",
                              hint="run `cnilab teardown` first, or use the same mode")

    def _owned(self, key: Key, snap: Snapshot) -> bool:
        if self.ledger.owns(key):
            return True
        if key[0] == "link":
            ns = snap.ns(key[1] or None)
            link = ns.link(key[2]) if ns else None
            return link is not None and link.alias == TAG
        return False

    def _check_free(self, ops: list[Op], snap: Snapshot) -> None:
        """Refuse, before touching anything, names and addresses that exist and are not ours."""
        for op in ops:
            for key in op.claims():
                exists = (key[1] in snap.netns if key[0] == "netns" else
                          (ns := snap.ns(key[1] or None)) is not None and ns.link(key[2]))
                if exists and not self._owned(key, snap):
                    raise CollisionError(
                        f"{describe(key)} already exists and was not made by cnilab",
                        hint="remove it yourself, or pick other names with --config")
            if isinstance(op, AddAddress) and (ns := snap.ns(op.netns)) is not None:
                holder = ns.has_address(op.cidr)
                if holder is not None and holder.name != op.dev:
                    raise CollisionError(f"address {op.cidr} is already on {holder.name}"
                                         + (f" in namespace {op.netns}" if op.netns else ""),
                                         hint="pick other addresses with --config")

    # -- teardown --------------------------------------------------------------------------------

    def teardown(self) -> list[Op]:
        """Undo, newest first, everything the ledger says cnilab made; nothing else. Idempotent."""
        ops = self.ledger.ops()
        owned_ns = {op.claims()[0][1] for op in ops if op.claims() and op.claims()[0][0] == "netns"}
        undone = []
        self.kernel.close()
        for op in reversed(ops):
            # Whatever lives inside a namespace cnilab made goes away with that namespace.
            if op.undoable() and op.netns not in owned_ns:
                op.undo(self.kernel)
                undone.append(op)
        self.kernel.close()
        self.ledger.clear()
        return undone
