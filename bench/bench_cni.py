"""Benchmark: the cnilab CNI plugin beside the reference bridge + host-local, as runtimes call them.

Run as root: `python bench/bench_cni.py` (or `sudo make bench`). Each plugin runs as a runtime
runs it (a process per call, CNI_* environment, config on stdin, `nsenter` into a node
namespace this script makes), with pods of its own; everything is removed at the end. Same
config for both (cniVersion 1.0.0, the reference's newest): bridge, isGateway, ipMasq, a /24, a
default route. The two plugins' calls are interleaved, so both see the same load.

Prints medians of wall time (what a runtime waits) and CPU time (the plugin and what it runs;
what the machine's load inflates least), the ratios and the targets: ADD and DEL within 2.5x
the reference's wall time and 3x its CPU, VERSION under 40 ms, ADD+DEL on a node with 1000
pods as on an empty one, a container's network under Podman's CNI backend and under
containerd's go-cni (`ctr run --cni`) within 2x. Beside
them, the floor: what Python and pyroute2 cost before cnilab does anything.
"""

from __future__ import annotations

import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from cnilab.cni import plugin
from cnilab.cni.exec import find_reference
from cnilab.cni.install import script
from tests.kernel.cni_sandbox import Sandbox

RUNS = int(os.environ.get("BENCH_RUNS", "15"))
PODS = int(os.environ.get("BENCH_PODS", "1000"))
PREFIX = f"bcni{os.getpid() % 100000}-"
Timing = tuple[float, float]  # wall ms, CPU ms


def config(plugin: str, ipam: str, data_dir: str, subnet: str = "10.79.0.0/24"
           ) -> dict[str, object]:
    """The network both plugins get; only the types differ."""
    return {"cniVersion": "1.0.0", "name": "benchnet", "type": plugin, "bridge": "cni0",
            "isGateway": True, "ipMasq": True,
            "ipam": {"type": ipam, "subnet": subnet, "routes": [{"dst": "0.0.0.0/0"}],
                     "dataDir": data_dir}}


def cpu_ms() -> float:
    """CPU time (user + system) of every child process waited for so far, in ms."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (usage.ru_utime + usage.ru_stime) * 1000


def timed(run: Callable[[], Any]) -> Timing:
    """Wall and children's CPU ms of one run."""
    cpu, start = cpu_ms(), time.perf_counter()
    run()
    return (time.perf_counter() - start) * 1000, cpu_ms() - cpu


def median(times: list[Timing]) -> Timing:
    """Median wall and median CPU."""
    return statistics.median(w for w, _ in times), statistics.median(c for _, c in times)


class Side:
    """One plugin (cnilab or the reference) in its own node namespace."""

    def __init__(self, box: Sandbox, plugin: str, ipam: str, data_dir: str) -> None:
        self.box, self.plugin, self.cfg = box, plugin, config(plugin, ipam, data_dir)
        self.pod = box.pod(f"{plugin}-pod")
        self.seen: dict[str, list[Timing]] = {"ADD": [], "DEL": [], "VERSION": []}

    def call(self, command: str, cid: str, label: str | None = None) -> Timing:
        """One call exec'd as a runtime does; its timing kept under `label`."""
        def run() -> None:
            if command == "VERSION":  # libcni's probe: placeholders but for CNI_COMMAND
                done = self.box.call(self.plugin, "VERSION", {"cniVersion": "1.0.0"}, "dummy",
                                     "dummy", ifname="dummy", args="dummy=dummy")
            else:
                done = self.box.call(self.plugin, command, self.cfg, cid, self.pod)
            if not done.ok:
                raise SystemExit(f"{self.plugin} {command} failed: {done.stdout}")

        t = timed(run)
        if label:
            self.seen[label].append(t)
        return t


