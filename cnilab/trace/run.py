"""One trace, start to end: observe under the owner's lock, then read what was seen."""

from __future__ import annotations

from cnilab.trace.observe import KernelLookup, Observation, Owner, observe
from cnilab.trace.site import Site
from cnilab.trace.verdict import TraceResult, analyse


def run_trace(owner: Owner, site: Site, source: str, to: str, proto: str | None = None,
              port: int | None = None) -> tuple[TraceResult, Observation, KernelLookup]:
    """Trace one packet from `source` (a role) to `to`; the result, and what it was read from.

    `owner` (the eight-step Lab or a Cluster) must be held locked by the caller.
    """
    obs = observe(owner, site, source, to, proto, port)
    lookup = KernelLookup(owner.kernel)
    return analyse(obs, lookup, site), obs, lookup
