"""A trace run in the terminal, shown on the page.

`cnilab trace` (and `cluster trace`) leave their result, in every language, in the lab's run
folder: LAB.trace.json, root's only (0600), written through runfiles (no symlink followed, never
half a file), removed by the lab's teardown. `serve` learns that it landed from inotify (no
polling) and reads it; the page never runs a command.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cnilab.errors import CnilabError
from cnilab.i18n import LANGS
from cnilab.kernel.events import (
    IN_CLOEXEC,
    IN_CREATE,
    IN_DELETE,
    IN_MOVED_FROM,
    IN_MOVED_TO,
    LIBC,
    parse_inotify,
)
from cnilab.ledger import run_dir
from cnilab.render.trace import title, to_json, verdict_line
from cnilab.runfiles import PRIVATE_MODE, read_file, safe_dir, write_atomic
from cnilab.trace.verdict import TraceResult

IN_CLOSE_WRITE = 0x8
MASK = IN_CREATE | IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO | IN_CLOSE_WRITE


def trace_path(lab_id: str, folder: Path | None = None) -> Path:
    """Where a lab's last trace is left: LAB.trace.json beside its ledger."""
    return (folder or run_dir()) / f"{lab_id}.trace.json"


def trace_data(result: TraceResult, at: float) -> dict[str, Any]:
    """A trace as the page shows it: the --json form, its title and verdict, per language."""
    data: dict[str, Any] = {"at": at}
    for lang in LANGS:
        ok, verdict, hint = verdict_line(result, lang)
        data[lang] = {**to_json(result, lang), "title": title(result, lang), "ok": ok,
                      "verdict": verdict, "hint": hint, "at": clock(at)}
    return data


def clock(at: float) -> str:
    """The local time a trace ran, as HH:MM:SS."""
    return time.strftime("%H:%M:%S", time.localtime(at))


def save_trace(result: TraceResult, lab_id: str) -> None:
    """Leave the trace where `serve` picks it up (root's only)."""
    path = trace_path(lab_id, safe_dir(run_dir()))
    data = json.dumps(trace_data(result, time.time()), ensure_ascii=False).encode()
    write_atomic(path, data, PRIVATE_MODE)


def forget_trace(lab_id: str) -> None:
    """Remove the lab's last trace at teardown: the page then shows none (the lab is gone)."""
    with contextlib.suppress(FileNotFoundError):
        os.unlink(trace_path(lab_id))  # the link itself, were it one: never what it points to


def load_trace(path: Path) -> dict[str, Any] | None:
    """The trace left at `path`; None when there is none (or it is not one cnilab wrote)."""
    try:
        data = read_file(path)
        found = json.loads(data) if data else None
    except (CnilabError, OSError, ValueError):
        return None  # planted by someone else, or unreadable: shown as no trace
    return found if isinstance(found, dict) else None


class TraceWatch:
    """Calls `changed(trace or None)` now and whenever the lab's trace file is replaced."""

    def __init__(self, path: Path, changed: Callable[[dict[str, Any] | None], None]) -> None:
        self.path, self.changed = path, changed
        self._stop_r, self._stop_w = os.pipe2(os.O_CLOEXEC)
        self._fd = LIBC.inotify_init1(IN_CLOEXEC)
        self._thread = threading.Thread(target=self._run, name="trace-watch", daemon=True)

    def start(self) -> TraceWatch:
        """Read the trace there is, then follow the file in a thread."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """End the thread and close every descriptor."""
        if self._thread.is_alive():
            os.write(self._stop_w, b"x")
            self._thread.join(timeout=2)
        for fd in (self._stop_r, self._stop_w, self._fd):
            with contextlib.suppress(OSError):
                os.close(fd)

    def _watched(self) -> Path:
        """The run folder, or while it does not exist yet, the nearest folder above it."""
        folder = self.path.parent
        while not folder.is_dir() and folder != folder.parent:
            folder = folder.parent
        return folder

    def _run(self) -> None:
        while True:
            folder = self._watched()
            wd = LIBC.inotify_add_watch(self._fd, str(folder).encode(), MASK)
            if self._watched() != folder:  # the next folder down came before the watch did
                LIBC.inotify_rm_watch(self._fd, wd)
                continue
            if folder == self.path.parent:
                self.changed(load_trace(self.path))
            if not self._follow(folder):
                return
            LIBC.inotify_rm_watch(self._fd, wd)

    def _follow(self, folder: Path) -> bool:
        """Read events in `folder` until the run folder appears (True) or stop() (False)."""
        below = self.path.parent.relative_to(folder).parts if folder != self.path.parent else ()
        while True:
            ready, _, _ = select.select([self._fd, self._stop_r], [], [])
            if self._stop_r in ready:
                return False
            for mask, name in parse_inotify(os.read(self._fd, 1 << 16)):
                if below and name == below[0] and mask & (IN_CREATE | IN_MOVED_TO):
                    return True
                if not below and name == self.path.name:
                    self.changed(load_trace(self.path))
