"""The ownership ledger: what cnilab created, recorded before it is created, under a lock.

One JSON line per op in /run/cnilab/LAB.jsonl. The intent is written before the kernel call,
so a SIGKILL at any point leaves a ledger that teardown can finish (every undo is idempotent).
A ledger reads back only the op classes of its registry (default ops.OPS; a lesson with ops of
its own passes them); a line it cannot read is reported (Ledger.problems) and skipped.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import itertools
import json
import os
import re
import signal
import string
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cnilab.errors import CnilabError, CollisionError, LockedError
from cnilab.ops import OPS, AddAddress, BadEntry, Kernel, Key, Op, Proof, describe
from cnilab.state import TAG, Snapshot

RUN_DIR = "/run/cnilab"
RUN_DIR_ENV = "CNILAB_RUN_DIR"  # tests point this at their own directory


_LESSON = re.compile(r"[a-z][a-z0-9-]*\Z")
_KEPT = frozenset(string.ascii_letters + string.digits + "-_")
_MAX_ESCAPED = 120  # a file name has 255 bytes: longer escaped prefixes are hashed instead


def run_dir() -> Path:
    """Where ledgers, locks and server PID files live (CNILAB_RUN_DIR, else /run/cnilab)."""
    return Path(os.environ.get(RUN_DIR_ENV) or RUN_DIR)


def identity(lesson: str, prefix: str) -> str:
    """A lab's ledger name: the lesson and the exact prefix; two prefixes never share one.

    Letters, digits, `-` and `_` stay; any other byte becomes %XX (`.`, `%`, `@` too), so the
    escaped prefix names one prefix only. The unprefixed lab is the bare lesson name, which no
    prefixed one can be (those have an `@`); a prefix too long to escape is hashed after `#`,
    which an escaped prefix never contains.
    """
    if not _LESSON.match(lesson):
        raise ValueError(f"not a lesson name: {lesson!r}")
    if not prefix:
        return lesson
    data = prefix.encode("utf-8", "surrogatepass")
    escaped = "".join(chr(b) if chr(b) in _KEPT else f"%{b:02X}" for b in data)
    if len(escaped) > _MAX_ESCAPED:
        escaped = "#" + hashlib.sha256(data).hexdigest()
    return f"{lesson}@{escaped}"


@dataclass(frozen=True)
class Problem:
    """A ledger line that was skipped, and why (a sentence key of the [ledger] UI section)."""

    line: int
    key: str
    params: dict[str, Any] = field(default_factory=dict)

    def render(self, path: Path | str, lang: str = "en") -> str:
        """One line, in `lang`: which line of which file was skipped and why."""
        from cnilab.i18n import t

        reason = t(f"ledger.{self.key}", lang, **self.params)
        return t("ledger.skipped", lang, line=self.line, path=path, reason=reason)


@dataclass
class Record:
    """One op as the ledger holds it: the intent, and whether its completion was recorded."""

    seq: int | None
    op: Op
    done: bool = False
    proof: Proof | None = None  # noted while the op ran (a namespace's inode)

    def owned(self, kernel: Kernel) -> bool:
        """Whether what the op made is provably ours now (Op.owned)."""
        return self.op.owned(kernel, self.done, self.proof)


@dataclass
class Teardown:
    """What a teardown did: undone, newest first; kept: recorded but not proven ours."""

    undone: list[Op] = field(default_factory=list)
    kept: list[Op] = field(default_factory=list)


@dataclass
class _Parsed:
    mode: bool | None = None
    lines: int = 0
    records: list[Record] = field(default_factory=list)
    by_seq: dict[int, Record] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)


class Ledger:
    """The ops cnilab applied to one lab, in order, plus the lab's mode.

    Lines: {"in_place": B} once; per op its intent {"seq": N, "op": ...} before the kernel call,
    {"mark": N, "proof": {...}} for what the kernel showed while it ran (a namespace's inode),
    and {"done": N} once the kernel call succeeded.
    """

    def __init__(self, lab_id: str, run_dir: str | None = None,
                 ops: Mapping[str, type[Op]] = OPS) -> None:
        root = Path(run_dir) if run_dir else globals()["run_dir"]()
        self.lab_id = lab_id
        self.path = root / f"{lab_id}.jsonl"
        self.lock_path = root / f"{lab_id}.lock"
        self.registry = ops
        self._cache: _Parsed | None = None

    @classmethod
    def for_lesson(cls, lesson: str, prefix: str, run_dir: str | None = None,
                   ops: Mapping[str, type[Op]] = OPS) -> Ledger:
        """The ledger of `lesson` run under exactly `prefix` (see identity()); `ops`: its ops."""
        return cls(identity(lesson, prefix), run_dir, ops)

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

    def _parsed(self) -> _Parsed:
        if self._cache is None:
            try:
                data = self.path.read_bytes()
            except FileNotFoundError:
                data = b""
            self._cache = _Parsed()
            for line in data.splitlines():
                self._take(line)
        return self._cache

    def _take(self, raw: bytes) -> None:
        """Read one line into the cache, or note why it is skipped."""
        parsed = self._cache
        assert parsed is not None
        parsed.lines += 1
        try:
            entry = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):  # e.g. a line cut by a power loss
            parsed.problems.append(Problem(parsed.lines, "bad_json"))
            return
        try:
            self._read_entry(parsed, entry)
        except BadEntry as e:
            parsed.problems.append(Problem(parsed.lines, e.key, e.params))

    def _read_entry(self, parsed: _Parsed, entry: Any) -> None:
        if isinstance(entry, dict) and "op" not in entry:
            if "in_place" in entry:
                if len(entry) != 1 or not isinstance(entry["in_place"], bool):
                    raise BadEntry("bad_mode")
                if parsed.mode is None:
                    parsed.mode = entry["in_place"]
                return
            if "done" in entry or "mark" in entry:
                self._read_followup(parsed, entry)
                return
        op = Op.from_dict(entry, self.registry)
        seq = entry.get("seq")
        if seq is not None and (not isinstance(seq, int) or isinstance(seq, bool)
                                or seq in parsed.by_seq):
            raise BadEntry("bad_seq")
        record = Record(seq, op)
        parsed.records.append(record)
        if seq is not None:
            parsed.by_seq[seq] = record

    @staticmethod
    def _read_followup(parsed: _Parsed, entry: dict[str, Any]) -> None:
        """A completion {"done": N} or a proof {"mark": N, "proof": {...}} of intent N."""
        key = "done" if "done" in entry else "mark"
        record = parsed.by_seq.get(entry[key]) if isinstance(entry[key], int) else None
        if record is None:
            raise BadEntry("orphan")
        if key == "done":
            if len(entry) != 1:
                raise BadEntry("unknown_field", field=sorted(set(entry) - {"done"})[0])
            record.done = True
            return
        proof = entry.get("proof")
        if set(entry) != {"mark", "proof"} or not isinstance(proof, dict) or not all(
                (isinstance(v, int) and not isinstance(v, bool)) or v is None
                for v in proof.values()):
            raise BadEntry("bad_proof")
        record.proof = proof

    def _append(self, entry: dict[str, Any]) -> None:
        line = json.dumps(entry)
        self._parsed()
        _test_kill(before=True)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(line + "\n")
        self._take(line.encode())
        _test_kill(before=False)

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

    def note(self, seq: int, proof: Proof) -> None:
        """Write down what the kernel showed of op `seq`'s object while it was made."""
        self._append({"mark": seq, "proof": proof})

    def complete(self, seq: int) -> None:
        """Write down that op `seq`'s kernel call succeeded: what it made is ours."""
        self._append({"done": seq})

    def forget(self, seq: int) -> None:
        """Drop op `seq` and what follows it (its proof): its apply failed, nothing to own."""
        kept = []
        for raw in self.path.read_bytes().splitlines(keepends=True):
            with contextlib.suppress(ValueError, AttributeError):
                if json.loads(raw).get("seq") == seq:
                    break
            kept.append(raw)
        self._rewrite(kept)

    def _drop_lines(self, seq: int) -> None:
        """Drop the lines of op `seq` (intent, proof, completion), keep every other line."""
        kept = []
        for raw in self.path.read_bytes().splitlines(keepends=True):
            with contextlib.suppress(ValueError, AttributeError):
                entry = json.loads(raw)
                if seq in (entry.get("seq"), entry.get("mark"), entry.get("done")):
                    continue
            kept.append(raw)
        self._rewrite(kept)

    def _rewrite(self, kept: list[bytes]) -> None:
        tmp = self.path.with_suffix(".tmp")
        tmp.write_bytes(b"".join(kept))
        tmp.replace(self.path)
        self._cache = None

    def forget_last(self) -> None:
        """Drop the newest op (and its proof): its apply failed, so it made nothing to own."""
        if self._parsed().by_seq:
            self.forget(max(self._parsed().by_seq))

    def drop(self, ops: Iterable[Op]) -> None:
        """Drop these ops, undone for good (a finished trace's table), with their lines."""
        gone = [op.to_dict() for op in ops]
        seqs = {r.seq for r in self._parsed().records if r.op.to_dict() in gone}
        for seq in sorted((s for s in seqs if s is not None), reverse=True):
            self._drop_lines(seq)

    def records(self) -> list[Record]:
        """Every recorded op that can be read, oldest first, with its completion and proof."""
        return list(self._parsed().records)

    def ops(self) -> list[Op]:
        """Every recorded op that can be read, oldest first (see problems for the others)."""
        return [r.op for r in self._parsed().records]

    def owns(self, key: Key, kernel: Kernel | None = None) -> bool:
        """Whether a recorded op made the object named by `key` and it is provably ours.

        With a kernel, the kernel's marks decide (Op.owned); without one, completion does.
        """
        return any(key in r.op.claims() and (r.owned(kernel) if kernel else r.done)
                   for r in self._parsed().records)

    def exists(self) -> bool:
        """Whether anything is recorded."""
        return self._parsed().lines > 0

    def clear(self) -> None:
        """Forget everything (after a complete teardown)."""
        self.path.unlink(missing_ok=True)
        self._cache = _Parsed()

    def apply(self, ops: Iterable[Op], kernel: Kernel) -> list[Op]:
        """Apply ops, each written down before the kernel call, its completion after."""
        done = []
        for op in ops:
            op = op.prepare(kernel)
            seq = self.record(op)  # intent first: a crash after this is still torn down

            def note(proof: Proof, seq: int = seq) -> None:
                self.note(seq, proof)

            try:
                op.apply_noting(kernel, note)
            except CnilabError:
                # The kernel refused: nothing was made, and the name may be someone else's now.
                # (A Ctrl-C or a crash keeps the intent: undo is idempotent, the name was free.)
                self.forget(seq)
                raise
            self.complete(seq)  # only now is what it made proven ours
            done.append(op)
        return done

    def teardown(self, kernel: Kernel) -> Teardown:
        """Undo every recorded op whose object is provably ours (see teardown_plan); not clear."""
        records = [r for r in self._parsed().records if r.op.undoable()]
        # Namespaces first: what lives in one that is provably ours goes with it, unasked.
        spaces = {id(r): [k[1] for k in r.op.claims() if k[0] == "netns"] for r in records}
        proven = {id(r) for r in records if spaces[id(r)] and r.owned(kernel)}
        removed = {name for r in records if id(r) in proven for name in spaces[id(r)]}
        report, ours = Teardown(), []
        for r in records:
            if id(r) in proven:
                ours.append(r.op)
            elif not _goes_with(r.op, removed):
                (ours if not spaces[id(r)] and r.owned(kernel) else report.kept).append(r.op)
        report.undone = teardown_plan(ours, removed)
        kernel.close()  # an open netlink socket would keep a removed namespace alive
        for cls, group in _runs(report.undone):
            cls.undo_together(group, kernel)
        kernel.close()
        return report

    def is_ours(self, key: Key, snap: Snapshot, kernel: Kernel | None = None) -> bool:
        """Provably ours: a link with our alias in the kernel; a namespace we recorded making
        (with a kernel: still the very one, by its inode)."""
        if key[0] == "link":
            ns = snap.ns(key[1] or None)
            link = ns.link(key[2]) if ns else None
            return link is not None and link.alias == TAG
        return self.owns(key, kernel)

    def check_free(self, ops: Iterable[Op], snap: Snapshot, kernel: Kernel | None = None
                   ) -> None:
        """Refuse, before touching anything, names and addresses that exist and are not ours."""
        for op in ops:
            for key in op.claims():
                exists = (key[1] in snap.netns if key[0] == "netns" else
                          (ns := snap.ns(key[1] or None)) is not None and ns.link(key[2]))
                if exists and not self.is_ours(key, snap, kernel):
                    raise CollisionError.of("taken", what=describe(key))
            if isinstance(op, AddAddress) and (ns := snap.ns(op.netns)) is not None:
                holder = ns.has_address(op.cidr)
                if holder is not None and holder.name != op.dev:
                    where = f" in namespace {op.netns}" if op.netns else ""
                    raise CollisionError.of("address_taken", cidr=op.cidr, link=holder.name,
                                            where=where)


def _goes_with(op: Op, removed: Collection[str | None]) -> bool:
    where = op.lives_in()
    return bool(where) and all(ns in removed for ns in where)


def teardown_plan(ops: Sequence[Op], removed: Collection[str | None] | None = None) -> list[Op]:
    """The ops to undo: processes first, then newest first; what lives inside the namespaces
    being removed (default: every namespace the ops make) goes with them."""
    if removed is None:
        removed = {key[1] for op in ops for key in op.claims() if key[0] == "netns"}
    todo = [op for op in reversed(ops) if op.undoable() and not _goes_with(op, removed)]
    return [op for op in todo if op.undo_first] + [op for op in todo if not op.undo_first]


def _runs(ops: Sequence[Op]) -> Iterator[tuple[type[Op], list[Op]]]:
    """Ops in order, grouped into runs of one class (undone together)."""
    for cls, group in itertools.groupby(ops, key=type):
        yield cls, list(group)


TEST_KILL_ENV = "CNILAB_TEST_KILL_AT"
_writes = [0]


def _test_kill(before: bool) -> None:
    """Test hook (never set outside tests): CNILAB_TEST_KILL_AT=ledger:N kills this process
    right after its N-th ledger write, ledger-before:N right before it (after the kernel call
    it records); a third part names another signal (ledger:N:SIGINT). Tests then know exactly
    where the run was cut, instead of guessing from timing."""
    spec = os.environ.get(TEST_KILL_ENV)
    if not spec:
        return
    where, _, rest = spec.partition(":")
    number, _, signame = rest.partition(":")
    if before:
        _writes[0] += 1
    if where == ("ledger-before" if before else "ledger") and number == str(_writes[0]):
        os.kill(os.getpid(), getattr(signal, signame or "SIGKILL"))
