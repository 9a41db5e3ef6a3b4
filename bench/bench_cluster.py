"""Benchmark: `cluster up --nodes 2 --pods-per-node 50` + `down`, against the same 100 pods
attached by running the reference `bridge` plugin (+ host-local) once per pod.

Run as root: `python bench/bench_cluster.py` (or `sudo make bench`). Everything lives in
namespaces under this script's own prefix and is removed at the end, also on failure.

- cnilab: Cluster.up() then Cluster.down(), pods attached in process by the cnilab CNI plugin.
- reference: the same cluster without pods (cnilab), then for each pod a namespace and one
  reference `bridge` ADD run inside the node's namespace (nsenter), as a runtime runs it;
  then one DEL per pod, the namespaces removed, and the cluster down.
The per-pod cost is the difference with a cluster of 0 pods, divided by 100.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from cnilab.cluster.cluster import Cluster, cluster_ledger
from cnilab.cluster.plan import POD_BRIDGE, build_plan
from cnilab.cni.runtime import find_reference
from cnilab.kernel import Kernel, list_netns, netns_path

RUNS = int(os.environ.get("BENCH_RUNS", "3"))
NODES, PODS = 2, 50
PREFIX = f"bcl{os.getpid() % 100000}-"
REFERENCE = os.path.dirname(find_reference("bridge") or "/usr/lib/cni/bridge")


def cluster(pods: int, run_dir: str) -> Cluster:
    """A cluster under the bench's prefix with its own ledger."""
    # The cluster's own ledger (its ops registry): a bare Ledger cannot read back the pods'
    # attachments and IPAM folder, so down left them and the next up found its leases taken.
    return Cluster(build_plan(NODES, pods, PREFIX), ledger=cluster_ledger(PREFIX, run_dir))


def timed(fn: Callable[[], object]) -> float:
    """Seconds one call takes."""
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def ours(pods: int, run_dir: str) -> tuple[float, float]:
    """(up, down) seconds of the cnilab cluster with `pods` per node."""
    c = cluster(pods, run_dir)
    with c.locked():
        up = timed(c.up)
        down = timed(c.down)
    return up, down


def reference_call(command: str, node_ns: str, pod_ns: str, cid: str, conf: bytes) -> None:
    """One run of the reference bridge plugin inside the node's namespace."""
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "CNI_COMMAND": command,
           "CNI_CONTAINERID": cid, "CNI_NETNS": netns_path(pod_ns), "CNI_IFNAME": "eth0",
           "CNI_PATH": REFERENCE}
    done = subprocess.run(["nsenter", f"--net={netns_path(node_ns)}", "--",
                           f"{REFERENCE}/bridge"], input=conf, env=env, capture_output=True,
                          check=False)
    if done.returncode != 0:
        raise SystemExit(f"reference bridge {command} failed: {done.stdout!r} {done.stderr!r}")


def reference(run_dir: str) -> tuple[float, float]:
    """(up, down) seconds: a pod-less cnilab cluster plus one reference ADD/DEL per pod."""
    c = cluster(0, run_dir)
    plan = build_plan(NODES, PODS, PREFIX)
    store = tempfile.mkdtemp(prefix="bench-cluster-ipam-")
    pods = [(plan.netns(n), plan.pod_netns(p), str(n.pod_cidr), str(n.bridge_address.ip))
            for n in plan.nodes for p in plan.pods(n)]

    def conf(cidr: str, gw: str, node_ns: str) -> bytes:
        return json.dumps({
            "cniVersion": "1.0.0", "name": "cbr0", "type": "bridge", "bridge": POD_BRIDGE,
            "isGateway": True, "ipMasq": False,
            "ipam": {"type": "host-local", "ranges": [[{"subnet": cidr, "gateway": gw}]],
                     "routes": [{"dst": "0.0.0.0/0"}], "dataDir": f"{store}/{node_ns}"}}).encode()

    def up() -> None:
        c.up()
        with Kernel() as k:
            for node_ns, pod_ns, cidr, gw in pods:
                k.add_netns(pod_ns)
                reference_call("ADD", node_ns, pod_ns, pod_ns, conf(cidr, gw, node_ns))

    def down() -> None:
        with Kernel() as k:
            for node_ns, pod_ns, cidr, gw in pods:
                reference_call("DEL", node_ns, pod_ns, pod_ns, conf(cidr, gw, node_ns))
                k.remove_netns(pod_ns)
        c.down()

    try:
        with c.locked():
            return timed(up), timed(down)
    finally:
        shutil.rmtree(store, ignore_errors=True)


def cleanup(run_dir: str) -> None:
    """Bring down whatever a failed run left, then sweep the bench's own namespaces."""
    c = cluster(0, run_dir)
    with c.locked():
        c.down()
    with Kernel() as k:
        for name in list_netns():
            if name.startswith(PREFIX):
                k.remove_netns(name)


def main() -> int:
    """Measure both ways RUNS times and print medians side by side."""
    if os.geteuid() != 0:
        print("bench_cluster: needs root (it builds network namespaces)", file=sys.stderr)
        return 1
    if not (os.access(f"{REFERENCE}/bridge", os.X_OK) and os.access(f"{REFERENCE}/host-local",
                                                                    os.X_OK)):
        print("bench_cluster: reference plugins not installed "
              "(apt-get install containernetworking-plugins); skipped")
        return 0
    run_dir = tempfile.mkdtemp(prefix="bench-cluster-run-")
    rows: dict[str, list[tuple[float, float]]] = {"empty": [], "cnilab": [], "reference": []}
    try:
        for _ in range(RUNS):
            rows["empty"].append(ours(0, run_dir))
            rows["cnilab"].append(ours(PODS, run_dir))
            rows["reference"].append(reference(run_dir))
    finally:
        cleanup(run_dir)
        shutil.rmtree(run_dir, ignore_errors=True)
    med = {k: (statistics.median(u for u, _ in v), statistics.median(d for _, d in v),
               statistics.median(u + d for u, d in v)) for k, v in rows.items()}
    pods = NODES * PODS
    print(f"cluster up + down, {NODES} nodes x {PODS} pods, median of {RUNS} runs (seconds)")
    print(f"{'':34}{'up':>9}{'down':>9}{'total':>9}{'per pod (ms)':>15}")
    for key, label in (("empty", "cnilab, 0 pods (the cluster alone)"),
                       ("cnilab", "cnilab (in-process CNI plugin)"),
                       ("reference", "reference bridge, a process per pod")):
        up, down, total = med[key]
        per_pod = "" if key == "empty" else f"{(total - med['empty'][2]) / pods * 1000:15.1f}"
        print(f"{label:34}{up:9.2f}{down:9.2f}{total:9.2f}{per_pod}")
    ratio = med["reference"][2] / med["cnilab"][2]
    pod_ratio = (med["reference"][2] - med["empty"][2]) / (med["cnilab"][2] - med["empty"][2])
    print(f"reference / cnilab: {ratio:.1f}x overall, {pod_ratio:.1f}x per pod (target: >= 2x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
