"""Processes cnilab starts inside a namespace (step 9's web server), stopped by PID, only if ours.

The PID files live in the directory the caller passes in (the ledger's run directory): the kernel
layer does not decide where cnilab keeps its state.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from cnilab.errors import CollisionError, KernelError
from cnilab.runfiles import read_file

# The web server's module name, which teardown looks for in /proc/PID/cmdline. Not imported
# from it: that would load http.server (and email, ssl) into every CNI plugin call.
MARKER = "cnilab.kernel.webserver"


def pidfile(run_dir: Path, netns: str | None, port: int) -> Path:
    """Where the web server on `port` in `netns` writes its PID."""
    return run_dir / f"server-{(netns or 'node').strip('/').replace('/', '_')}-{port}.pid"


def start_server(run_dir: Path, netns: str | None, port: int, body: str) -> None:
    """Start cnilab's web server inside `netns` (detached), and wait until it listens."""
    path = pidfile(run_dir, netns, port)
    path.unlink(missing_ok=True)
    argv = [sys.executable, "-m", MARKER, "--port", str(port), "--body", body,
            "--pidfile", str(path), *(["--netns", netns] if netns else [])]
    spawn(argv, path.exists, f"the web server on port {port}")


def spawn(argv: list[str], ready: Callable[[], bool], what: str, timeout: float = 5.0) -> None:
    """Start a detached process (its own session: a Ctrl-C to cnilab does not reach it) and
    wait until `ready()`; KernelError with its last line of stderr if it dies or takes too long."""
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, start_new_session=True)
    deadline = time.monotonic() + timeout
    while not ready():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            detail = (proc.communicate()[1] or b"").decode(errors="replace").strip()
            raise KernelError(f"{what} did not start: "
                              f"{detail.splitlines()[-1] if detail else 'no message'}")
        time.sleep(0.01)


def stop_server(run_dir: Path, netns: str | None, port: int) -> None:
    """Stop the web server cnilab started there, by its PID, and only if it is ours."""
    path = pidfile(run_dir, netns, port)
    try:
        raw = read_file(path)
    except CollisionError:
        return  # not a file cnilab wrote (a planted link): nothing to signal, nothing to remove
    try:
        pid = int(raw or b"")
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (FileNotFoundError, ValueError, ProcessLookupError):
        path.unlink(missing_ok=True)
        return
    if MARKER.encode() not in cmdline:  # the PID was reused by someone else's process
        path.unlink(missing_ok=True)
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 3
        while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
            time.sleep(0.01)
        if Path(f"/proc/{pid}").exists():
            os.kill(pid, signal.SIGKILL)
    path.unlink(missing_ok=True)
