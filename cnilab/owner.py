"""What every lesson's owner is: one lab's kernel and ledger, used under the lab's lock.

The eight-step Lab, the Cluster and the CNI Runtime are owners. Everything they make goes through
`apply` (recorded in the ledger before the kernel call); a trace or a scenario that builds on a
lesson uses the same seam, so the lesson's teardown finds what they made too.
"""

from __future__ import annotations

from collections.abc import Iterable
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cnilab.kernel import Kernel
    from cnilab.ledger import Ledger
    from cnilab.ops import Op
    from cnilab.state import Snapshot


class Owner:
    """A lab's owner: the kernel it acts through, the ledger that proves what it made."""

    kernel: Kernel
    ledger: Ledger

    def locked(self) -> AbstractContextManager[None]:
        """Check privileges, then hold this lab's lock (one cnilab process per lab at a time)."""
        from cnilab.kernel import require_privileges

        require_privileges()
        return self.ledger.lock()

    def apply(self, ops: Iterable[Op]) -> list[Op]:
        """Apply ops through the ledger: each recorded before it is made."""
        return self.ledger.apply(ops, self.kernel)

    def snapshot(self) -> Snapshot:
        """What the kernel holds of this lab now."""
        raise NotImplementedError
