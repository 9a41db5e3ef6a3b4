"""The ownership ledger: what cnilab created, recorded before it is created, under a lock.

One JSON line per op in /run/cnilab/LAB.jsonl. The intent is written before the kernel call,
so a SIGKILL at any point leaves a ledger that teardown can finish (every undo is idempotent).
A ledger reads back only the op classes of its registry (default ops.OPS; a lesson with ops of
its own passes them); a line it cannot read is reported (Ledger.problems) and skipped.
"""

from __future__ import annotations

import contextlib
import fcntl
import itertools
import json
import os
import signal
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from cnilab.compat import field, valueclass
from cnilab.errors import CnilabError, CollisionError, LockedError
from cnilab.names import TAG, Identity
from cnilab.ops import OPS, AddAddress, Evidence, KernelApi, Key, Op, describe, teardown_plan
from cnilab.records import Parsed, Problem, Record
from cnilab.runfiles import (
    FILE_MODE,
    PRIVATE_MODE,
    append_file,
    open_file,
    read_file,
    safe_dir,
    same_file,
    unwritable,
    write_atomic,
)
from cnilab.state import Snapshot

RUN_DIR = "/run/cnilab"
RUN_DIR_ENV = "CNILAB_RUN_DIR"  # tests point this at their own directory


def run_dir() -> Path:
    """Where ledgers, locks and server PID files live (CNILAB_RUN_DIR, else /run/cnilab)."""
    return Path(os.environ.get(RUN_DIR_ENV) or RUN_DIR)


@valueclass
class Teardown:
    """What a teardown did: undone, in the order undone; kept: recorded, not proven ours."""

    undone: list[Op] = field(default_factory=list)
    kept: list[Op] = field(default_factory=list)


