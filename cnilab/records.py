"""A ledger's lines as data: each line read, checked, and turned into records or a Problem.

Lines: {"in_place": B} once; per op its intent {"seq": N, "op": ...} before the kernel call,
{"mark": N, "proof": {...}} for what the kernel showed while it ran (a namespace's inode), and
{"done": N} once the kernel call succeeded. A line that is none of these is a Problem: reported
in one line and skipped, never a traceback that stops a teardown.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from cnilab.compat import field, valueclass
from cnilab.ops import BadEntry, Evidence, KernelApi, Op


@valueclass(frozen=True)
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


@valueclass
class Record:
    """One op as the ledger holds it: the intent, its proof, whether it was completed."""

    seq: int | None
    op: Op
    done: bool = False
    proof: Evidence | None = None  # noted while the op ran (a namespace's inode)
    lines: list[int] = field(default_factory=list)  # the file's lines that make this record

    def owned(self, kernel: KernelApi) -> bool:
        """Whether what the op made is provably ours now (Op.owned)."""
        return self.op.owned(kernel, self.done, self.proof)


@valueclass
class Parsed:
    """Everything read from one ledger file."""

    mode: bool | None = None
    lines: int = 0
    records: list[Record] = field(default_factory=list)
    by_seq: dict[int, Record] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)

    def take(self, raw: bytes, registry: Mapping[str, type[Op]]) -> None:
        """Read the next line, or note why it is skipped."""
        self.lines += 1
        try:
            entry = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):  # e.g. a cut line
            self.problems.append(Problem(self.lines, "bad_json"))
            return
        try:
            self._entry(entry, registry)
        except BadEntry as e:
            self.problems.append(Problem(self.lines, e.key, e.params))

    def _entry(self, entry: Any, registry: Mapping[str, type[Op]]) -> None:
        if isinstance(entry, dict) and "op" not in entry:
            if "in_place" in entry:
                if len(entry) != 1 or not isinstance(entry["in_place"], bool):
                    raise BadEntry("bad_mode")
                if self.mode is None:
                    self.mode = entry["in_place"]
                return
            if "done" in entry or "mark" in entry:
                self._followup(entry)
                return
        op = Op.from_dict(entry, registry)
        seq = entry.get("seq")
        if seq is not None and (not _is_int(seq) or seq in self.by_seq):
            raise BadEntry("bad_seq")
        record = Record(seq, op, lines=[self.lines])
        self.records.append(record)
        if seq is not None:
            self.by_seq[seq] = record

    def _followup(self, entry: dict[str, Any]) -> None:
        """A completion {"done": N} or a proof {"mark": N, "proof": {...}} of intent N."""
        key = "done" if "done" in entry else "mark"
        record = self.by_seq.get(entry[key]) if _is_int(entry[key]) else None
        if record is None:
            raise BadEntry("orphan")
        if key == "done":
            if len(entry) != 1:
                raise BadEntry("unknown_field", field=sorted(set(entry) - {"done"})[0])
            record.done = True
        else:
            proof = entry.get("proof")
            if set(entry) != {"mark", "proof"} or not isinstance(proof, dict) or not all(
                    _is_int(v) or v is None for v in proof.values()):
                raise BadEntry("bad_proof")
            record.proof = proof
        record.lines.append(self.lines)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
