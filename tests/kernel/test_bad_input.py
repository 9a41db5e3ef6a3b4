"""Every bad input is one line and exit 2, checked before the first namespace is made; the
runtime refuses a namespace that already holds one of its pods before any plugin runs."""

from __future__ import annotations

import json
import os
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import Cnilab, prefixed_netns

from cnilab.kernel import Kernel


@pytest.fixture
def cni(prefix: str, run_dir: Path) -> Iterator[Cnilab]:
    """`cnilab --prefix P ...`: the CNI lesson and the lab torn down even when the test fails."""
    runner = Cnilab(prefix, run_dir)
    yield runner
    runner.run("cni", "teardown")
    runner.run("teardown")


def refused(done: subprocess.CompletedProcess[str], words: str) -> None:
    """One line on stderr, saying `words`, and exit 2; no traceback."""
    assert done.returncode == 2, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert words in done.stderr, done.stderr


def test_a_record_or_junit_path_that_cannot_be_written_stops_before_the_lab(cni: Cnilab) -> None:
    refused(cni.run("run-all", "--yes", "--no-proof", "--record", "/nonexistent/x.svg"),
            "cannot write /nonexistent/x.svg")
    refused(cni.run("run-all", "--yes", "--no-proof", "--junit", "/proc/x.xml"),
            "cannot write /proc/x.xml")
    folder = cni.run_dir.parent / "slides.svg"
    folder.mkdir()
    refused(cni.run("step", "1", "--record", str(folder)), f"cannot write {folder}")
    assert prefixed_netns(cni.prefix) == [] and not cni.run_dir.exists()


def test_record_and_junit_files_are_0644_whatever_the_umask_and_follow_no_symlink(
        cni: Cnilab, tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    victim.chmod(0o600)
    (tmp_path / "slides.svg").symlink_to(victim)
    old = os.umask(0o077)
    try:
        done = cni.run("run-all", "--yes", "--to", "1", "--no-proof", "--record",
                       str(tmp_path / "slides.svg"), "--junit", str(tmp_path / "steps.xml"))
    finally:
        os.umask(old)
    assert done.returncode == 0, done.stderr
    for name in ("slides.svg", "steps.xml"):
        st = os.lstat(tmp_path / name)
        assert stat.S_ISREG(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o644, name
    assert victim.read_text() == "precious\n" and stat.S_IMODE(victim.stat().st_mode) == 0o600
    assert (tmp_path / "slides.svg").read_text().startswith("<svg")
    assert sorted(p.name for p in tmp_path.iterdir() if p.name != "run") == [
        "slides.svg", "steps.xml", "victim"]  # no temp file left


def test_bad_cni_requests_stop_before_the_node_is_made(cni: Cnilab, tmp_path: Path) -> None:
    refused(cni.run("cni", "add", "web", "--mac", "zz"), "is not a unicast MAC")
    refused(cni.run("cni", "add", "web", "--mac", "03:00:00:00:00:01"), "is not a unicast MAC")
    refused(cni.run("cni", "add", "web", "--ip", "999.1.1.1"), "is not an IPv4 address")
    refused(cni.run("cni", "add", "web", "--ip", "10.244.1.1"), "is the gateway")
    refused(cni.run("cni", "add", "web", "--ip", "10.244.2.7"), "is outside network")
    refused(cni.run("cni", "attach", "--netns", "/etc/passwd", "x"), "is not a network namespace")
    refused(cni.run("cni", "attach", "--netns", "/proc/self/ns/mnt", "x"),
            "is not a network namespace")
    assert prefixed_netns(cni.prefix) == []  # not even the node
    empty = tmp_path / "here"
    empty.mkdir()
    install = subprocess.run(cni.argv("cni", "install", "--dir", ""), capture_output=True,
                             text=True, env=cni.env(), cwd=empty, check=False, timeout=60)
    refused(install, "--dir needs a folder")
    assert list(empty.iterdir()) == []


def test_attach_refuses_a_namespace_that_already_holds_one_of_its_pods(cni: Cnilab) -> None:
    started = cni.run("cni", "none", "box", "--json")
    assert started.returncode == 0, started.stderr
    pid = json.loads(started.stdout)["pid"]
    first = cni.run("cni", "attach", "--pid", str(pid), "box")
    assert first.returncode == 0, first.stderr
    second = cni.run("cni", "attach", "--pid", str(pid), "other", "--json")
    refused(second, "already holds pod box")
    assert second.stdout == ""  # no plugin ran: no call to report
    by_path = cni.run("cni", "attach", "--netns", f"/proc/{pid}/ns/net", "third")
    refused(by_path, "already holds pod box")
    with Kernel() as k:
        links = k.observe([f"/proc/{pid}/ns/net"]).ns(f"/proc/{pid}/ns/net").links  # type: ignore
    assert sorted(ln.name for ln in links) == ["eth0", "lo"]  # box keeps its interface
    assert cni.run("cni", "check", "box").returncode == 0