def per_call(sides: list[Side]) -> None:
    """ADD, DEL and VERSION of both plugins, interleaved; a fresh container ID each round."""
    for side in sides:  # the bridge exists from now on, as on a node
        side.call("ADD", "warmup")
        side.call("DEL", "warmup")
    for i in range(RUNS):
        for command in ("ADD", "DEL", "VERSION"):
            for side in sides:
                side.call(command, f"c{i}", command)


# pyroute2's message classes loaded as cnilab.kernel.iproute loads them: its package bare, its
# __init__ (asyncio, NDB, IPDB) never run.
PYROUTE2 = ("import importlib.util, types; s = importlib.util.find_spec('pyroute2'); "
            "m = types.ModuleType('pyroute2'); m.__path__ = list(s.submodule_search_locations); "
            "sys.modules['pyroute2'] = m; import pyroute2.netlink.exceptions, "
            "pyroute2.netlink.rtnl.ifaddrmsg, pyroute2.netlink.rtnl.ifinfmsg, "
            "pyroute2.netlink.rtnl.ndmsg, pyroute2.netlink.rtnl.nsidmsg, "
            "pyroute2.netlink.rtnl.rtmsg")


def floor() -> dict[str, Timing]:
    """What the plugin's process costs before cnilab's code runs: Python started and ended as
    the executable does it (-IS, no cycle collection, no finalization; inside a node namespace
    via nsenter), with pyroute2's message classes loaded, then with every module an ADD imports
    (no call made)."""
    paths = next(ln for ln in script("cnilab").splitlines() if ln.startswith("sys.path"))
    start, end = "import gc, os, sys; gc.disable(); ", "; os._exit(0)"
    with tempfile.TemporaryDirectory(prefix="cnilab-bench-") as tmp:  # removed at the end
        box = Sandbox(f"{PREFIX}floor-", Path(tmp) / "bin")
        try:
            out = {}
            for label, code in (("python -IS", "pass"),
                                ("python + pyroute2 msgs", f"{paths}; {PYROUTE2}"),
                                ("+ cnilab's modules", f"{paths}; import "
                                 "cnilab.cni.entry, cnilab.cni.plugin, cnilab.kernel.iproute, "
                                 "cnilab.cni.ipam")):
                argv = ["nsenter", f"--net=/run/netns/{box.node}", sys.executable, "-IS", "-c",
                        start + code + end]
                out[label] = median([timed(lambda a=argv: subprocess.run(a, check=True))
                                     for _ in range(RUNS)])
            return out
        finally:
            box.close()


def crowded(box: Sandbox, data_dir: str) -> dict[str, Timing]:
    """ADD+DEL exec'd on a node with no other pod, then with PODS pods (each a namespace, a
    veth on the bridge, a lease, two NAT rules: attached in this process to be quick); the
    reference's ADD+DEL on the same node and bridge, interleaved; beside
    them, what iptables alone costs there: one rule added and deleted by iptables-restore."""
    ours = Side(box, "cnilab", "cnilab-ipam", data_dir)
    ours.cfg = config("cnilab", "cnilab-ipam", data_dir, "10.80.0.0/20")
    ref = Side(box, "bridge", "host-local", f"{data_dir}-ref")
    # The same bridge and gateway (the reference refuses a bridge with another address), its
    # addresses from the top half of the subnet, where ours never reach.
    ref.cfg = config("bridge", "host-local", f"{data_dir}-ref", "10.80.0.0/20")
    ref.cfg["ipam"]["rangeStart"] = "10.80.8.1"
    restore = ["nsenter", f"--net=/run/netns/{box.node}", "iptables-restore", "--noflush", "-w"]

    def add_del(tag: str) -> tuple[Timing, Timing, Timing]:
        out: dict[str, list[Timing]] = {"ours": [], "ref": [], "rules": []}
        for i in range(RUNS):
            for label, side in (("ours", ours), ("ref", ref)):
                a, d = side.call("ADD", f"{tag}{i}"), side.call("DEL", f"{tag}{i}")
                out[label].append((a[0] + d[0], a[1] + d[1]))
            a, d = (timed(lambda text=text: subprocess.run(restore, input=text, text=True,
                                                           check=True))
                    for text in (f"*nat\n{op} POSTROUTING -s 10.99.0.1/32 -j ACCEPT\nCOMMIT\n"
                                 for op in ("-A", "-D")))
            out["rules"].append((a[0] + d[0], a[1] + d[1]))
        return median(out["ours"]), median(out["ref"]), median(out["rules"])

    empty = add_del("e")
    for i in range(PODS):
        plugin.add(ours.cfg, f"p{i}", box.pod(f"p{i}"), node=box.node, kernel=box.kernel)
    full = add_del("f")
    return {"ADD+DEL, empty node": empty[0], f"ADD+DEL, {PODS} pods": full[0],
            "reference, empty node": empty[1], f"reference, {PODS} pods": full[1],
            "iptables -A -D, empty": empty[2], f"iptables -A -D, {PODS} pods": full[2]}


