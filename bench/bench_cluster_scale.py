"""Benchmark: `cluster up` at scale (10 nodes x 100 pods), `down`, and the cost of one pod at 50
and at 250 pods a node, beside the kernel's own floor for a pod (`ip -batch`, one process).

Run as root: `python bench/bench_cluster_scale.py` (or `sudo make bench`). Everything lives under
this script's own prefix and is removed at the end, also on failure. BENCH_SCALE_RUNS repeats
each measure (default 1: the big cluster takes tens of seconds on a loaded machine).
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import time

import common
from common import CNILAB, Timing

RUNS = int(os.environ.get("BENCH_SCALE_RUNS", "1"))
PREFIX = f"bsc{os.getpid() % 100000}-"
ENV = common.bench_env("scale")
BEFORE = {"up": 45.6, "down": 0.9, "pod50": 46.0, "pod250": 56.0}  # issue 13's figures


def timed(argv: list[str]) -> Timing:
    """Wall and CPU seconds of one command (common.timed)."""
    return common.timed(argv, env=ENV)


def cluster(*args: str) -> list[str]:
    """`cnilab cluster ...` under the bench prefix."""
    return [*CNILAB, "cluster", "--prefix", PREFIX, *args]


def up_down(nodes: int, pods: int) -> tuple[Timing, Timing]:
    """(up, down) of one cluster."""
    up = timed(cluster("up", "--nodes", str(nodes), "--pods-per-node", str(pods)))
    return up, timed(cluster("down"))


def kernel_floor(pods: int) -> float:
    """Wall seconds a pod costs the kernel alone: a namespace, a veth into it, on a bridge, up.

    One `ip -batch` process for all (no process per pod), in namespaces of this script's own.
    """
    node = f"{PREFIX}floor"
    names = [f"{PREFIX}f{i}" for i in range(pods)]
    subprocess.run(["ip", "netns", "add", node], check=True)
    try:
        subprocess.run(["ip", "-n", node, "link", "add", "cni0", "type", "bridge"], check=True)
        start = time.perf_counter()
        subprocess.run(["ip", "-batch", "-"], input="".join(f"netns add {n}\n" for n in names),
                       text=True, check=True)
        subprocess.run(["ip", "-n", node, "-batch", "-"], text=True, check=True, input="".join(
            f"link add v{i} type veth peer name eth0 netns {n}\nlink set v{i} master cni0 up\n"
            for i, n in enumerate(names)))
        return (time.perf_counter() - start) / pods
    finally:
        subprocess.run(["ip", "-batch", "-"], input="".join(f"netns del {n}\n" for n in names),
                       text=True, check=False, capture_output=True)
        subprocess.run(["ip", "netns", "del", node], check=False, capture_output=True)


def cleanup() -> None:
    """Bring down whatever a failed run left, then sweep the bench's own namespaces."""
    subprocess.run(cluster("down"), capture_output=True, check=False, env=ENV)
    for name in os.listdir("/run/netns") if os.path.isdir("/run/netns") else []:
        if name.startswith(PREFIX):
            subprocess.run(["ip", "netns", "del", name], capture_output=True, check=False)


def main() -> int:
    """Measure and print the table."""
    if os.geteuid() != 0:
        print("bench_cluster_scale: needs root (it builds network namespaces)", file=sys.stderr)
        return 1
    big: list[tuple[Timing, Timing]] = []
    per_pod: dict[int, list[tuple[float, float]]] = {50: [], 250: []}
    floor: list[float] = []
    try:
        for _ in range(RUNS):
            big.append(up_down(10, 100))
            empty = up_down(2, 0)[0]
            for pods in per_pod:
                up = up_down(2, pods)[0]
                per_pod[pods].append(((up[0] - empty[0]) / (2 * pods) * 1000,
                                      (up[1] - empty[1]) / (2 * pods) * 1000))
            floor.append(kernel_floor(200) * 1000)
    finally:
        cleanup()
        shutil.rmtree(ENV["CNILAB_RUN_DIR"], ignore_errors=True)

    def med(values: list[float]) -> float:
        return statistics.median(values)

    print(f"\ncnilab cluster at scale: medians of {RUNS} run(s); load average "
          f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    print(f"{'what':<46}{'wall':>8}{'cpu':>8}  {'baseline':<18}target")
    print(f"{'cluster up --nodes 10 --pods-per-node 100 (s)':<46}"
          f"{med([u[0] for u, _ in big]):>8.1f}{med([u[1] for u, _ in big]):>8.1f}  "
          f"{str(BEFORE['up']) + ' before':<18}<= 15 s")
    print(f"{'cluster down (s)':<46}{med([d[0] for _, d in big]):>8.1f}"
          f"{med([d[1] for _, d in big]):>8.1f}  {str(BEFORE['down']) + ' before':<18}<= 3 s")
    for pods, rows in per_pod.items():
        print(f"{f'one pod, 2 nodes x {pods} pods (ms)':<46}{med([r[0] for r in rows]):>8.1f}"
              f"{med([r[1] for r in rows]):>8.1f}  "
              f"{str(BEFORE['pod' + str(pods)]) + ' before':<18}flat from 50 to 250")
    print(f"{'one pod, the kernel alone (ip -batch, ms)':<46}{med(floor):>8.1f}"
          f"{'':>8}  (the floor)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
