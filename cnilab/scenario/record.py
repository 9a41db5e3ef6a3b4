"""Which scenario is running, and how many hints were shown: one small JSON file in the run dir.

Written as root with runfiles (a random temp name made with O_EXCL | O_NOFOLLOW, mode 0600
whatever the umask, renamed into place); read back only if it is a regular file of ours (never
through a symlink someone planted).
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Any

from cnilab.errors import CollisionError
from cnilab.runfiles import PRIVATE_MODE, read_file, safe_dir, write_atomic

SUFFIX = ".scenario.json"


def record_path(ledger: Path) -> Path:
    """The record of the scenario running on the lab (or cluster) kept in ledger file `ledger`."""
    return ledger.with_name(ledger.stem + SUFFIX)


def write_record(path: Path, data: dict[str, Any]) -> None:
    """Replace the file at `path` with `data` as JSON, atomically, mode 0600."""
    safe_dir(path.parent)
    write_atomic(path, json.dumps(data).encode(), PRIVATE_MODE)  # the name is the answer


def read_record(path: Path) -> dict[str, Any] | None:
    """The record's data; None when there is none, or it is not a plain file of ours."""
    try:
        raw = read_file(path)
        data = json.loads(raw or b"null")
    except (CollisionError, ValueError, UnicodeDecodeError):  # planted, or not our JSON
        return None
    return data if isinstance(data, dict) else None


def remove_record(path: Path) -> None:
    """Remove the record (a symlink in its place is removed, never followed)."""
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
