"""Which scenario is running, and how many hints were shown: one small JSON file in the run dir.

Written as root into a directory other users may reach, so: a random temp name opened with
O_EXCL | O_NOFOLLOW and an explicit mode whatever the umask, then renamed into place; read back
only if it is a regular file owned by us (never through a symlink someone planted).
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import stat
from pathlib import Path
from typing import Any

MODE = 0o600  # the scenario's name is the answer: only root reads it
SUFFIX = ".scenario.json"


def record_path(ledger: Path) -> Path:
    """The record of the scenario running on the lab (or cluster) kept in ledger file `ledger`."""
    return ledger.with_name(ledger.stem + SUFFIX)


def write_record(path: Path, data: dict[str, Any]) -> None:
    """Replace the file at `path` with `data` as JSON, atomically, mode 0600."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(8)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, MODE)
    try:
        os.fchmod(fd, MODE)  # the umask may have taken bits away; never added any
        os.write(fd, json.dumps(data).encode())
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        tmp.unlink(missing_ok=True)
        raise
    os.close(fd)
    os.replace(tmp, path)  # rename replaces a planted symlink itself, never its target


def read_record(path: Path) -> dict[str, Any] | None:
    """The record's data; None when there is none, or it is not a plain file of ours."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:  # absent, or a symlink (ELOOP): nothing of ours
        return None
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(f.fileno())
        if not stat.S_ISREG(st.st_mode) or st.st_uid != os.geteuid():
            return None
        try:
            data = json.loads(f.read(65536))
        except (ValueError, UnicodeDecodeError):
            return None
    return data if isinstance(data, dict) else None


def remove_record(path: Path) -> None:
    """Remove the record (a symlink in its place is removed, never followed)."""
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
