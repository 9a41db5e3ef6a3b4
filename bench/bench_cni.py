"""Benchmark: ADD and DEL latency of the cnilab plugin against the reference bridge + host-local.

Run as root: `python bench/bench_cni.py` (or `sudo make bench`). Each plugin runs, as a runtime
runs it (a process per call, CNI_* environment, config on stdin), inside a node namespace this
script makes, with pods of its own; everything is removed at the end. Same config for both
(cniVersion 1.0.0, the reference's newest): bridge, isGateway, ipMasq, a /24, a default route.
Prints medians of ADD, DEL, VERSION and ADD+DEL side by side and the ratios (targets: VERSION
under 40 ms; ADD+DEL within 3x the reference).
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from cnilab.cni.exec import find_reference
from cnilab.cni.sandbox import Sandbox

RUNS = int(os.environ.get("BENCH_RUNS", "15"))
PREFIX = f"bcni{os.getpid() % 100000}-"


def config(plugin: str, ipam: str, data_dir: str) -> dict[str, object]:
    """The network both plugins get; only the types differ."""
    return {"cniVersion": "1.0.0", "name": "benchnet", "type": plugin, "bridge": "cni0",
            "isGateway": True, "ipMasq": True,
            "ipam": {"type": ipam, "subnet": "10.79.0.0/24", "routes": [{"dst": "0.0.0.0/0"}],
                     "dataDir": data_dir}}


def measure(box: Sandbox, plugin: str, ipam: str, data_dir: str) -> dict[str, float]:
    """Median ADD, DEL and VERSION wall time (ms), a fresh container ID each round, one pod."""
    cfg = config(plugin, ipam, data_dir)
    pod = box.pod(f"{plugin}-pod")
    adds, dels, versions = [], [], []
    box.call(plugin, "ADD", cfg, "warmup", pod)  # the bridge exists from now on, as on a node
    box.call(plugin, "DEL", cfg, "warmup", pod)
    for i in range(RUNS):
        add = box.call(plugin, "ADD", cfg, f"c{i}", pod)
        if not add.ok:
            raise SystemExit(f"{plugin} ADD failed: {add.stdout}")
        done = box.call(plugin, "DEL", cfg, f"c{i}", pod)
        if not done.ok:
            raise SystemExit(f"{plugin} DEL failed: {done.stdout}")
        # libcni's probe: placeholders in every variable but CNI_COMMAND
        version = box.call(plugin, "VERSION", {"cniVersion": "1.0.0"}, "dummy", "dummy",
                           ifname="dummy", args="dummy=dummy")
        if not version.ok:
            raise SystemExit(f"{plugin} VERSION failed: {version.stdout}")
        adds.append(add.seconds * 1000)
        dels.append(done.seconds * 1000)
        versions.append(version.seconds * 1000)
    return {"ADD": statistics.median(adds), "DEL": statistics.median(dels),
            "VERSION": statistics.median(versions),
            "ADD+DEL": statistics.median(a + d for a, d in zip(adds, dels))}


def main() -> int:
    """Run both plugins in their own sandboxes and print the table."""
    if os.geteuid() != 0:
        print("bench_cni: needs root (it builds network namespaces)", file=sys.stderr)
        return 1
    if not (find_reference("bridge") and find_reference("host-local")):
        print("bench_cni: reference plugins not installed "
              "(apt-get install containernetworking-plugins); skipped")
        return 0
    rows = {}
    with tempfile.TemporaryDirectory(prefix="cnilab-bench-cni-") as tmp:
        for plugin, ipam in (("cnilab", "cnilab-ipam"), ("bridge", "host-local")):
            box = Sandbox(f"{PREFIX}{plugin}-", Path(tmp) / "bin")
            try:
                rows[plugin] = measure(box, plugin, ipam, f"{tmp}/{plugin}")
            finally:
                box.close()
    ours, ref = rows["cnilab"], rows["bridge"]
    print(f"CNI plugin latency, median of {RUNS} (a process per call, inside a node namespace,"
          " as a runtime does)")
    print(f"{'':12}{'cnilab':>12}{'bridge+host-local':>20}{'ratio':>8}")
    for label in ("ADD", "DEL", "VERSION", "ADD+DEL"):
        a, b = ours[label], ref[label]
        print(f"{label:12}{a:>10.1f}ms{b:>18.1f}ms{a / b:>7.1f}x")
    ratio = ours["ADD+DEL"] / ref["ADD+DEL"]
    print(f"target: VERSION under 40 ms: {'met' if ours['VERSION'] < 40 else 'NOT met'}"
          f" ({ours['VERSION']:.1f} ms)")
    print(f"target: ADD+DEL within 3x the reference: {'met' if ratio <= 3 else 'NOT met'}"
          f" ({ratio:.1f}x)")
    print(f"(load average while measuring: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
