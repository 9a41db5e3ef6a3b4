"""Start, grade, hint and stop a scenario. No printing, no exiting.

A scenario is a lesson's own build (the eight steps through cnilab.lab.lab.Lab, or the cluster
through cnilab.cluster.cluster.Cluster) followed by its fault, applied through the same ledger.
The ledger's first entry is a ScenarioRecord: that is how every command finds the running
scenario, and why `teardown` (or `cluster down`) removes its record file with everything else.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path

from cnilab.cluster.cluster import Cluster
from cnilab.cluster.plan import ClusterPlan, build_plan
from cnilab.compat import valueclass
from cnilab.errors import CnilabError, ConfigError, MissingTool
from cnilab.kernel import require_privileges
from cnilab.lab import LAST_STEP
from cnilab.lab.lab import Lab
from cnilab.lab.steps import setup_ops
from cnilab.lab.topology import Topology
from cnilab.ledger import Ledger
from cnilab.ops import Op
from cnilab.ops.faults import ScenarioRecord, read_record, record_path, write_record
from cnilab.records import Problem
from cnilab.scenario.catalog import (
    BRIDGE_NF,
    CLUSTER,
    SCENARIOS,
    Plan,
    Scenario,
    find,
    params,
    red_blue,
)
from cnilab.scenario.grade import (
    Context,
    Verdict,
    cluster_probes,
    grade_causes,
    lab_probes,
    run_probes,
)

CLUSTER_NODES, CLUSTER_PODS = 2, 2  # controlplane and node01, two pods each


@valueclass(frozen=True)
class Running:
    """The scenario running here: what it is, on which lab, how many hints were shown."""

    scenario: Scenario
    plan: Plan
    record: ScenarioRecord
    hints: int

    @property
    def values(self) -> dict[str, str]:
        """The names and addresses its texts use."""
        return params(self.plan)


class Scenarios:
    """The scenarios of one lab identity (the global --prefix and --config)."""

    def __init__(self, topo: Topology) -> None:
        if topo.in_place:
            raise ConfigError.of("scenario_in_place")
        red_blue(topo)  # two containers, or a clear error before anything is touched
        self.topo = topo
        self.lab = Lab(topo)
        self.cluster = Cluster(build_plan(CLUSTER_NODES, CLUSTER_PODS, topo.prefix))
        # A scenario's ledger names its fault: root's alone from its first line.
        self.lab.ledger.private = self.cluster.ledger.private = True
        self.skipped: list[tuple[Path, Problem]] = []  # lines the last stop() could not read

    def __enter__(self) -> Scenarios:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the netlink sockets into the lab's namespaces (one keeps a namespace alive)."""
        self.lab.kernel.close()
        self.cluster.kernel.close()

    def _plan(self, scenario: Scenario) -> Plan:
        return self.cluster.plan if scenario.lesson == CLUSTER else self.topo

    def _ledger(self, scenario: Scenario) -> Ledger:
        return self.cluster.ledger if scenario.lesson == CLUSTER else self.lab.ledger

    # -- finding it ------------------------------------------------------------------------------

    def running(self) -> Running | None:
        """The scenario whose record is in the lab's or the cluster's ledger, if any."""
        for ledger in (self.lab.ledger, self.cluster.ledger):
            record = next((op for op in ledger.ops() if isinstance(op, ScenarioRecord)), None)
            if record is not None:
                scenario = find(record.name)
                data = read_record(Path(record.path)) or {}
                hints = data.get("hints", 0)
                return Running(scenario, self._plan(scenario), record,
                               hints if isinstance(hints, int) else 0)
        return None

    def require_running(self) -> Running:
        """The running scenario, or an error saying how to start one."""
        running = self.running()
        if running is None:
            raise CnilabError.of("scenario_none")
        return running

    def available(self) -> list[Scenario]:
        """The scenarios this machine can run (bridge netfilter is a kernel module)."""
        nf = self.lab.kernel.has_sysctl(None, BRIDGE_NF)
        return [s for s in SCENARIOS if nf or not s.needs_bridge_nf]

    # -- start -----------------------------------------------------------------------------------

    def start(self, name: str | None, rng: random.Random | None = None) -> Running:
        """Build the scenario's lab with its fault; a random available one when name is None."""
        require_privileges()
        if name is None:
            scenario = (rng or random.SystemRandom()).choice(self.available())
        else:
            scenario = find(name)
            if scenario.needs_bridge_nf and scenario not in self.available():
                raise MissingTool.of("scenario_bridge_nf")
        if self.running() is not None:
            raise CnilabError.of("scenario_running")
        ledger = self._ledger(scenario)
        record = ScenarioRecord(None, str(record_path(ledger.path)), scenario.name)
        if scenario.lesson == CLUSTER:
            with self.cluster.locked():
                if ledger.exists() and not ledger.only_mode():
                    raise CnilabError.of("scenario_cluster_up")
                self._build(ledger, record, scenario, self.cluster.up)
        else:
            with self.lab.locked():
                if ledger.exists() and not ledger.only_mode():  # a start cut at its first line
                    raise CnilabError.of("scenario_lab_up")
                self.lab.kernel.require_iptables()
                self._build(ledger, record, scenario, self._build_lab)
        return Running(scenario, self._plan(scenario), record, 0)

    def _build_lab(self) -> None:
        # Every name of every step, before anything exists: a foreign `red` stops us here and
        # not at step 3 (the cluster's up() makes the same check itself).
        ops = list(setup_ops(self.topo)) + [op for s in self.lab.steps[:LAST_STEP]
                                            for op in s.ops]
        self.lab.ledger.check_free(ops, self.lab.snapshot())
        for number in range(1, LAST_STEP + 1):
            self.lab.run_step(number, prove=False, reuse=True)

    def _build(self, ledger: Ledger, record: ScenarioRecord, scenario: Scenario,
               build: Callable[[], object]) -> None:
        target = self.cluster if scenario.lesson == CLUSTER else self.lab
        target.apply([record])  # first: every later command (and teardown) finds it
        try:
            build()
        except CnilabError:
            # Refused before anything was made (a name taken): leave no record behind.
            if [type(op) for op in ledger.ops()] == [ScenarioRecord]:
                ledger.teardown(target.kernel)
            raise
        target.apply(scenario.faults(self._plan(scenario)))

    # -- grading and help ------------------------------------------------------------------------

    def check(self, running: Running) -> Verdict:
        """Send the packets, then (once they all get through) read the fault's causes."""
        plan = running.plan
        cluster = isinstance(plan, ClusterPlan)
        with self.cluster.locked() if cluster else self.lab.locked():
            snap = self.cluster.snapshot() if cluster else self.lab.snapshot()
            jobs = cluster_probes(plan, snap) if isinstance(plan, ClusterPlan) else lab_probes(plan)
            verdict = Verdict(run_probes(jobs))
            if verdict.symptom_gone:  # the causes name the fault: not graded before
                kernel = self.cluster.kernel if cluster else self.lab.kernel
                ctx = Context(snap, kernel, plan, running.values)
                verdict.causes = grade_causes(running.scenario.causes, ctx)
            return verdict

    def next_hint(self, running: Running, total: int) -> int:
        """Count one more hint as shown (up to `total`); the number of hints to show now."""
        shown = min(running.hints + 1, total)
        write_record(Path(running.record.path), {"name": running.scenario.name, "hints": shown})
        return shown

    # -- stop ------------------------------------------------------------------------------------

    def stop(self) -> list[Op]:
        """Remove the scenario's lab or cluster, the fault and the student's changes with it;
        also a start cut before its record (its ledger holds the lab's mode alone)."""
        require_privileges()
        undone: list[Op] = []
        self.skipped = []
        for owner in (self.lab, self.cluster):
            ledger = owner.ledger
            if not (_recorded(ledger) or ledger.only_mode()):
                continue
            with owner.locked():
                self.skipped += [(ledger.path, p) for p in ledger.problems]
                undone += owner.teardown() if isinstance(owner, Lab) else owner.down()
        return undone


def _recorded(ledger: Ledger) -> bool:
    return any(isinstance(op, ScenarioRecord) for op in ledger.ops())
