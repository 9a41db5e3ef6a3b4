"""Kernel-test fixtures: a cnilab runner whose lab is torn down even when the test fails."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from helpers import Cnilab

from tests.kernel.cni_sandbox import Sandbox


@pytest.fixture
def cnilab(prefix: str, run_dir: Path) -> Iterator[Cnilab]:
    """Run cnilab under this test's prefix; teardown (then the prefix sweep) afterwards."""
    runner = Cnilab(prefix, run_dir)
    yield runner
    runner.run("teardown")


@pytest.fixture
def box(prefix: str, tmp_path: Path) -> Iterator[Sandbox]:
    """A node namespace (and pods made on demand) under the test's prefix."""
    sandbox = Sandbox(prefix, tmp_path / "bin")
    try:
        yield sandbox
    finally:
        sandbox.close()
