"""A ledger line is written whole or not at all; a lock file goes with its lab; what names an
answer is root's alone; an output file is begun before anything is done. No root needed."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from cnilab import runfiles
from cnilab.errors import ConfigError
from cnilab.ledger import Ledger
from cnilab.names import Identity
from cnilab.ops import AddNetns
from cnilab.ops.faults import FAULT_OPS, ScenarioRecord
from cnilab.runfiles import Output
from tests.unit.fake_kernel import FakeKernel


def mode(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


@pytest.fixture(params=[0o000, 0o077, 0o022])
def umask(request: pytest.FixtureRequest) -> Iterator[int]:
    old = os.umask(request.param)
    try:
        yield request.param
    finally:
        os.umask(old)


def test_a_short_write_is_cut_back_off_and_stops_the_op_before_the_kernel(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ledger = Ledger.of(Identity("eight-steps", "t-"), str(tmp_path))
    fake = FakeKernel()
    with ledger.lock():
        ledger.apply([AddNetns(None, "t-red")], fake)  # type: ignore[arg-type]
        before = ledger.path.read_bytes()
        real = os.write
        monkeypatch.setattr(runfiles.os, "write", lambda fd, data: real(fd, data[:10]))
        with pytest.raises(ConfigError, match="cannot write"):
            ledger.apply([AddNetns(None, "t-blue")], fake)  # type: ignore[arg-type]
        monkeypatch.undo()
        assert ledger.path.read_bytes() == before
        assert "t-blue" not in fake.spaces  # never asked for
    assert Ledger.of(Identity("eight-steps", "t-"), str(tmp_path)).problems == []


def test_a_proof_that_cannot_be_written_keeps_the_intent_of_what_may_be_made(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ledger = Ledger.of(Identity("eight-steps", "t-"), str(tmp_path))
    fake = FakeKernel()

    def full(seq: int, proof: object) -> None:
        raise ConfigError.of("cannot_write", path=ledger.path, reason="No space left on device")

    monkeypatch.setattr(ledger, "note", full)
    with ledger.lock(), pytest.raises(ConfigError):
        ledger.apply([AddNetns(None, "t-red")], fake)  # type: ignore[arg-type]
    # Whether or not the kernel went on, the intent stays: teardown's undo is idempotent.
    again = Ledger.of(Identity("eight-steps", "t-"), str(tmp_path))
    assert again.ops() == [AddNetns(None, "t-red")]


def test_the_lock_file_goes_when_the_lab_is_gone_and_stays_while_it_is_up(
        tmp_path: Path) -> None:
    ledger = Ledger.of(Identity("eight-steps", "t-"), str(tmp_path))
    fake = FakeKernel()
    with ledger.lock():
        assert ledger.lock_path.exists()
    assert not ledger.lock_path.exists()  # nothing was made: nothing stays
    with ledger.lock():
        ledger.apply([AddNetns(None, "t-red")], fake)  # type: ignore[arg-type]
    assert ledger.lock_path.exists() and ledger.path.exists()
    with ledger.lock():
        ledger.teardown(fake)  # type: ignore[arg-type]
    assert sorted(os.listdir(tmp_path)) == []


def test_a_lock_file_replaced_under_its_name_is_not_removed(tmp_path: Path) -> None:
    ledger = Ledger.of(Identity("eight-steps", "t-"), str(tmp_path))
    with ledger.lock():
        ledger.lock_path.unlink()
        ledger.lock_path.write_text("")  # someone else's file now has the name
    assert ledger.lock_path.exists()


def test_a_ledger_that_names_a_scenario_is_root_only_whatever_the_umask(
        tmp_path: Path, umask: int) -> None:
    ops = {**FAULT_OPS, "AddNetns": AddNetns}
    ledger = Ledger.of(Identity("eight-steps", "t-"), str(tmp_path), ops=ops)
    fake = FakeKernel()
    with ledger.lock():
        ledger.set_mode(False)
        record = ScenarioRecord(None, str(tmp_path / "eight-steps@t-.scenario"), "no-masq")
        ledger.apply([record], fake)  # type: ignore[arg-type]
        assert mode(ledger.path) == 0o600
        plain = Ledger.of(Identity("eight-steps", "t-"), str(tmp_path), ops=ops)
        plain.apply([AddNetns(None, "t-red"), AddNetns(None, "t-blue")], fake)  # type: ignore
        assert mode(ledger.path) == 0o600
        plain.forget([AddNetns(None, "t-blue")])  # a rewrite keeps it private too
        assert mode(ledger.path) == 0o600


def test_a_plain_lab_ledger_stays_readable(tmp_path: Path, umask: int) -> None:
    ledger = Ledger.of(Identity("eight-steps", "t-"), str(tmp_path))
    with ledger.lock():
        ledger.apply([AddNetns(None, "t-red")], FakeKernel())  # type: ignore[arg-type]
    assert mode(ledger.path) == 0o644


def test_an_output_file_is_0644_whatever_the_umask_and_replaces_a_symlink_unfollowed(
        tmp_path: Path, umask: int) -> None:
    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    (tmp_path / "x.svg").symlink_to(victim)
    out = Output(tmp_path / "x.svg")
    out.commit(b"<svg/>")
    assert (tmp_path / "x.svg").read_bytes() == b"<svg/>" and not (tmp_path / "x.svg").is_symlink()
    assert mode(tmp_path / "x.svg") == 0o644 and victim.read_text() == "precious\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["victim", "x.svg"]


@pytest.mark.parametrize("where", ["missing/x.svg", "", "file/x.svg"])
def test_an_output_file_that_cannot_be_written_fails_when_begun(
        tmp_path: Path, where: str) -> None:
    (tmp_path / "file").write_text("")
    with pytest.raises(ConfigError, match="cannot write"):
        Output(tmp_path / where)  # "": the folder itself
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]


def test_a_lock_file_removed_between_open_and_flock_is_opened_again(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import fcntl

    from cnilab import ledger as ledger_module

    ledger = Ledger.of(Identity("eight-steps", "t-"), str(tmp_path))
    real, calls = fcntl.flock, []

    def flock(fd: int, how: int) -> None:
        if not calls:  # its last holder removed it just after we opened it
            ledger.lock_path.unlink()
        calls.append(fd)
        real(fd, how)

    monkeypatch.setattr(ledger_module.fcntl, "flock", flock)
    with ledger.lock():
        held = os.stat(ledger.lock_path)
        assert len(calls) == 2  # the stale file was let go, the one under the name is held
        with open(ledger.lock_path) as f:
            assert f.read() == str(os.getpid())
    assert held.st_nlink == 1
