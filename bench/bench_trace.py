"""Benchmark: one `cnilab trace` (the command, as a student runs it), against one plain ping.

Run as root: `python bench/bench_trace.py` (or `sudo make bench`). It builds the lab (steps
1-9) under a private prefix, traces red -> the outside host (MASQUERADE) and the outside host ->
the published port (DNAT), and removes everything at the end. Prints medians; target < 1 s.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys

import common
from common import CNILAB

RUNS = int(os.environ.get("BENCH_RUNS", "7"))
PREFIX = f"btr{os.getpid() % 100000}-"
ENV = common.bench_env("trace")


def run(argv: list[str]) -> None:
    """Run; fail loudly."""
    subprocess.run(argv, check=True, capture_output=True, env=ENV)


def median_ms(argv: list[str]) -> tuple[float, float]:
    """Median wall time and median CPU time (user + sys) of a command, in milliseconds."""
    runs = [common.timed(argv, env=ENV) for _ in range(RUNS)]
    return (statistics.median(w for w, _ in runs) * 1000,
            statistics.median(c for _, c in runs) * 1000)


def main() -> None:
    """Measure and print."""
    if os.geteuid() != 0:
        sys.exit("bench_trace: run as root (the lab needs namespaces)")
    lab = [*CNILAB, "--prefix", PREFIX]
    try:
        run([*lab, "run-all", "--yes", "--no-proof", "--to", "9"])
        ping = median_ms(["ip", "netns", "exec", f"{PREFIX}red", "ping", "-c", "1", "-W", "1",
                          "203.0.113.1"])
        masq = median_ms([*lab, "trace", "red", "203.0.113.1"])
        dnat = median_ms([*lab, "trace", "internet", "203.0.113.2", "--port", "8080", "--json"])
    finally:
        subprocess.run([*lab, "teardown"], capture_output=True, env=ENV, check=False)
        shutil.rmtree(ENV["CNILAB_RUN_DIR"], ignore_errors=True)
    print(f"\ncnilab trace benchmark: medians of {RUNS} runs (ms), the whole command, "
          f"load average {os.getloadavg()[0]:.1f}")
    print(f"{'what':<52}{'wall':>7}{'cpu':>6}  target")
    for what, (wall, cpu), target in (
            ("trace red 203.0.113.1 (MASQUERADE, Rich output)", masq, "wall under 1000"),
            ("trace internet 203.0.113.2 --port 8080 --json (DNAT)", dnat, "wall under 1000"),
            ("baseline: ip netns exec red ping -c 1 203.0.113.1", ping, "-")):
        print(f"{what:<52}{wall:>7.0f}{cpu:>6.0f}  {target}")


if __name__ == "__main__":
    main()
