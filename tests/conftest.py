"""Shared fixtures: a unique name prefix per kernel test, and cleanup that runs even on failure."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# A suite started in the background of a script inherits SIGINT ignored, and so would every
# cnilab a test starts: the Ctrl-C tests need what a terminal's foreground gives, the default.
signal.signal(signal.SIGINT, signal.default_int_handler)


def is_root() -> bool:
    """Kernel tests need root (CI is root)."""
    return os.geteuid() == 0


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Kernel tests are marked and skipped without root, never silently faked."""
    for item in items:
        if "tests/kernel" in str(item.fspath):
            item.add_marker(pytest.mark.kernel)
            if not is_root():
                item.add_marker(pytest.mark.skip(reason="kernel test: needs root"))


def remove_prefixed_netns(prefix: str) -> None:
    """Delete every namespace whose name starts with this test's unique prefix (only ours)."""
    assert len(prefix) >= 6, "refusing a short prefix: it could match someone else's namespace"
    try:
        names = os.listdir("/run/netns")
    except FileNotFoundError:
        return
    for name in names:
        if name.startswith(prefix):
            subprocess.run(["ip", "netns", "delete", name], check=False, capture_output=True)
    remove_prefixed_hosts(prefix)


def remove_prefixed_hosts(prefix: str) -> None:
    """Delete the cluster nodes' hosts files under this test's prefix (only the ones cnilab
    wrote for it: their first line names the node), and their folders once empty."""
    try:
        names = [n for n in os.listdir("/etc/netns") if n.startswith(prefix)]
    except FileNotFoundError:
        return
    for name in names:
        hosts = Path("/etc/netns", name, "hosts")
        try:
            first = hosts.read_text(encoding="utf-8").split("\n", 1)[0]
        except OSError:
            continue
        if (first.startswith(f"# /etc/hosts of the cluster node {name},")
                and not hosts.is_symlink()):
            hosts.unlink()
            with contextlib.suppress(OSError):
                hosts.parent.rmdir()


@pytest.fixture
def prefix() -> Iterator[str]:
    """A unique namespace-name prefix for one test; its namespaces are removed afterwards."""
    value = f"ct{uuid.uuid4().hex[:6]}-"
    yield value
    remove_prefixed_netns(value)


@pytest.fixture
def run_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private ledger directory, also for cnilab subprocesses (CNILAB_RUN_DIR)."""
    path = tmp_path / "run"
    monkeypatch.setenv("CNILAB_RUN_DIR", str(path))
    return path
