"""The trace's only change to the kernel: a temporary nftables table, owned through the ledger.

The table sets the `nftrace` bit on the probe's packets (and on ARP) in one namespace, so that
every chain they pass reports them. It is recorded in the ledger before it is made and deleted
when the trace ends; a trace killed before that is cleaned by the next trace or by `teardown`.
"""

from __future__ import annotations

from cnilab.compat import valueclass
from cnilab.errors import CnilabError, CollisionError, KernelError
from cnilab.names import TAG
from cnilab.ops import Evidence, KernelApi, Op
from cnilab.state import Snapshot

TABLE = "cnilab_trace"


def table_comment(listing: str) -> str | None:
    """The comment of the table itself in `nft list table ...` (the line right after its
    header), never a chain's or a rule's further down; None when it has none."""
    lines = listing.splitlines()
    for i, line in enumerate(lines[:-1]):
        if line.startswith("table "):
            nxt = lines[i + 1].strip()
            if nxt.startswith('comment "') and nxt.endswith('"'):
                return nxt[len('comment "'):-1]
            return None
    return None


@valueclass(frozen=True)
class AddTraceTable(Op):
    """nft create table FAMILY cnilab_trace; add chain ...; add rule ... (one per family)."""

    families: str = "inet"  # the tables made, space-separated: "inet arp bridge"
    script: str = ""  # the nft commands, ';'-separated, as typed after `nft`
    mark: str = TAG  # the comment each table carries, made in the same transaction: the lab's

    def apply(self, kernel: KernelApi) -> None:
        # `create table` (not `add`) fails if a table of that name exists: never adopt one.
        try:
            kernel.nft(self.netns, self.script)
        except KernelError as e:
            if "File exists" in str(e):
                raise CollisionError.of("trace_taken", table=TABLE,
                                        where=self.netns or "this namespace") from e
            raise

    def undo(self, kernel: KernelApi) -> None:
        k = kernel
        try:
            k.nft(self.netns, self._delete(self.families.split()))
        except CnilabError:
            # One nft call is one transaction: a table already gone fails the whole delete,
            # so delete what is still there (nothing, when the namespace itself is gone).
            present = {f for f, name in k.nft_tables(self.netns) if name == TABLE}
            left = [f for f in self.families.split() if f in present]
            if left:
                k.nft(self.netns, self._delete(left), missing_ok=True)

    def owned(self, kernel: KernelApi, done: bool, proof: Evidence | None) -> bool:
        # Every table of that name still here carries this lab's mark as its own comment: ours
        # even when the trace was killed before its completion line, and never one someone
        # else (or another lab) made after a trace was killed before its nft ran.
        k = kernel
        present = {f for f, name in k.nft_tables(self.netns) if name == TABLE}
        return all(table_comment(k.nft_table(self.netns, f, TABLE)) == self.mark
                   for f in self.families.split() if f in present)

    @staticmethod
    def _delete(families: list[str]) -> str:
        return "; ".join(f"delete table {f} {TABLE}" for f in families)

    def satisfied(self, snap: Snapshot) -> bool:
        return False  # a trace table is made for one trace, never found already there

    def argv(self) -> list[str]:
        return ["nft", self.script]

    def undo_argv(self) -> list[str] | None:
        return ["nft", self._delete(self.families.split())]
