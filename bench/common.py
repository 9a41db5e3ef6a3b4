"""What the benchmarks share: how cnilab is started, and what running a command costs."""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

Timing = tuple[float, float]  # wall seconds, CPU seconds


def _cnilab() -> list[str]:
    script = Path(sys.executable).with_name("cnilab")  # the venv's entry point, as users run it
    return [str(script)] if script.exists() else [sys.executable, "-m", "cnilab"]


CNILAB = _cnilab()


def bench_env(tag: str, **extra: str) -> dict[str, str]:
    """The environment a benchmark runs cnilab in: a run directory of its own (remove it)."""
    return {**os.environ, "CNILAB_RUN_DIR": tempfile.mkdtemp(prefix=f"cnilab-bench-{tag}-"),
            **extra}


def timed(*argvs: list[str], env: dict[str, str]) -> Timing:
    """Wall and CPU (children, user + system) seconds of running these one after another.

    The CPU time does not grow when other work shares the machine; the wall time does.
    """
    before, start = resource.getrusage(resource.RUSAGE_CHILDREN), time.perf_counter()
    for argv in argvs:
        subprocess.run(argv, check=True, capture_output=True, env=env)
    wall, after = time.perf_counter() - start, resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
