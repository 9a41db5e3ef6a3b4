"""Finding the reference CNI plugins (CNI_PATH, then each family's folder) and the cniVersion a
runtime writes for them; the VERSION answers are recorded from containernetworking-plugins."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from cnilab.cni.exec import REFERENCE_DIRS, Call, config_version, find_reference, reference_dirs

# Recorded: `echo '{"cniVersion":"1.0.0"}' | CNI_COMMAND=VERSION /usr/lib/cni/bridge`.
BRIDGE_0_9_0 = {"cniVersion": "0.4.0",  # Debian 11 (Ubuntu 22.04 ships 0.9.1)
                "supportedVersions": ["0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0"]}
BRIDGE_1_1_1 = {"cniVersion": "1.0.0",  # Debian 12 and 13
                "supportedVersions": ["0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0"]}


def plugin_in(folder: Path, name: str = "bridge") -> str:
    """An executable file called `name` in `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    exe = folder / name
    exe.write_text("#!/bin/sh\n", encoding="utf-8")
    exe.chmod(stat.S_IRWXU)
    return str(exe)


def test_every_family_folder_is_searched() -> None:
    assert set(REFERENCE_DIRS) == {"/opt/cni/bin", "/usr/lib/cni", "/usr/libexec/cni"}
    assert reference_dirs({}) == list(REFERENCE_DIRS)


def test_cni_path_goes_first_without_repeating_a_folder() -> None:
    env = {"CNI_PATH": "/srv/cni::/usr/libexec/cni"}
    assert reference_dirs(env) == ["/srv/cni", "/usr/libexec/cni", "/opt/cni/bin", "/usr/lib/cni"]


def test_a_plugin_on_cni_path_is_found_before_the_usual_places(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    exe = plugin_in(tmp_path / "mine")
    monkeypatch.setenv("CNI_PATH", f"{tmp_path / 'empty'}:{tmp_path / 'mine'}")
    assert find_reference("bridge") == exe
    assert find_reference("no-such-plugin-here") is None


def test_a_file_that_is_not_executable_is_not_a_plugin(tmp_path: Path) -> None:
    exe = plugin_in(tmp_path)
    os.chmod(exe, stat.S_IRUSR | stat.S_IWUSR)
    assert find_reference("bridge", [str(tmp_path)]) is None


def answer(data: dict | None) -> Call:
    """A VERSION call that answered `data`."""
    return Call("/usr/lib/cni/bridge", "VERSION", {}, {}, 0 if data else 1, "", data)


def test_config_version_is_1_0_0_when_the_plugins_speak_it() -> None:
    assert config_version(answer(BRIDGE_1_1_1)) == "1.0.0"


def test_config_version_is_the_newest_an_older_plugin_speaks() -> None:
    assert config_version(answer(BRIDGE_0_9_0)) == "0.4.0"
    assert config_version(answer({"supportedVersions": ["0.3.1", "0.10.0", "0.4.0"]})) == "0.10.0"


def test_config_version_without_an_answer_stays_1_0_0() -> None:
    assert config_version(answer(None)) == "1.0.0"
