"""Files cnilab writes: explicit modes whatever the umask, no symlink followed, no planted file
adopted. Root-free (owned by the user running the tests); tests/kernel/test_planted_files.py
repeats the attacks with a real second user."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from cnilab.cni.install import install
from cnilab.errors import CollisionError
from cnilab.ledger import Ledger
from cnilab.names import Identity
from cnilab.ops import AddNetns
from cnilab.runfiles import safe_dir, write_atomic
from tests.unit.fake_kernel import FakeKernel


def mode(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


@pytest.fixture
def umask_000() -> Iterator[None]:
    old = os.umask(0)
    try:
        yield
    finally:
        os.umask(old)


def test_under_umask_000_the_run_dir_and_its_files_get_their_own_modes(
        tmp_path: Path, umask_000: None) -> None:
    run = tmp_path / "deep" / "run"
    ledger = Ledger.of(Identity("eight-steps", "t-"), str(run))
    fake = FakeKernel()
    with ledger.lock():
        ledger.apply([AddNetns(None, "t-red")], fake)  # type: ignore[arg-type]
        fake.someone_makes_netns("t-blue")
        with pytest.raises(Exception, match="already exists"):
            ledger.apply([AddNetns(None, "t-blue")], fake)  # type: ignore[arg-type]
    assert mode(tmp_path / "deep") == 0o755 and mode(run) == 0o755
    assert mode(ledger.path) == 0o644 and mode(ledger.lock_path) == 0o600
    assert sorted(p.name for p in run.iterdir()) == sorted([ledger.path.name,
                                                           ledger.lock_path.name])


def test_an_existing_run_dir_others_can_write_is_refused_and_left_as_it_is(
        tmp_path: Path, umask_000: None) -> None:
    run = tmp_path / "run"
    run.mkdir(mode=0o777)
    ledger = Ledger.of(Identity("eight-steps", ""), str(run))
    with pytest.raises(CollisionError, match="can be written by other users"):
        ledger.set_mode(False)
    assert mode(run) == 0o777 and list(run.iterdir()) == []


def test_a_run_dir_below_a_folder_others_can_write_without_sticky_bit_is_refused(
        tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    with pytest.raises(CollisionError, match="changed by other users"):
        safe_dir(shared / "run")
    shared.chmod(0o1777)  # sticky, as /tmp: fine
    assert mode(safe_dir(shared / "run")) == 0o755


@pytest.mark.parametrize("planted", ["ledger", "lock", "run dir"])
def test_a_symlink_where_a_file_goes_is_never_followed(tmp_path: Path, planted: str) -> None:
    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    run = tmp_path / "run"
    run.mkdir()
    ledger = Ledger.of(Identity("eight-steps", ""), str(run))
    target = {"ledger": ledger.path, "lock": ledger.lock_path, "run dir": run}[planted]
    if planted == "run dir":
        run.rmdir()
        victim.unlink()
        victim.mkdir()
    target.symlink_to(victim)
    before = mode(victim)
    with pytest.raises(CollisionError, match="symbolic link"), ledger.lock():
        ledger.set_mode(False)
    if planted != "lock":
        with pytest.raises(CollisionError, match="symbolic link"):
            ledger.set_mode(False)
    assert mode(victim) == before and target.is_symlink()
    if victim.is_dir():
        assert list(victim.iterdir()) == []
    else:
        assert victim.read_text() == "precious\n"


def test_a_rewrite_uses_a_random_temp_name_not_a_planted_one(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    (tmp_path / "f.tmp").symlink_to(victim)
    (tmp_path / ".f.tmp").symlink_to(victim)
    write_atomic(tmp_path / "f", b"new\n")
    assert (tmp_path / "f").read_text() == "new\n" and victim.read_text() == "precious\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == [".f.tmp", "f", "f.tmp", "victim"]


def test_install_under_umask_000_writes_mode_0755_files(tmp_path: Path, umask_000: None) -> None:
    paths = install(tmp_path / "bin")
    assert [mode(p) for p in paths] == [0o755, 0o755] and mode(tmp_path / "bin") == 0o755
    assert all(p.read_text().startswith("#!") for p in paths)
    assert sorted(p.name for p in (tmp_path / "bin").iterdir()) == ["cnilab", "cnilab-ipam"]


def test_install_refuses_a_folder_others_can_write_without_sticky_bit(tmp_path: Path) -> None:
    shared = tmp_path / "bin"
    shared.mkdir()
    shared.chmod(0o777)
    with pytest.raises(CollisionError, match="changed by other users"):
        install(shared)
    assert list(shared.iterdir()) == []


def test_install_does_not_replace_a_planted_symlink(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "cnilab-ipam").symlink_to(victim)
    with pytest.raises(CollisionError, match="cnilab-ipam exists and is not cnilab's"):
        install(tmp_path / "bin")
    assert victim.read_text() == "precious\n"
    assert os.listdir(tmp_path / "bin") == ["cnilab-ipam"]  # nothing half-installed