class Ledger:
    """The ops cnilab applied to one lab, in order, plus the lab's mode.

    Lines: {"in_place": B} once; per op its intent {"seq": N, "op": ...} before the kernel call,
    {"mark": N, "proof": {...}} for what the kernel showed while it ran (a namespace's inode),
    and {"done": N} once the kernel call succeeded.
    """

    def __init__(self, lab_id: str, folder: str | None = None,
                 ops: Mapping[str, type[Op]] = OPS, mark: str = TAG) -> None:
        root = Path(folder) if folder else run_dir()
        self.lab_id = lab_id
        self.mark = mark  # what the lab's links carry as their alias (names.Identity.mark)
        self.path = root / f"{lab_id}.jsonl"
        self.lock_path = root / f"{lab_id}.lock"
        self.registry = ops
        self.private = False  # root-only (0600): set for a ledger that may name an answer
        self._cache: Parsed | None = None
        self._dir_checked = False

    @classmethod
    def of(cls, lab: Identity, folder: str | None = None,
           ops: Mapping[str, type[Op]] = OPS) -> Ledger:
        """The ledger of one lab (its lesson and exact prefix); `ops`: the ops it records."""
        return cls(lab.lab_id, folder, ops, lab.mark)

    def _dir(self) -> None:
        """The run directory, made or checked once (mode 0755, root's, no symlink)."""
        if not self._dir_checked:
            safe_dir(self.path.parent)
            self._dir_checked = True

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """Hold this lab for the duration; a second cnilab process gets LockedError at once.

        A lock file is ours only while its name still leads to the file we locked (checked after
        flock: a file removed meanwhile is opened again). Released with no ledger left (after a
        teardown), it is removed while still held: a process that opened it before then finds
        it gone once it holds it, and opens the new one.
        """
        self._dir()
        fd = self._locked_fd()
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, str(os.getpid()).encode(), 0)
            self._cache = None
            yield
        finally:
            try:
                if not os.path.lexists(self.path) and same_file(fd, self.lock_path):
                    self.lock_path.unlink()
            finally:
                os.close(fd)  # closing drops the flock

    def _locked_fd(self) -> int:
        """The lock file, opened and held (flock), still under its name."""
        while True:
            try:
                fd = open_file(self.lock_path, os.O_RDWR | os.O_CREAT, PRIVATE_MODE)
            except OSError as e:  # a read-only or full run folder
                raise unwritable(self.lock_path, e) from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
                os.close(fd)
                raise LockedError.of("locked", pid=holder) from None
            except BaseException:
                os.close(fd)
                raise
            if same_file(fd, self.lock_path):
                return fd
            os.close(fd)  # removed by its last holder after we opened it: open the new one

    def _parsed(self) -> Parsed:
        if self._cache is None:
            data = None
            if self.path.parent.is_dir():  # checked before a line of it is believed
                self._dir()
                data = read_file(self.path)
            self._cache = Parsed()
            for line in (data or b"").splitlines():
                self._cache.take(line, self.registry)
        return self._cache

    def _append(self, entry: dict[str, Any]) -> None:
        line = json.dumps(entry)
        parsed = self._parsed()
        _test_kill(True, entry)
        self._dir()
        # No cache until the line is both written and taken: a Ctrl-C in between would leave
        # a line on disk the cache lacks, and forget() (which drops by the cache) would keep it.
        self._cache = None
        private = self.private or any(r.op.private for r in parsed.records) or (
            entry.get("op") in {name for name, cls in self.registry.items() if cls.private})
        append_file(self.path, (line + "\n").encode(), self._mode(private))
        parsed.take(line.encode(), self.registry)
        self._cache = parsed
        _test_kill(False, entry)

    def _drop_lines(self, drop: set[int]) -> None:
        """Rewrite the ledger without these lines (1-based), or remove it when no op is left."""
        lines = (read_file(self.path) or b"").splitlines(keepends=True)
        kept = [raw for i, raw in enumerate(lines, 1) if i not in drop]
        dropped = {id(r) for r in self._parsed().records if set(r.lines) <= drop}
        if all(id(r) in dropped for r in self._parsed().records):
            self.clear()
            return
        write_atomic(self.path, b"".join(kept), self._mode(
            any(r.op.private for r in self._parsed().records)))
        self._cache = None

    def _mode(self, private: bool) -> int:
        """The ledger file's mode: 0600 when it names something secret (a scenario's fault)."""
        return PRIVATE_MODE if private or self.private else FILE_MODE

    @property
    def problems(self) -> list[Problem]:
        """The lines that were skipped (unreadable, unknown op, malformed field), in order."""
        return list(self._parsed().problems)

    def mode(self) -> bool | None:
        """in_place of the lab this ledger belongs to; None when the ledger is empty."""
        return self._parsed().mode

    def set_mode(self, in_place: bool) -> None:
        """Record the lab's mode once, before its first op."""
        if self.mode() is None:
            self._append({"in_place": in_place})

    def record(self, op: Op) -> int:
        """Write down an op before it is applied; its sequence number."""
        seq = max(self._parsed().by_seq, default=0) + 1
        self._append({"seq": seq, **op.to_dict()})
        return seq

    def note(self, seq: int, proof: Evidence) -> None:
        """Write down what the kernel showed of op `seq`'s object while it was made."""
        self._append({"mark": seq, "proof": proof})

    def complete(self, seq: int) -> None:
        """Write down that op `seq`'s kernel call succeeded: what it made is ours."""
        self._append({"done": seq})

    def forget_intent(self, seq: int) -> None:
        """Drop op `seq` with its proof: its apply failed, so it made nothing to own."""
        record = self._parsed().by_seq.get(seq)
        if record is not None:
            self._drop_lines(set(record.lines))

    def forget(self, ops: Iterable[Op]) -> None:
        """Drop these ops' records (they were undone); the rest stays recorded."""
        wanted = list(ops)
        drop: set[int] = set()
        for record in self._parsed().records:
            if record.op in wanted:
                wanted.remove(record.op)
                drop.update(record.lines)
        if drop:
            self._drop_lines(drop)

    def records(self) -> list[Record]:
        """Every recorded op that can be read, oldest first, with its completion and proof."""
        return list(self._parsed().records)

    def ops(self) -> list[Op]:
        """Every recorded op that can be read, oldest first (see problems for the others)."""
        return [r.op for r in self._parsed().records]

    def owns(self, key: Key, kernel: KernelApi | None = None) -> bool:
        """Whether a recorded op made the object named by `key` and it is provably ours.

        With a kernel, the kernel's marks decide (Op.owned); without one, completion does.
        """
        return any(key in r.op.claims() and (r.owned(kernel) if kernel else r.done)
                   for r in self._parsed().records)

    def exists(self) -> bool:
        """Whether anything is recorded."""
        return self._parsed().lines > 0

    def only_mode(self) -> bool:
        """Whether the ledger holds its mode line and nothing else: a run cut before its first
        op made nothing (clear() removes it)."""
        parsed = self._parsed()
        return parsed.lines > 0 and not parsed.records and not parsed.problems

    def clear(self) -> None:
        """Forget everything (after a complete teardown)."""
        self.path.unlink(missing_ok=True)
        self._cache = Parsed()

    def apply(self, ops: Iterable[Op], kernel: KernelApi) -> list[Op]:
        """Apply ops, each written down before the kernel call, its completion after."""
        done = []
        for op in ops:
            op = op.prepare(kernel)
            seq = self.record(op)  # intent first: a crash after this is still torn down
            unwritten: list[CnilabError] = []

            def note(proof: Evidence, seq: int = seq,
                     unwritten: list[CnilabError] = unwritten) -> None:
                try:
                    self.note(seq, proof)
                except CnilabError as e:  # the run folder is full: the object may exist
                    unwritten.append(e)
                    raise

            try:
                op.apply_noting(kernel, note)
            except CnilabError as e:
                # The kernel refused: nothing was made, and the name may be someone else's now.
                # (A Ctrl-C, a crash or a proof left unwritten keeps the intent: undo is
                # idempotent, the name was free.)
                if e not in unwritten:
                    self.forget_intent(seq)
                raise
            self.complete(seq)  # only now is what it made proven ours
            done.append(op)
        return done

    def teardown(self, kernel: KernelApi, ops: Sequence[Op] | None = None) -> Teardown:
        """Undo `ops` (default: every recorded op) whose objects are provably ours, in
        teardown_plan's order, then forget them. An undo the kernel refuses stays recorded (run
        teardown again) while the rest still goes; the first refusal is raised at the end."""
        records = self._chosen(ops)
        report, ours = Teardown(), []
        # Namespaces first: what lives in one that is provably ours goes with it, unasked.
        spaces = {id(r): [k[1] for k in r.op.claims() if k[0] == "netns" and r.op.undoable()]
                  for r in records}
        proven = {id(r) for r in records if spaces[id(r)] and r.owned(kernel)}
        removed = {name for r in records if id(r) in proven for name in spaces[id(r)]}
        for r in records:
            if id(r) in proven:
                ours.append(r.op)
            elif r.op.undoable() and not r.op.goes_with(removed):
                (ours if not spaces[id(r)] and r.owned(kernel) else report.kept).append(r.op)
        failed: list[tuple[list[Op], CnilabError]] = []
        kernel.close()  # an open netlink socket would keep a removed namespace alive
        for cls, group in _runs(teardown_plan(ours, removed)):
            try:
                cls.undo_together(group, kernel)
            except CnilabError as e:
                failed.append((group, e))
                continue
            report.undone += group
        kernel.close()
        refused = [op for group, _ in failed for op in group]
        self.forget([r.op for r in records if r.op not in refused])
        if failed:
            raise failed[0][1]
        return report

    def undo(self, kernel: KernelApi, ops: Sequence[Op] | None = None) -> list[Op]:
        """teardown(): the ops undone."""
        return self.teardown(kernel, ops).undone

    def _chosen(self, ops: Sequence[Op] | None) -> list[Record]:
        records = self._parsed().records
        if ops is None:
            return list(records)
        wanted, chosen = list(ops), []
        for record in records:
            if record.op in wanted:
                wanted.remove(record.op)
                chosen.append(record)
        return chosen

    def is_ours(self, key: Key, snap: Snapshot, kernel: KernelApi | None = None) -> bool:
        """Provably ours: a link with this lab's mark in the kernel; a namespace we recorded
        making (with a kernel: still the very one, by its inode)."""
        if key[0] == "link":
            ns = snap.ns(key[1] or None)
            link = ns.link(key[2]) if ns else None
            return link is not None and link.alias == self.mark
        return self.owns(key, kernel)

    def check_no_other_lab(self, ops: Iterable[Op], snap: Snapshot) -> None:
        """Refuse links these ops name that carry another lab's mark: already there is not done
        for this lab when another lab made it (two --in-place labs in one namespace). A link a
        student typed by hand carries no mark and counts as done."""
        for op in ops:
            for key in op.claims():
                other = _other_lab(key, snap)
                if other is not None and other != self.mark:
                    raise CollisionError.of("taken_by_lab", what=describe(key),
                                            lab=other.removeprefix(TAG + ":") or TAG)

    def check_free(self, ops: Iterable[Op], snap: Snapshot, kernel: KernelApi | None = None
                   ) -> None:
        """Refuse, before touching anything, names and addresses that exist and are not ours."""
        for op in ops:
            for key in op.claims():
                exists = (key[1] in snap.netns if key[0] == "netns" else
                          (ns := snap.ns(key[1] or None)) is not None and ns.link(key[2]))
                if exists and not self.is_ours(key, snap, kernel):
                    self.check_no_other_lab([op], snap)
                    raise CollisionError.of("taken", what=describe(key))
            if isinstance(op, AddAddress) and (ns := snap.ns(op.netns)) is not None:
                holder = ns.has_address(op.cidr)
                if holder is not None and holder.name != op.dev:
                    where = f" in namespace {op.netns}" if op.netns else ""
                    raise CollisionError.of("address_taken", cidr=op.cidr, link=holder.name,
                                            where=where)