def network_cost(runtime: str, boxes: Callable[[str, bool], AbstractContextManager[Any]],
                 start: Callable[[Any, str, bool], object], cannot: type[Exception]
                 ) -> tuple[Timing, Timing] | None:
    """Median wall and CPU ms of a container on the network minus one without (the network's
    cost per container) in a box of cnilab's (`boxes(prefix, False)`) and one of the reference's
    (`boxes(prefix, True)`), runs interleaved; `start(box, name, networked)` runs one container
    from start to removal. None when the runtime cannot run containers here (`cannot`)."""
    times: dict[str, list[Timing]] = {k: [] for k in ("ours", "ref", "on", "rn")}
    try:
        with boxes(f"{PREFIX}{runtime[:3]}o-", False) as ours, \
                boxes(f"{PREFIX}{runtime[:3]}r-", True) as ref:
            for i in range(max(5, RUNS // 2)):
                for key, box, networked in (("ours", ours, True), ("ref", ref, True),
                                            ("on", ours, False), ("rn", ref, False)):
                    times[key].append(timed(lambda b=box, n=f"c{i}{key}", x=networked:
                                            start(b, n, x)))
    except cannot as e:
        print(f"bench_cni: {runtime} cannot run containers here ({e}); its figures skipped")
        return None
    m = {k: median(v) for k, v in times.items()}
    return ((m["ours"][0] - m["on"][0], m["ours"][1] - m["on"][1]),
            (m["ref"][0] - m["rn"][0], m["ref"][1] - m["rn"][1]))


def podman_cost() -> tuple[Timing, Timing] | None:
    """`podman run -d` + `podman rm` on the network minus the same with `--network none`
    (network_cost); None without podman."""
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "kernel"))
    from podman_box import NET1, PODMAN, RUN, RUNC, CannotRun, Podman, podman_box

    if not (PODMAN and RUNC):
        return None

    def one(box: Podman, name: str, networked: bool) -> None:
        box.run(*RUN, "--name", name, "--network", NET1 if networked else "none", "--rootfs",
                str(box.dir / "rootfs"), "/bin/sleep", "100000")
        box.run("rm", "--force", "--time", "0", name)

    return network_cost("podman", podman_box, one, CannotRun)


def containerd_cost() -> tuple[Timing, Timing] | None:
    """`ctr run --rm --cni` of a container that exits at once minus the same without --cni
    (its own empty network namespace): the network's cost under containerd's go-cni (ADD, DEL
    and their VERSION probes), as network_cost; None when containerd cannot run here."""
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "kernel"))
    from containerd_box import CannotRun, Containerd, containerd_box

    def one(box: Containerd, name: str, networked: bool) -> None:
        box.run(name, networked)

    return network_cost("containerd", containerd_box, one, CannotRun)


