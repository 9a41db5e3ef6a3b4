"""Benchmark: cnilab's commands against their targets, and the lab against a bash script.

Run as root: `python bench/bench_lab.py` (or `sudo make bench`). Everything happens in
namespaces under a private prefix, removed at the end. Each command runs RUNS times, interleaved
with its baseline; the table prints medians of the wall time and of the CPU time the processes
used (user + system). On a shared machine the wall time follows the load (printed) while the
CPU time stays near what the wall time would be on an idle one.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys

import common
from common import CNILAB

RUNS = int(os.environ.get("BENCH_RUNS", "11"))
PREFIX = f"bench{os.getpid() % 100000}-"
ENV = common.bench_env("lab", LANG="C.UTF-8")
# Measured on this machine before issue 13's work (medians, a lab up): the figures it quotes.
BEFORE = {"--help": 172, "status": 667, "step 3": 575, "lab": 8.6}

Timing = tuple[float, float]  # wall ms, CPU ms


def sh(argv: list[str], check: bool = True) -> str:
    """Run, fail loudly, return stdout."""
    return subprocess.run(argv, check=check, capture_output=True, text=True, env=ENV).stdout


def timed(*argvs: list[str]) -> Timing:
    """Wall and CPU milliseconds of running these one after another (common.timed)."""
    wall, cpu = common.timed(*argvs, env=ENV)
    return wall * 1000, cpu * 1000


def medians(samples: list[Timing]) -> Timing:
    """Median wall, median CPU."""
    return statistics.median(s[0] for s in samples), statistics.median(s[1] for s in samples)


def cnilab(*args: str, prefix: str = PREFIX) -> list[str]:
    """One cnilab command line under a bench prefix."""
    return [*CNILAB, "--prefix", prefix, *args]


def bash_script(prefix: str) -> list[str]:
    """The lab typed by bash from cnilab's own plan: the stage, the steps on the node, teardown."""
    from cnilab.lab.topology import default_topology

    plan = sh(cnilab("run-all", "--dry-run", "--lang", "en", prefix=prefix))
    stage, marker, steps = plan.partition("# step 1:")
    # The stage runs in this machine's own namespace: refuse anything that does not act inside a
    # lab namespace (a changed heading would otherwise run the whole lab on the machine).
    for line in stage.splitlines() if marker else ["(no '# step 1:' heading in the plan)"]:
        words = line.split()
        if words and words[0] != "#" and words[:3] not in (["ip", "netns", "add"],
                                                           ["ip", "netns", "exec"]) \
                and words[:2] != ["ip", "-n"]:
            sys.exit(f"bench_lab: refusing to run outside the lab's namespaces: {line}")
    topo = default_topology(prefix=prefix)
    delete = " ; ".join(f"ip netns del {n}" for n in topo.namespaces())
    script = (f"set -e\n{stage}\nnsenter --net=/run/netns/{topo.node} bash -e <<'EOS'\n"
              f"{marker}{steps}\nEOS\n{delete}\n")
    return ["bash", "-c", script]


def main() -> None:
    """Measure and print the table."""
    if os.geteuid() != 0:
        sys.exit("bench_lab: run as root (the lab needs namespaces)")
    from cnilab.lab.topology import default_topology

    bash = bash_script(PREFIX + "b")
    rows: dict[str, list[Timing]] = {}
    try:
        for _ in range(RUNS):  # the floor every command pays before cnilab's own code runs
            rows.setdefault("python", []).append(timed([sys.executable, "-c", "pass"]))
            rows.setdefault("typer", []).append(timed([sys.executable, "-c", "import typer"]))
            rows.setdefault("--help", []).append(timed([*CNILAB, "--help"]))
        sh(cnilab("run-all", "--yes", "--no-proof"))
        for _ in range(RUNS):
            rows.setdefault("status", []).append(timed(cnilab("status")))
            rows.setdefault("step 3", []).append(timed(cnilab("step", "3")))
        sh(cnilab("teardown"))
        for _ in range(RUNS):
            rows.setdefault("lab", []).append(timed(cnilab("run-all", "--yes", "--no-proof"),
                                                    cnilab("teardown")))
            rows.setdefault("bash", []).append(timed(bash))
        for _ in range(3):
            rows.setdefault("proofs", []).append(timed(cnilab("run-all", "--yes"),
                                                       cnilab("teardown")))
    finally:
        for p in (PREFIX, PREFIX + "b"):
            sh(cnilab("teardown", prefix=p), check=False)
            for ns in default_topology(prefix=p).namespaces():
                subprocess.run(["ip", "netns", "del", ns], capture_output=True, check=False)
        shutil.rmtree(ENV["CNILAB_RUN_DIR"], ignore_errors=True)

    m = {k: medians(v) for k, v in rows.items()}
    print(f"\ncnilab lab benchmark: medians of {RUNS} runs (ms); load average "
          f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    print(f"{'what':<44}{'wall':>7}{'cpu':>7}  {'baseline':<40}target")

    def row(label: str, key: str, baseline: str, target: str) -> None:
        print(f"{label:<44}{m[key][0]:>7.0f}{m[key][1]:>7.0f}  {baseline:<40}{target}")

    floor = f"floor {m['typer'][1]:.0f} cpu (python+typer)"
    row("cnilab --help", "--help", f"{BEFORE['--help']} before; {floor}", "< 100 ms")
    row("cnilab status (lab up)", "status", f"{BEFORE['status']} before", "< 250 ms")
    row("cnilab step 3 again (lab up)", "step 3", f"{BEFORE['step 3']} before", "< 300 ms")
    lab, bash_ms = m["lab"], m["bash"]
    print(f"{'run-all --yes --no-proof + teardown':<44}{lab[0]:>7.0f}{lab[1]:>7.0f}  "
          f"{'bash ' + f'{bash_ms[0]:.0f} wall, {bash_ms[1]:.0f} cpu':<40}<= 4x bash")
    print(f"{'  ratio to the bash script (wall, cpu)':<44}{lab[0] / bash_ms[0]:>7.1f}"
          f"{lab[1] / bash_ms[1]:>7.1f}  {str(BEFORE['lab']) + 'x before':<40}<= 4.0")
    row("run-all --yes (packet proofs) + teardown", "proofs", "(proofs have no bash twin)", "")
    print(f"{'python -c pass / import typer (the floor)':<44}{m['python'][0]:>7.0f}"
          f"{m['python'][1]:>7.0f}  {m['typer'][0]:.0f} wall, {m['typer'][1]:.0f} cpu (typer)")


if __name__ == "__main__":
    main()
