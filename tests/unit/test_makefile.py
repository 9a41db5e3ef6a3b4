"""`make system-deps` on each family: apt-get (Debian, Ubuntu), dnf (Fedora, RHEL), neither.

make runs the real Makefile with a PATH holding only stub package managers (shell scripts that
record what they were asked and install nothing), so no family's tool is ever really called.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
MAKE = shutil.which("make")
pytestmark = pytest.mark.skipif(MAKE is None, reason="make is not installed")
TOOLS = ("ip", "iptables", "ping", "sysctl", "nsenter")


def stub(folder: Path, name: str, body: str) -> None:
    """An executable shell script `name` in `folder`."""
    exe = folder / name
    exe.write_text(f"#!/bin/sh\n{body}\n", encoding="utf-8")
    exe.chmod(stat.S_IRWXU)


def family(tmp_path: Path, *, installed: tuple[str, ...] = (), apt: bool = False,
           dnf: bool = False, tools: tuple[str, ...] = (), python: bool = True) -> Path:
    """A bin folder as a machine of that family has it; the stubs log to tmp_path/calls."""
    folder = tmp_path / "bin"
    folder.mkdir()
    log = tmp_path / "calls"
    known = " ".join(installed)
    # dpkg -s NAME / rpm -q --whatprovides NAME: installed when NAME is in `installed`.
    query = f'for p in {known}; do [ "$p" = "$last" ] && exit 0; done; exit 1'
    if apt:
        stub(folder, "apt-get", f'echo "apt-get $*" >> {log}')
        stub(folder, "dpkg", f'for last; do :; done; {query}')
    if dnf:
        stub(folder, "dnf", f'echo "dnf $*" >> {log}')
        stub(folder, "rpm", f'for last; do :; done; {query}')
    for tool in tools:
        stub(folder, tool, "exit 0")
    if python:
        os.symlink(sys.executable, folder / "python3")
    else:
        stub(folder, "python3", "exit 1")
    return folder


def make(folder: Path) -> subprocess.CompletedProcess[str]:
    """`make -s system-deps` with only `folder` on PATH."""
    assert MAKE is not None
    return subprocess.run([MAKE, "-s", "-C", str(ROOT), "system-deps",
                           f"PYTHON={folder / 'python3'}"],
                          env={"PATH": str(folder)}, capture_output=True, text=True, check=False)


def calls(tmp_path: Path) -> list[str]:
    """What the stub package managers were asked, in order."""
    log = tmp_path / "calls"
    return log.read_text(encoding="utf-8").splitlines() if log.exists() else []


def test_apt_installs_only_the_missing_debian_packages(tmp_path: Path) -> None:
    done = make(family(tmp_path, apt=True, dnf=True, installed=("iproute2", "procps")))
    assert done.returncode == 0, done.stderr
    assert calls(tmp_path) == [
        "apt-get update -q",
        "apt-get install -y -q iptables nftables iputils-ping net-tools tcpdump curl "
        "containernetworking-plugins"]


def test_dnf_installs_the_fedora_names_when_there_is_no_apt(tmp_path: Path) -> None:
    done = make(family(tmp_path, dnf=True, installed=("iproute", "python3")))
    assert done.returncode == 0, done.stderr
    assert ("installing: iptables-nft nftables iputils procps-ng containernetworking-plugins "
            "net-tools tcpdump curl") in done.stdout
    assert calls(tmp_path) == ["dnf install -y -q iptables-nft nftables iputils procps-ng "
                               "containernetworking-plugins net-tools tcpdump curl"]


def test_dnf_is_not_called_when_everything_is_there(tmp_path: Path) -> None:
    names = ("iproute", "iptables-nft", "nftables", "iputils", "procps-ng", "python3",
             "containernetworking-plugins", "net-tools", "tcpdump", "curl")
    done = make(family(tmp_path, dnf=True, installed=names))
    assert (done.returncode, done.stdout, calls(tmp_path)) == (0, "", [])


def test_elsewhere_present_tools_are_enough(tmp_path: Path) -> None:
    done = make(family(tmp_path, tools=TOOLS))
    assert (done.returncode, done.stdout) == (0, ""), done.stderr


def test_elsewhere_the_missing_commands_are_named_with_what_provides_them(
        tmp_path: Path) -> None:
    done = make(family(tmp_path, tools=("ip", "iptables", "sysctl"), python=False))
    assert done.returncode != 0
    # The recipe also looks in /usr/sbin and /sbin (a user's PATH may lack them).
    missing = [t for t in ("ping", "nsenter") if shutil.which(t, path="/usr/sbin:/sbin") is None]
    first = done.stdout.splitlines()[0]
    assert first == ("cnilab: neither apt-get nor dnf here, and these are missing: "
                     + " ".join([*missing, "python>=3.9+venv"]))
    assert "iputils (ping)" in done.stdout and "util-linux (nsenter)" in done.stdout
    assert calls(tmp_path) == []


def test_the_readme_set_up_commands_are_the_makefiles_lists() -> None:
    lists = {}
    for line in (ROOT / "Makefile").read_text(encoding="utf-8").splitlines():
        name, sep, value = line.partition(":=")
        if sep and name.strip() in ("APT_PACKAGES", "DNF_PACKAGES"):
            lists[name.strip()] = value.split()
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert f"`sudo apt-get install -y {' '.join(lists['APT_PACKAGES'])} python3-venv`" in readme
    assert f"`sudo dnf install -y {' '.join(lists['DNF_PACKAGES'])}`" in readme
