"""The ownership ledger: what cnilab created, recorded before it is created, under a lock.

One JSON line per op in /run/cnilab/LAB.jsonl. The intent is written before the kernel call,
so a SIGKILL at any point leaves a ledger that teardown can finish (every undo is idempotent).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from cnilab.errors import CnilabError, CollisionError, LockedError
from cnilab.ops import AddAddress, Kernel, Key, Op, describe
from cnilab.scenario import faults as _faults  # noqa: F401  (a lab's ledger may hold fault ops)
from cnilab.state import TAG, Snapshot

RUN_DIR = "/run/cnilab"
RUN_DIR_ENV = "CNILAB_RUN_DIR"  # tests point this at their own directory


def run_dir() -> Path:
    """Where ledgers, locks and server PID files live (CNILAB_RUN_DIR, else /run/cnilab)."""
    return Path(os.environ.get(RUN_DIR_ENV) or RUN_DIR)


class Ledger:
    """The ops cnilab applied to one lab, in order, plus the lab's mode."""

    def __init__(self, lab_id: str, run_dir: str | None = None) -> None:
        root = Path(run_dir) if run_dir else globals()["run_dir"]()
        self.path = root / f"{lab_id}.jsonl"
        self.lock_path = root / f"{lab_id}.lock"
        self._cache: list[dict[str, Any]] | None = None

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """Hold this lab for the duration; a second cnilab process gets LockedError at once."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
                raise LockedError.of("locked", pid=holder) from None
            os.ftruncate(fd, 0)
            os.pwrite(fd, str(os.getpid()).encode(), 0)
            self._cache = None
            yield
        finally:
            os.close(fd)  # closing drops the flock

    def _lines(self) -> list[dict[str, Any]]:
        if self._cache is None:
            self._cache = []
            try:
                text = self.path.read_text(encoding="utf-8")
            except FileNotFoundError:
                text = ""
            for line in text.splitlines():
                with contextlib.suppress(json.JSONDecodeError):  # a line cut by a crash
                    self._cache.append(json.loads(line))
        return self._cache

    def _append(self, entry: dict[str, Any]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps(entry) + "\n")
        self._lines().append(entry)

    def mode(self) -> bool | None:
        """in_place of the lab this ledger belongs to; None when the ledger is empty."""
        return next((e["in_place"] for e in self._lines() if "in_place" in e), None)

    def set_mode(self, in_place: bool) -> None:
        """Record the lab's mode once, before its first op."""
        if self.mode() is None:
            self._append({"in_place": in_place})

    def record(self, op: Op) -> None:
        """Write down an op before it is applied."""
        self._append(op.to_dict())

    def forget_last(self) -> None:
        """Drop the last op: its apply failed, so it made nothing to own."""
        lines = self._lines()[:-1]
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text("".join(json.dumps(e) + "\n" for e in lines), encoding="utf-8")
        tmp.replace(self.path)
        self._cache = lines

    def ops(self) -> list[Op]:
        """Every recorded op, oldest first."""
        return [Op.from_dict(e) for e in self._lines() if "op" in e]

    def owns(self, key: Key) -> bool:
        """Whether cnilab recorded creating the object named by `key`."""
        return any(key in op.claims() for op in self.ops())

    def exists(self) -> bool:
        """Whether anything is recorded."""
        return bool(self._lines())

    def clear(self) -> None:
        """Forget everything (after a complete teardown)."""
        self.path.unlink(missing_ok=True)
        self._cache = []

    def apply(self, ops: Iterable[Op], kernel: Kernel) -> list[Op]:
        """Apply ops, each written down before the kernel call (crash-safe ownership)."""
        done = []
        for op in ops:
            op = op.prepare(kernel)
            self.record(op)  # intent first: a crash after this is still torn down
            try:
                op.apply(kernel)
            except CnilabError:
                # The kernel refused: nothing was made, and the name may be someone else's now.
                # (A Ctrl-C or a crash keeps the intent: undo is idempotent, the name was free.)
                self.forget_last()
                raise
            done.append(op)
        return done

    def is_ours(self, key: Key, snap: Snapshot) -> bool:
        """Recorded by us, or (a link) tagged with our alias in the kernel."""
        if self.owns(key):
            return True
        if key[0] == "link":
            ns = snap.ns(key[1] or None)
            link = ns.link(key[2]) if ns else None
            return link is not None and link.alias == TAG
        return False

    def check_free(self, ops: Iterable[Op], snap: Snapshot) -> None:
        """Refuse, before touching anything, names and addresses that exist and are not ours."""
        for op in ops:
            for key in op.claims():
                exists = (key[1] in snap.netns if key[0] == "netns" else
                          (ns := snap.ns(key[1] or None)) is not None and ns.link(key[2]))
                if exists and not self.is_ours(key, snap):
                    raise CollisionError.of("taken", what=describe(key))
            if isinstance(op, AddAddress) and (ns := snap.ns(op.netns)) is not None:
                holder = ns.has_address(op.cidr)
                if holder is not None and holder.name != op.dev:
                    where = f" in namespace {op.netns}" if op.netns else ""
                    raise CollisionError.of("address_taken", cidr=op.cidr, link=holder.name,
                                            where=where)


def teardown_plan(ops: Sequence[Op]) -> list[Op]:
    """The ops to undo, newest first: what lives inside a namespace we remove goes with it."""
    owned_ns = {key[1] for op in ops for key in op.claims() if key[0] == "netns"}
    return [op for op in reversed(ops)
            if op.undoable() and (op.netns not in owned_ns or op.outlives_netns)]