def row(label: str, ours: Timing, ref: Timing | None) -> str:
    """One line of the table: wall and CPU, ours, the reference's, the ratios."""
    if ref is None:
        return f"{label:22}{ours[0]:>9.1f}{'':>10}{'':>7}{ours[1]:>10.1f}"
    return (f"{label:22}{ours[0]:>9.1f}{ref[0]:>10.1f}{ours[0] / max(ref[0], 0.1):>6.1f}x"
            f"{ours[1]:>10.1f}{ref[1]:>10.1f}{ours[1] / max(ref[1], 0.1):>6.1f}x")


def verdict(ok: bool, what: str) -> str:
    """A target's line."""
    return f"target: {what}: {'met' if ok else 'NOT met'}"


def main() -> int:
    """Run both plugins in their own node namespaces and print the table."""
    if os.geteuid() != 0:
        print("bench_cni: needs root (it builds network namespaces)", file=sys.stderr)
        return 1
    if not (find_reference("bridge") and find_reference("host-local")):
        print("bench_cni: reference plugins not installed "
              "(apt-get install containernetworking-plugins); skipped")
        return 0
    with tempfile.TemporaryDirectory(prefix="cnilab-bench-cni-") as tmp:
        boxes = [Sandbox(f"{PREFIX}{p}-", Path(tmp) / "bin") for p in ("ours", "ref", "full")]
        try:
            sides = [Side(boxes[0], "cnilab", "cnilab-ipam", f"{tmp}/ours"),
                     Side(boxes[1], "bridge", "host-local", f"{tmp}/ref")]
            per_call(sides)
            full = crowded(boxes[2], f"{tmp}/full")
        finally:
            for box in boxes:
                box.close()
    ours, ref = ({k: median(v) for k, v in s.seen.items()} for s in sides)
    print(f"CNI plugin, median of {RUNS} calls (a process per call, nsenter into a node "
          "namespace, as a runtime does)")
    print(f"{'ms':22}{'cnilab':>9}{'reference':>10}{'ratio':>7}{'CPU ours':>10}{'CPU ref':>10}"
          f"{'ratio':>7}")
    for label in ("ADD", "DEL", "VERSION"):
        print(row(label, ours[label], ref[label]))
    for label, t in full.items():
        print(row(label, t, None))
    for label, t in floor().items():
        print(row(f"floor: {label}", t, None))
    pm = podman_cost()
    if pm:
        print(row("Podman: net - none", *pm))
    cd = containerd_cost()
    if cd:
        print(row("containerd: cni - none", *cd))
    print(verdict(all(ours[c][0] <= 2.5 * ref[c][0] for c in ("ADD", "DEL")),
                  "ADD and DEL wall within 2.5x"))
    print(verdict(all(ours[c][1] <= 3 * ref[c][1] for c in ("ADD", "DEL")),
                  "ADD and DEL CPU within 3x"))
    print(verdict(ours["VERSION"][0] < 40, "VERSION under 40 ms"))
    grown = full[f"ADD+DEL, {PODS} pods"][1] - full["ADD+DEL, empty node"][1]
    grown_ref = full[f"reference, {PODS} pods"][1] - full["reference, empty node"][1]
    rules = full[f"iptables -A -D, {PODS} pods"][1] - full["iptables -A -D, empty"][1]
    print(verdict(grown <= 0.1 * full["ADD+DEL, empty node"][1], f"ADD+DEL CPU with {PODS} "
                  f"pods within 10% of an empty node's (+{grown:.1f} ms; the reference: "
                  f"+{grown_ref:.1f} ms; iptables alone: +{rules:.1f} ms)"))
    if pm:
        print(verdict(pm[0][0] <= 2 * pm[1][0], "a container's network under Podman within 2x"))
    if cd:
        print(verdict(cd[0][0] <= 2 * cd[1][0],
                      "a container's network under containerd's go-cni within 2x"))
    print(f"(load average while measuring: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
