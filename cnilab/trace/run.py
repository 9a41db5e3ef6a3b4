"""One trace, start to end: arguments checked, observed under the owner's lock, then read."""

from __future__ import annotations

from cnilab.owner import Owner
from cnilab.trace.observe import KernelLookup, observe
from cnilab.trace.plan import check_args
from cnilab.trace.site import Site
from cnilab.trace.verdict import TraceResult, analyse


def trace(owner: Owner, site: Site, source: str, to: str, proto: str | None = None,
          port: int | None = None) -> TraceResult:
    """Trace one packet from `source` (a role) to `to` in the eight-step Lab or a Cluster.

    Bad input is refused in one line before anything is touched; the rest holds the lock.
    """
    check_args(site, source, to, proto, port)
    with owner.locked():
        obs = observe(owner, site, source, to, proto, port)
        return analyse(obs, KernelLookup(owner.kernel), site)
