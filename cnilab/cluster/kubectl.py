"""A `kubectl` inside the nodes: `kubectl get nodes -o wide` from the cluster's real state.

The course's first command is `kubectl get node -o wide`. The cluster has no API server to ask,
so `cluster up` puts a small `kubectl` script beside the cluster's ledger (recorded and removed
like everything else), and `cluster exec` / `cluster shell` put its folder first in PATH. The
script runs `cnilab cluster kubectl`, which reads every column from the kernel and /proc now:
which nodes exist, their kubelet (listening on 10250: Ready), ens3's address, this machine's
kernel and OS; nothing is a constant but the role of controlplane and the versions' names.
"""

from __future__ import annotations

import contextlib
import os
import platform
import shlex
from pathlib import Path
from typing import Any, ClassVar

from cnilab import __version__
from cnilab.compat import valueclass
from cnilab.ledger import Ledger
from cnilab.ops import BadEntry
from cnilab.ops.files import OwnedFile

KUBELET_PORT = 10250
COLUMNS = ("NAME", "STATUS", "ROLES", "AGE", "VERSION")
WIDE = ("INTERNAL-IP", "EXTERNAL-IP", "OS-IMAGE", "KERNEL-VERSION", "CONTAINER-RUNTIME")
NODE_WORDS = ("nodes", "node", "no")  # kubectl's names for the resource


def bin_dir(ledger: Ledger) -> str:
    """Where the cluster's kubectl lives: beside its ledger (exec and shell put it in PATH)."""
    return str(ledger.path.with_suffix("")) + "-bin"


@valueclass(frozen=True)
class KubectlScript(OwnedFile):
    """The `kubectl` script of a cluster (mode 0755, removed only while it is exactly ours)."""

    mode: ClassVar[int] = 0o755

    file: str = ""

    @property
    def path(self) -> Path:
        return Path(self.file)

    def check(self) -> None:
        path = Path(self.file)
        if (not path.is_absolute() or path.name != "kubectl" or ".." in path.parts
                or not path.parent.name.endswith("-bin") or set(self.made) - {str(path.parent)}):
            raise BadEntry("bad_name", field="file")

    def argv(self) -> list[str]:
        return ["install", "-m", "0755", "/dev/stdin", self.file]


def script_op(ledger: Ledger, prefix: str, python: str) -> KubectlScript:
    """The cluster's kubectl: runs `cnilab cluster kubectl` for this cluster with `python`."""
    cmd = ["exec", python, "-m", "cnilab", "cluster"]
    if prefix:
        cmd += ["--prefix", prefix]
    return KubectlScript(None, file=str(Path(bin_dir(ledger)) / "kubectl"), lines=(
        "#!/bin/sh",
        f"# kubectl for the cnilab cluster {prefix or '(no prefix)'}: a stand-in that reads the",
        "# cluster's real state (cnilab cluster kubectl --help). `cnilab "
        + (f"--prefix {prefix} " if prefix else "") + "cluster down` removes it.",
        shlex.join(cmd) + ' kubectl "$@"'))


def wants_nodes(args: list[str]) -> tuple[bool, bool, list[str]] | None:
    """(nodes, wide, names) for `get nodes [-o wide] [NAME...]`; None for anything else."""
    words, wide, rest = [], False, iter(args)
    for arg in rest:
        if arg in ("-o", "--output"):
            arg = "-o" + next(rest, "")
        if arg.startswith(("-o", "--output=")):
            if arg.split("=", 1)[-1].removeprefix("-o") != "wide":
                return None  # -o json, yaml, name ...: not this stand-in's
            wide = True
        elif arg not in ("-A", "--all-namespaces"):
            words.append(arg)
    if len(words) < 2 or words[0] != "get" or words[1].split("/")[0] not in NODE_WORDS:
        return None
    names = words[2:] + ([words[1].split("/", 1)[1]] if "/" in words[1] else [])
    return True, wide, names


def age(seconds: float) -> str:
    """A duration as kubectl prints AGE (k8s.io/apimachinery duration.HumanDuration)."""
    s = int(seconds)
    minutes, hours, days = s // 60, s // 3600, s // 86400
    if s < 120:
        return f"{s}s"
    if minutes < 10:
        return f"{minutes}m{s % 60}s" if s % 60 else f"{minutes}m"
    if hours < 3:
        return f"{minutes}m"
    if hours < 8:
        return f"{hours}h{minutes % 60}m" if minutes % 60 else f"{hours}h"
    if hours < 48:
        return f"{hours}h"
    if hours < 192:
        return f"{days}d{hours % 24}h" if hours % 24 else f"{days}d"
    return f"{days}d"


def _started_ago(pid: int | None) -> float | None:
    """Seconds since a process started (/proc/PID/stat's starttime against /proc/uptime)."""
    if pid is None:
        return None
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as f:
            start = int(f.read().rsplit(")", 1)[1].split()[19])
        with open("/proc/uptime", encoding="ascii") as f:
            uptime = float(f.read().split()[0])
    except (OSError, IndexError, ValueError):
        return None
    return max(0.0, uptime - start / os.sysconf("SC_CLK_TCK"))


def os_image() -> str:
    """This machine's PRETTY_NAME (/etc/os-release), as the kubelet reports it."""
    for path in ("/etc/os-release", "/usr/lib/os-release"):  # (platform's reader is 3.10+)
        with contextlib.suppress(OSError, UnicodeDecodeError), open(path, encoding="utf-8") as f:
            for line in f:
                key, _, value = line.strip().partition("=")
                if key == "PRETTY_NAME":
                    return value.strip().strip("\"'") or "Linux"
            return "Linux"
    return "Linux"


def node_rows(status: dict[str, Any], wide: bool, names: list[str]) -> list[tuple[str, ...]]:
    """`kubectl get nodes` rows from the cluster's status: only nodes whose namespace exists.

    STATUS is Ready while the node's kubelet listens on 10250 and the node has its address on
    the LAN; AGE is the age of that kubelet; VERSION and CONTAINER-RUNTIME name cnilab, which
    plays both.
    """
    rows: list[tuple[str, ...]] = []
    for node in status["nodes"]:
        if names and node["name"] not in names:
            continue
        kubelet = next((p for p in node["ports"] if p["port"] == KUBELET_PORT
                        and p["process"] == "kubelet"), None)
        ready = kubelet is not None and node["ip"] is not None
        ago = _started_ago(kubelet["pid"] if kubelet else None)
        row: tuple[str, ...] = (
            node["name"], "Ready" if ready else "NotReady",
            "control-plane" if node["name"] == "controlplane" else "<none>",
            age(ago) if ago is not None else "<unknown>", f"v{__version__}-cnilab")
        if wide:
            row += (node["ip"] or "<none>", "<none>", os_image(), platform.release(),
                    f"cnilab://{__version__}")
        rows.append(row)
    return rows


def missing(status: dict[str, Any], names: list[str]) -> list[str]:
    """Names asked for that are no node (kubectl: `nodes "node09" not found`)."""
    known = {n["name"] for n in status["nodes"]}
    return [n for n in names if n not in known]
