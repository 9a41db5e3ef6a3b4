"""Install hints name the system's own package manager and its package names."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from cnilab import packages
from cnilab.errors import MissingTool
from cnilab.kernel import iptables

ROOT = Path(__file__).resolve().parents[2]


def on_path(*tools: str) -> object:
    """A packages.which that finds only `tools`."""
    return lambda name, *a, **kw: f"/usr/bin/{name}" if name in tools else None


@pytest.mark.parametrize(("tools", "expected"), [
    (("apt-get",), "sudo apt-get install iptables iproute2"),
    (("dnf",), "sudo dnf install iptables-nft iproute"),
    (("apt-get", "dnf"), "sudo apt-get install iptables iproute2"),
    ((), "sudo apt-get install iptables iproute2"),
])
def test_the_command_follows_the_package_manager(monkeypatch: pytest.MonkeyPatch,
                                                 tools: tuple[str, ...], expected: str) -> None:
    monkeypatch.setattr(packages, "which", on_path(*tools))
    assert packages.install_command("iptables", "iproute2") == expected


def test_a_missing_tool_hint_in_both_languages(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(packages, "which", on_path("dnf"))
    with pytest.raises(MissingTool) as caught:
        iptables.require(None)
    assert caught.value.render("en")[1] == "install it: sudo dnf install iptables-nft"
    assert caught.value.render("ko")[1] == "설치하세요: sudo dnf install iptables-nft"


def test_the_names_are_the_makefiles() -> None:
    text = (ROOT / "Makefile").read_text()
    apt = re.search(r"^APT_PACKAGES := (.*)$", text, re.M).group(1).split()  # type: ignore
    dnf = re.search(r"^DNF_PACKAGES := (.*)$", text, re.M).group(1).split()  # type: ignore
    for debian, fedora in packages.DNF_NAMES.items():
        assert debian in apt and fedora in dnf
