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
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from cnilab.cni.exec import find_reference
from tests.kernel.cni_sandbox import Sandbox

RUNS = int(os.environ.get("BENCH_RUNS", "15"))
PREFIX = f"bcni{os.getpid() % 100000}-"


def config(plugin: str, ipam: str, data_dir: str) -> dict[str, object]:
    """The network both plugins get; only the types differ."""
    return {"cniVersion": "1.0.0", "name": "benchnet", "type": plugin, "bridge": "cni0",
            "isGateway": True, "ipMasq": True,
            "ipam": {"type": ipam, "subnet": "10.79.0.0/24", "routes": [{"dst": "0.0.0.0/0"}],
                     "dataDir": data_dir}}


def cpu_ms() -> float:
    """CPU time (user + system) of every child process waited for so far, in ms."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (usage.ru_utime + usage.ru_stime) * 1000


def measure(box: Sandbox, plugin: str, ipam: str, data_dir: str
            ) -> dict[str, tuple[float, float]]:
    """Median (wall, CPU) ms of ADD, DEL, VERSION and ADD+DEL; a fresh container ID each round.

    CPU time (of the plugin and what it runs: nsenter, iptables, IPAM) is what the machine's
    load does not inflate; wall time is what a runtime waits.
    """
    cfg = config(plugin, ipam, data_dir)
    pod = box.pod(f"{plugin}-pod")
    box.call(plugin, "ADD", cfg, "warmup", pod)  # the bridge exists from now on, as on a node
    box.call(plugin, "DEL", cfg, "warmup", pod)
    seen: dict[str, list[tuple[float, float]]] = {"ADD": [], "DEL": [], "VERSION": []}

    def timed(label: str, *args: Any, **kwargs: Any) -> None:
        cpu = cpu_ms()
        call = box.call(plugin, *args, **kwargs)
        if not call.ok:
            raise SystemExit(f"{plugin} {label} failed: {call.stdout}")
        seen[label].append((call.seconds * 1000, cpu_ms() - cpu))

    for i in range(RUNS):
        timed("ADD", "ADD", cfg, f"c{i}", pod)
        timed("DEL", "DEL", cfg, f"c{i}", pod)
        # libcni's probe: placeholders in every variable but CNI_COMMAND
        timed("VERSION", "VERSION", {"cniVersion": "1.0.0"}, "dummy", "dummy",
              ifname="dummy", args="dummy=dummy")
    seen["ADD+DEL"] = [(a[0] + d[0], a[1] + d[1]) for a, d in zip(seen["ADD"], seen["DEL"])]
    return {k: (statistics.median(w for w, _ in v), statistics.median(c for _, c in v))
            for k, v in seen.items()}


def podman_cost(reference: bool) -> tuple[float, float] | None:
    """Median wall time (ms) of `podman run -d` + `podman rm` on the network, and with
    `--network none` (the difference is the network's cost per container); None without
    podman."""
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "kernel"))
    from podman_box import NET1, PODMAN, RUN, RUNC, CannotRun, podman_box

    if not (PODMAN and RUNC):
        return None
    side = "ref" if reference else "ours"
    try:
        with podman_box(f"{PREFIX}pm{side}-", reference) as box:
            times: dict[str, list[float]] = {"net": [], "none": []}
            for i in range(max(5, RUNS // 3)):
                for kind, network in (("net", NET1), ("none", "none")):
                    start = time.perf_counter()
                    box.run(*RUN, "--name", f"c{i}{kind}", "--network", network,
                            "--rootfs", str(box.dir / "rootfs"), "/bin/sleep", "100000")
                    box.run("rm", "--force", "--time", "0", f"c{i}{kind}")
                    times[kind].append((time.perf_counter() - start) * 1000)
    except CannotRun as e:
        print(f"bench_cni: podman cannot run containers here ({e}); runtime figures skipped")
        return None
    return statistics.median(times["net"]), statistics.median(times["none"])


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
    print(f"{'':10}{'cnilab':>10}{'reference':>11}{'ratio':>7}   {'CPU: cnilab':>12}"
          f"{'reference':>11}{'ratio':>7}")
    for label in ("ADD", "DEL", "VERSION", "ADD+DEL"):
        (a, ac), (b, bc) = ours[label], ref[label]
        print(f"{label:10}{a:>8.1f}ms{b:>9.1f}ms{a / b:>6.1f}x   {ac:>10.1f}ms{bc:>9.1f}ms"
              f"{ac / max(bc, 0.1):>6.1f}x")
    ratio = ours["ADD+DEL"][0] / ref["ADD+DEL"][0]
    print(f"target: VERSION under 40 ms: {'met' if ours['VERSION'][0] < 40 else 'NOT met'}"
          f" ({ours['VERSION'][0]:.1f} ms)")
    print(f"target: ADD+DEL within 3x the reference: {'met' if ratio <= 3 else 'NOT met'}"
          f" ({ratio:.1f}x wall, {ours['ADD+DEL'][1] / ref['ADD+DEL'][1]:.1f}x CPU)")
    ours_pm, ref_pm = podman_cost(False), podman_cost(True)
    if ours_pm and ref_pm:
        net_ours, net_ref = ours_pm[0] - ours_pm[1], ref_pm[0] - ref_pm[1]
        print("Per container under Podman (CNI backend, libcni): run -d + rm, network minus "
              "--network none")
        print(f"{'network':12}{net_ours:>10.1f}ms{net_ref:>18.1f}ms"
              f"{net_ours / max(net_ref, 1):>7.1f}x")
        print(f"target: network cost within 2x the reference's: "
              f"{'met' if net_ours <= 2 * net_ref else 'NOT met'}")
    print(f"(load average while measuring: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
