"""A run folder that is full or read-only (a small tmpfs as CNILAB_RUN_DIR): a ledger line is
written whole or the command stops, with one line, before the kernel is touched."""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from helpers import Cnilab, prefixed_netns

from cnilab.lab.lab import Lab, lab_ledger
from cnilab.lab.steps import FreshNodeSysctl, setup_ops
from cnilab.lab.topology import default_topology

PAGE = 4096


@contextmanager
def tmpfs(path: Path, *options: str) -> Iterator[Path]:
    """A 64 KiB tmpfs at `path` (root's, 0755), unmounted afterwards whatever happens."""
    path.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", ",".join(("size=64k", "mode=0755", *options)),
                    "tmpfs", str(path)], check=True)
    try:
        yield path
    finally:
        subprocess.run(["umount", str(path)], check=True)


def fill(folder: Path, pages_left: int) -> None:
    """Take all of the tmpfs's free space but `pages_left` pages."""
    st = os.statvfs(folder)
    with open(folder / "filler", "wb") as f:
        f.write(b"x" * ((st.f_bavail - pages_left) * st.f_frsize))
    assert os.statvfs(folder).f_bavail == pages_left


@pytest.fixture
def long_prefix() -> Iterator[str]:
    """A unique prefix long enough that the lab's ledger needs more than one page."""
    value = f"ct{uuid.uuid4().hex[:6]}-" + "p" * 30 + "-"
    yield value
    from tests.conftest import remove_prefixed_netns

    remove_prefixed_netns(value)


def unrecorded(prefix: str) -> list[str]:
    """The lab's ops that the kernel holds but the ledger does not record (should be none)."""
    topo = default_topology(prefix=prefix)
    lab = Lab(topo)
    try:
        snap = lab.snapshot()
        recorded = lab.ledger.ops()
        wanted = list(setup_ops(topo)) + [op for s in lab.steps for op in s.ops]
        # A fresh node's ip_forward=0 holds before anyone sets it: nothing made it.
        return [op.command(topo.node) for op in wanted if not isinstance(op, FreshNodeSysctl)
                and op.satisfied(snap) and op not in recorded]
    finally:
        lab.kernel.close()


def test_a_full_run_folder_stops_the_lab_at_a_whole_line_and_teardown_still_removes_it(
        long_prefix: str, run_dir: Path) -> None:
    cnilab = Cnilab(long_prefix, run_dir)
    with tmpfs(run_dir):
        try:
            fill(run_dir, 2)  # a page for the lock, one for the ledger: the lab needs two
            done = cnilab.run("run-all", "--yes", "--no-proof")
            assert done.returncode == 2, done.stderr
            assert len(done.stderr.strip().splitlines()) == 1, done.stderr
            assert "cannot write" in done.stderr and "Traceback" not in done.stderr
            ledger = lab_ledger(default_topology(prefix=long_prefix))
            data = ledger.path.read_bytes()
            assert data.endswith(b"\n") and ledger.problems == []  # no line cut in half
            assert len(ledger.records()) > 3  # the run got that far before the folder was full
            assert unrecorded(long_prefix) == []  # nothing made without its line first
            down = cnilab.run("teardown")  # on the full folder still
            assert down.returncode == 0, down.stderr
            assert prefixed_netns(long_prefix) == []
            assert sorted(p.name for p in run_dir.iterdir()) == ["filler"]  # no ledger, no lock
        finally:
            cnilab.run("teardown")


def test_a_read_only_run_folder_is_one_line_and_exit_2_and_makes_nothing(
        cnilab: Cnilab) -> None:
    with tmpfs(cnilab.run_dir, "ro"):
        for args in (("step", "1"), ("cni", "none", "box"), ("cluster", "up"),
                     ("scenario", "start", "--random"), ("teardown",)):
            done = cnilab.run(*args)
            assert done.returncode == 2, (args, done.stderr)
            assert len(done.stderr.strip().splitlines()) == 1, (args, done.stderr)
            assert "Read-only file system" in done.stderr, (args, done.stderr)
            assert prefixed_netns(cnilab.prefix) == [], args


def test_no_lock_file_stays_after_teardown_cni_teardown_or_cluster_down(cnilab: Cnilab) -> None:
    for make, remove in ((("step", "1"), ("teardown",)),
                         (("cni", "none", "box"), ("cni", "teardown")),
                         (None, ("cluster", "down"))):
        if make is not None:
            made = cnilab.run(*make)
            assert made.returncode == 0, made.stderr
            assert any(p.suffix == ".lock" for p in cnilab.run_dir.iterdir())
        done = cnilab.run(*remove)
        assert done.returncode == 0, (remove, done.stderr)
        assert [p.name for p in cnilab.run_dir.iterdir() if p.is_file()] == [], remove
    assert prefixed_netns(cnilab.prefix) == []


def test_cni_teardown_says_which_ledger_lines_it_could_not_read(cnilab: Cnilab) -> None:
    from cnilab.cni.runtime import Runtime

    ledger = Runtime(cnilab.prefix, str(cnilab.run_dir)).ledger
    cnilab.run_dir.mkdir(mode=0o755)
    ledger.path.write_text('{"in_place": false}\n{"seq": 1, "op": "AddNetns", "netns": nu\n')
    done = cnilab.run("cni", "teardown")
    assert done.returncode == 0, done.stderr
    assert "line 2" in done.stderr and ledger.path.name in done.stderr, done.stderr
