"""Benchmark: cnilab against the same lab typed as a bash script of `ip`/`iptables` commands.

Run as root: `python bench/bench_lab.py` (or `sudo make bench`). Everything happens in
namespaces under a private prefix, removed at the end. Prints medians side by side.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

RUNS = int(os.environ.get("BENCH_RUNS", "7"))
PREFIX = f"bench{os.getpid() % 100000}-"
CNILAB = [str(Path(sys.executable).with_name("cnilab"))]
if not Path(CNILAB[0]).exists():
    CNILAB = [sys.executable, "-m", "cnilab"]
ENV = {**os.environ, "CNILAB_RUN_DIR": tempfile.mkdtemp(prefix="cnilab-bench-")}


def sh(argv: list[str], **kw: object) -> str:
    """Run, fail loudly, return stdout."""
    return subprocess.run(argv, check=True, capture_output=True, text=True, env=ENV,
                          **kw).stdout  # type: ignore[call-overload]


def median_ms(fn: Callable[[], None], runs: int = RUNS) -> float:
    """Median wall time of fn in milliseconds."""
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def cnilab(*args: str) -> None:
    """One cnilab command under the bench prefix."""
    sh([*CNILAB, "--prefix", PREFIX, *args])


def cnilab_lab(*run_all_args: str) -> None:
    """cnilab run-all, then teardown."""
    cnilab("run-all", "--yes", *run_all_args)
    cnilab("teardown")


def bash_lab(script_stage: str, script_steps: str, node: str, namespaces: list[str]) -> None:
    """The printed commands, typed by bash: the stage, the steps in the node, then teardown."""
    subprocess.run(["bash", "-ec", script_stage], check=True, capture_output=True)
    subprocess.run(["nsenter", f"--net=/run/netns/{node}", "bash", "-ec", script_steps],
                   check=True, capture_output=True)
    subprocess.run(["bash", "-ec", " ; ".join(f"ip netns del {n}" for n in namespaces)],
                   check=True)


def main() -> None:
    """Measure and print the table."""
    if os.geteuid() != 0:
        sys.exit("bench_lab: run as root (the lab needs namespaces)")
    from cnilab.topology import default_topology

    topo = default_topology(prefix=PREFIX)
    plan = sh([*CNILAB, "--prefix", PREFIX + "b", "run-all", "--dry-run", "--lang", "en"])
    stage, marker, steps = plan.partition("# step 1:")
    # The stage runs in this machine's own namespace: refuse anything that does not act inside a
    # lab namespace (a changed heading would otherwise run the whole lab on the machine).
    for line in stage.splitlines() if marker else ["(no '# step 1:' heading in the plan)"]:
        words = line.split()
        if words and words[0] != "#" and words[:3] not in (["ip", "netns", "add"],
                                                           ["ip", "netns", "exec"]) \
                and words[:2] != ["ip", "-n"]:
            sys.exit(f"bench_lab: refusing to run outside the lab's namespaces: {line}")
    btopo = default_topology(prefix=PREFIX + "b")
    try:
        help_ms = median_ms(lambda: sh([*CNILAB, "--help"]))
        ours = median_ms(lambda: cnilab_lab("--no-proof"))
        proofs = median_ms(cnilab_lab, runs=3)
        theirs = median_ms(lambda: bash_lab(stage, marker + steps, btopo.node or "",
                                            list(btopo.namespaces())))
    finally:
        for ns in (*topo.namespaces(), *btopo.namespaces()):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, check=False)
        shutil.rmtree(ENV["CNILAB_RUN_DIR"], ignore_errors=True)

    print(f"\ncnilab lab benchmark: medians of {RUNS} runs (ms), one machine, same lab")
    print(f"{'what':<46}{'cnilab':>10}{'baseline':>10}{'ratio':>8}  target")
    print(f"{'cnilab --help':<46}{help_ms:>10.0f}{'-':>10}{'-':>8}  under 150 ms")
    print(f"{'run-all --yes --no-proof + teardown (vs bash)':<46}{ours:>10.0f}{theirs:>10.0f}"
          f"{ours / theirs:>8.1f}  ratio <= 3")
    print(f"{'run-all --yes (with packet proofs) + teardown':<46}{proofs:>10.0f}{theirs:>10.0f}"
          f"{proofs / theirs:>8.1f}  (proofs have no bash twin)")


if __name__ == "__main__":
    main()
