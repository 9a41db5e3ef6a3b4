"""iptables, run as the program (an argument list, never a shell) inside a namespace.

pyroute2 does not speak to netfilter's rule tables the way iptables does; running the very
command the lesson prints keeps the printed and the applied rule the same.
"""

from __future__ import annotations

import os
import subprocess

from cnilab.errors import KernelError, MissingTool
from cnilab.kernel.netns import netns_path


def which(program: str) -> str | None:
    """A program's path on PATH, or None when it is not installed."""
    # shutil.which would import shutil (bz2, lzma, fnmatch): every CNI plugin call pays imports.
    for folder in os.environ.get("PATH", os.defpath).split(os.pathsep):
        path = os.path.join(folder or ".", program)
        if os.path.isfile(path) and os.access(path, os.X_OK):
            return path
    return None


def find() -> str | None:
    """The iptables binary's path on PATH, or None when it is not installed."""
    return which("iptables")


def require(binary: str | None) -> str:
    """The binary, or MissingTool saying how to install it."""
    if binary is None:
        raise MissingTool.of("no_iptables")
    return binary


def run(binary: str | None, netns: str | None, args: list[str], missing_ok: bool = False) -> str:
    """Run iptables inside `netns`; returns stdout.

    missing_ok: a -D of a rule (or in a namespace) that is already gone is not an error.
    """
    if missing_ok and netns is not None and not os.path.exists(netns_path(netns)):
        return ""
    argv = [require(binary), *args]
    if netns is not None:
        argv = ["nsenter", f"--net={netns_path(netns)}", "--", *argv]
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    if done.returncode == 1 and missing_ok:
        return ""
    if done.returncode != 0:
        detail = (done.stderr.strip().splitlines() or ["no message"])[0]
        raise KernelError(f"iptables {' '.join(args)} failed: {detail}")
    return done.stdout


def nat_rules(binary: str | None, netns: str | None) -> tuple[str, ...]:
    """The rules of the nat table inside `netns`, as `iptables -t nat -S` prints them (-A only)."""
    out = run(binary, netns, ["-t", "nat", "-S"])
    return tuple(ln for ln in out.splitlines() if ln.startswith("-A "))


def backend(binary: str | None) -> str | None:
    """'nf_tables' or 'legacy', from `iptables --version`; None when not installed."""
    if binary is None:
        return None
    out = subprocess.run([binary, "--version"], capture_output=True, text=True,
                         check=False).stdout
    return out[out.find("(") + 1:out.find(")")] if "(" in out else "legacy"
