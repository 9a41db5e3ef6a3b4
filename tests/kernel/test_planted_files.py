"""Another user plants symlinks and files where cnilab writes as root: a real second user
(nobody), in a sticky world-writable folder under /tmp, as on a shared machine."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import Cnilab, prefixed_netns

from cnilab.cni.install import install
from cnilab.errors import CollisionError

NOBODY = 65534


def as_nobody(*argv: str) -> subprocess.CompletedProcess[str]:
    """Run a command as the user nobody (a real second user, no privileges)."""
    return subprocess.run(argv, user=NOBODY, group=NOBODY, capture_output=True, text=True,
                          check=False)


@pytest.fixture
def shared() -> Iterator[Path]:
    """A folder like /tmp: everyone may write, the sticky bit set, under /tmp itself."""
    path = Path(tempfile.mkdtemp(prefix="cnilab-shared-", dir="/tmp"))
    path.chmod(0o1777)
    try:
        yield path
    finally:
        shutil.rmtree(path)


@pytest.fixture
def victim(tmp_path: Path) -> Path:
    """A root-owned file a planted symlink points at; it must never change."""
    path = tmp_path / "victim"
    path.write_text("precious\n")
    path.chmod(0o600)
    return path


def test_install_refuses_a_symlink_another_user_planted_under_the_plugins_name(
        shared: Path, victim: Path) -> None:
    assert as_nobody("ln", "-s", str(victim), str(shared / "cnilab")).returncode == 0
    with pytest.raises(CollisionError, match="not cnilab's to replace"):
        install(shared)
    assert victim.read_text() == "precious\n" and stat.S_IMODE(victim.stat().st_mode) == 0o600
    assert (shared / "cnilab").is_symlink() and os.lstat(shared / "cnilab").st_uid == NOBODY
    assert not (shared / "cnilab-ipam").exists()


def test_install_refuses_a_file_another_user_planted_and_owns(shared: Path) -> None:
    planted = shared / "cnilab-ipam"
    assert as_nobody("sh", "-c", f"echo planted > {planted}").returncode == 0
    with pytest.raises(CollisionError, match="cnilab-ipam exists and is not cnilab's"):
        install(shared)
    assert planted.read_text() == "planted\n" and planted.stat().st_uid == NOBODY


def test_install_ignores_planted_temp_names_and_writes_root_owned_plugins(
        shared: Path, victim: Path) -> None:
    for name in (".cnilab.tmp", ".cnilab-ipam.tmp", "cnilab.tmp"):
        assert as_nobody("ln", "-s", str(victim), str(shared / name)).returncode == 0
    paths = install(shared)
    assert victim.read_text() == "precious\n"
    for path in paths:
        st = os.lstat(path)
        assert stat.S_ISREG(st.st_mode) and st.st_uid == 0
        assert stat.S_IMODE(st.st_mode) == 0o755
    assert as_nobody("sh", "-c", f"echo evil >> {paths[0]}").returncode != 0
    assert all((shared / n).is_symlink() for n in (".cnilab.tmp", ".cnilab-ipam.tmp"))


@pytest.mark.parametrize("planted", ["folder", "symlink"])
def test_a_run_dir_another_user_made_is_refused_before_anything_is_touched(
        shared: Path, prefix: str, planted: str, victim: Path) -> None:
    run = shared / "run"
    if planted == "folder":
        assert as_nobody("mkdir", str(run)).returncode == 0
    else:
        assert as_nobody("ln", "-s", str(victim.parent), str(run)).returncode == 0
    done = Cnilab(prefix, run).run("step", "1")
    assert done.returncode == 4, done.stderr
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
    assert ("belongs to user 65534" if planted == "folder" else "symbolic link") in done.stderr
    assert prefixed_netns(prefix) == []
    assert sorted(p.name for p in victim.parent.iterdir()) == ["victim"]


def test_under_umask_000_no_other_user_can_add_to_the_ledger(shared: Path, prefix: str) -> None:
    run = shared / "run"
    lab = Cnilab(prefix, run)
    done = subprocess.run(lab.argv("step", "1"), env=lab.env(), umask=0, capture_output=True,
                          text=True, check=False)
    try:
        assert done.returncode == 0, done.stderr
        assert stat.S_IMODE(run.stat().st_mode) == 0o755 and run.stat().st_uid == 0
        files = {p.suffix: p for p in run.iterdir()}
        assert stat.S_IMODE(files[".jsonl"].stat().st_mode) == 0o644
        assert stat.S_IMODE(files[".lock"].stat().st_mode) == 0o600
        line = '{"op": "SetSysctl", "netns": null, "key": "net.ipv4.ip_forward", "value": "1"}'
        assert as_nobody("sh", "-c", f"echo '{line}' >> '{files['.jsonl']}'").returncode != 0
        assert as_nobody("sh", "-c", f"echo x > '{run}/planted'").returncode != 0
    finally:
        assert lab.run("teardown").returncode == 0
    assert prefixed_netns(prefix) == []
