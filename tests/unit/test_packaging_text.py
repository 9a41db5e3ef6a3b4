"""What a fresh machine needs, as the README, the Makefile and the Containerfile say it."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

from cnilab.compat import tomllib
from cnilab.i18n import lessons_dir

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text(encoding="utf-8")
MAKEFILE = (ROOT / "Makefile").read_text(encoding="utf-8")
CONTAINERFILE = (ROOT / "Containerfile").read_text(encoding="utf-8")

# The Debian package that gives each program a cluster hint tells the student to type.
PACKAGE_OF = {"ip": "iproute2", "ss": "iproute2", "bridge": "iproute2", "ping": "iputils-ping",
              "sysctl": "procps", "ps": "procps", "ifconfig": "net-tools", "route": "net-tools",
              "netstat": "net-tools", "arp": "net-tools", "iptables": "iptables",
              "hostname": "hostname", "cat": "coreutils", "wc": "coreutils",
              "grep": "grep"}
ESSENTIAL = {"hostname", "coreutils", "grep"}  # in every Debian install


def apt_packages() -> set[str]:
    line = next(ln for ln in MAKEFILE.splitlines() if ln.startswith("APT_PACKAGES"))
    return set(line.split(":=", 1)[1].split())


def test_a_minimal_image_gets_git_and_make_after_refreshing_its_package_lists() -> None:
    assert "apt-get update && apt-get install -y git make" in README
    assert "`sudo` may not even be installed" in README


def test_make_and_the_container_image_install_the_courses_tools_and_the_reference_plugins() -> None:
    assert {"net-tools", "containernetworking-plugins", "iproute2", "iptables"} <= apt_packages()
    for package in ("net-tools", "containernetworking-plugins"):
        assert package in CONTAINERFILE


def test_every_command_a_cluster_hint_names_is_installed_by_make() -> None:
    # `{exec} NODE -- CMD ...` and `ip -n ...` inside the hints: each program is installed.
    lesson = tomllib.loads((lessons_dir() / "cluster" / "en.toml").read_text("utf-8"))
    hints = [q["hint"] for q in lesson["questions"]]
    hints += [line for s in lesson["steps"] for line in s["inspect"]]
    programs = set()
    for hint in hints:
        for span in re.findall(r"`([^`]*)`", hint) or [hint]:
            for part in span.split("|"):
                words = shlex.split(part.replace("{exec}", "cnilab cluster exec"))
                if words[:3] == ["cnilab", "cluster", "exec"]:
                    words = words[words.index("--") + 1:]
                if words and words[0] not in ("kubectl", "cnilab", "crictl"):
                    programs.add(words[0])
    assert programs <= set(PACKAGE_OF), programs - set(PACKAGE_OF)
    assert {PACKAGE_OF[p] for p in programs} - ESSENTIAL <= apt_packages()
