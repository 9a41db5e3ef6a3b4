"""How to install a system tool here: the package manager's command, the package as it names it.

The same lists as the Makefile's APT_PACKAGES and DNF_PACKAGES (a unit test keeps them equal).
"""

from __future__ import annotations

import os

# Debian's package names (apt-get) and Fedora's / RHEL's where they differ (dnf).
DNF_NAMES = {"iproute2": "iproute", "iptables": "iptables-nft", "iputils-ping": "iputils",
             "procps": "procps-ng"}


def which(program: str) -> str | None:
    """A program's path on PATH, or None when it is not installed."""
    # shutil.which would import shutil (bz2, lzma, fnmatch): every CNI plugin call pays imports.
    for folder in os.environ.get("PATH", os.defpath).split(os.pathsep):
        path = os.path.join(folder or ".", program)
        if os.path.isfile(path) and os.access(path, os.X_OK):
            return path
    return None


def install_command(*packages: str) -> str:
    """`sudo apt-get install ...`, or `sudo dnf install ...` with Fedora's names where dnf is
    the system's package manager (apt-get, the most common, when neither is found)."""
    if which("apt-get") is None and which("dnf") is not None:
        return "sudo dnf install " + " ".join(DNF_NAMES.get(p, p) for p in packages)
    return "sudo apt-get install " + " ".join(packages)