def _other_lab(key: Key, snap: Snapshot) -> str | None:
    """The cnilab mark a claimed link carries (any lab's, ours too); None when it has none."""
    if key[0] != "link":
        return None
    ns = snap.ns(key[1] or None)
    link = ns.link(key[2]) if ns else None
    alias = link.alias if link else None
    return alias if alias == TAG or (alias or "").startswith(TAG + ":") else None


def _runs(ops: Sequence[Op]) -> Iterator[tuple[type[Op], list[Op]]]:
    """Ops in order, grouped into runs of one class (undone together)."""
    for cls, group in itertools.groupby(ops, key=type):
        yield cls, list(group)


TEST_KILL_ENV = "CNILAB_TEST_KILL_AT"
_writes = [0]


def _test_kill(before: bool, entry: dict[str, Any]) -> None:
    """Test hook (never set outside tests), CNILAB_TEST_KILL_AT=WHERE:WHAT[:SIGNAL]: this
    process kills itself (SIGKILL unless a signal is named) right after its N-th ledger write
    (ledger:N), right before it, i.e. after the kernel call it records (ledger-before:N), or
    right after the first intent of an op class (op:StartComponent). Tests then know exactly
    where the run was cut, instead of guessing from timing."""
    spec = os.environ.get(TEST_KILL_ENV)
    if not spec:
        return
    where, _, rest = spec.partition(":")
    what, _, signame = rest.partition(":")
    if before:
        _writes[0] += 1
    hit = (what == str(_writes[0]) and where == ("ledger-before" if before else "ledger")) or (
        where == "op" and not before and entry.get("op") == what)
    if hit:
        os.kill(os.getpid(), getattr(signal, signame or "SIGKILL"))
