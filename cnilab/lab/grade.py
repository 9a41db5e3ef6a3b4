"""Grading: does the kernel hold what step N makes, whoever made it? One fact per op."""

from __future__ import annotations

from cnilab.compat import asdict, valueclass
from cnilab.i18n import t
from cnilab.lab.topology import Topology
from cnilab.ops import Op, Step
from cnilab.state import Snapshot


@valueclass(frozen=True)
class Fact:
    """One expected fact of one step, and whether the kernel holds it."""

    step: int
    op: Op
    ok: bool

    def text(self, topo: Topology, lang: str) -> str:
        """The fact (when held) or what is missing (when not), in `lang`."""
        params = asdict(self.op)
        params["where"] = where(self.op.netns, topo, lang)
        params["rule"] = " ".join(params.get("spec", ()))
        section = "fact" if self.ok else "missing"
        return t(f"{section}.{type(self.op).__name__}", lang, **params)

    def hint(self, topo: Topology) -> str:
        """The command that would make the fact true, typed on the node."""
        return self.op.command(topo.node)


def where(netns: str | None, topo: Topology, lang: str) -> str:
    """A namespace as a student names it: 'the node', or the namespace's name."""
    return t("where.node", lang) if netns == topo.node else str(netns)


def grade(steps: list[Step], snap: Snapshot) -> list[Fact]:
    """Every fact of the given steps against the observed state."""
    return [Fact(s.number, op, op.satisfied(snap)) for s in steps for op in s.ops]


def steps_so_far(steps: tuple[Step, ...], snap: Snapshot, last: int) -> list[Step]:
    """Steps 1..k, k the highest step (up to `last`) of which anything exists yet (at least 1)."""
    started = [s.number for s in steps[:last] if any(op.satisfied(snap) for op in s.ops)]
    return list(steps[: max(started, default=1)])
