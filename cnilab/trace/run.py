"""One trace, start to end: observe under the lab's lock, then read what was seen."""

from __future__ import annotations

from typing import TYPE_CHECKING

from cnilab.trace.observe import KernelLookup, Observation, observe
from cnilab.trace.verdict import TraceResult, analyse

if TYPE_CHECKING:
    from cnilab.lab import Lab


def run_trace(lab: Lab, source: str, to: str, proto: str | None = None,
              port: int | None = None) -> tuple[TraceResult, Observation, KernelLookup]:
    """Trace one packet from `source` (a role) to `to`; the result, and what it was read from."""
    with lab.locked():
        obs = observe(lab, source, to, proto, port)
        lookup = KernelLookup(lab)
        return analyse(obs, lookup, lab.topo), obs, lookup
