"""Kernel-test fixtures: a cnilab runner whose lab is torn down even when the test fails."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from helpers import Cnilab


@pytest.fixture
def cnilab(prefix: str, run_dir: Path) -> Iterator[Cnilab]:
    """Run cnilab under this test's prefix; teardown (then the prefix sweep) afterwards."""
    runner = Cnilab(prefix, run_dir)
    yield runner
    runner.run("teardown")
