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
import json
import os
import re
import string
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cnilab.errors import CnilabError, CollisionError, LockedError
from cnilab.ops import OPS, AddAddress, BadEntry, Kernel, Key, Op, describe
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
class _Parsed:
    mode: bool | None = None
    lines: int = 0
    ops: list[Op] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)


class Ledger:
    """The ops cnilab applied to one lab, in order, plus the lab's mode."""

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
            if isinstance(entry, dict) and "op" not in entry and "in_place" in entry:
                if len(entry) != 1 or not isinstance(entry["in_place"], bool):
                    raise BadEntry("bad_mode")
                if parsed.mode is None:
                    parsed.mode = entry["in_place"]
                return
            parsed.ops.append(Op.from_dict(entry, self.registry))
        except BadEntry as e:
            parsed.problems.append(Problem(parsed.lines, e.key, e.params))

    def _append(self, entry: dict[str, Any]) -> None:
        line = json.dumps(entry)
        self._parsed()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(line + "\n")
        self._take(line.encode())

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

    def record(self, op: Op) -> None:
        """Write down an op before it is applied."""
        self._append(op.to_dict())

    def forget_last(self) -> None:
        """Drop the last line (an op whose apply failed, so it made nothing to own)."""
        lines = self.path.read_bytes().splitlines(keepends=True)[:-1]
        tmp = self.path.with_suffix(".tmp")
        tmp.write_bytes(b"".join(lines))
        tmp.replace(self.path)
        self._cache = None

    def ops(self) -> list[Op]:
        """Every recorded op that can be read, oldest first (see problems for the others)."""
        return list(self._parsed().ops)

    def owns(self, key: Key) -> bool:
        """Whether cnilab recorded creating the object named by `key`."""
        return any(key in op.claims() for op in self.ops())

    def exists(self) -> bool:
        """Whether anything is recorded."""
        return self._parsed().lines > 0

    def clear(self) -> None:
        """Forget everything (after a complete teardown)."""
        self.path.unlink(missing_ok=True)
        self._cache = _Parsed()

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
