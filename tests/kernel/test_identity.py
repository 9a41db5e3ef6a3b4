"""A lab's identity on a real kernel: one prefix rule for every lesson, the config's prefix for
every lesson, and two labs in one namespace that never take each other's objects."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.kernel.helpers import Cnilab, prefixed_netns


def _bad(prefix: str, tail: str) -> list[str]:
    return [f"{prefix}\n{tail}", f"/tmp/{prefix}/p-", f"{prefix}/x-", f"{prefix}..x-",
            f"{prefix}\u200b-"]


@pytest.mark.parametrize("command", [("run-all", "--yes", "--no-proof"), ("cni", "add", "web"),
                                     ("cni", "none", "box"), ("cluster", "up")])
def test_every_lesson_refuses_a_bad_prefix_before_anything_is_made(
        prefix: str, run_dir: Path, command: tuple[str, ...]) -> None:
    for bad in _bad(prefix, "y-"):
        done = Cnilab(bad, run_dir).run(*command)
        assert done.returncode == 2, (bad, done.stderr)
        assert done.stderr.startswith("cnilab: error: prefix ") and done.stdout == ""
        assert prefixed_netns(prefix) == [] and not any(
            prefix in name for name in os.listdir("/run/netns"))
        assert not Path(f"/tmp/{prefix}").exists()
        assert not run_dir.exists() or list(run_dir.rglob("*.jsonl")) == []


def test_the_config_files_prefix_names_the_cni_lessons_namespaces(
        prefix: str, run_dir: Path, tmp_path: Path) -> None:
    config = tmp_path / "lab.toml"
    config.write_text(f'prefix = "{prefix}"\n', encoding="utf-8")
    env = Cnilab("", run_dir).env()
    with_config = [sys.executable, "-m", "cnilab", "--config", str(config)]  # no --prefix
    try:
        done = subprocess.run([*with_config, "cni", "none", "box"], capture_output=True,
                              text=True, env=env, timeout=120)
        assert done.returncode == 0, done.stderr
        # The node is the config's lab's, and the printed next step reaches it again.
        assert f"{prefix}cnilab-cni-node" in prefixed_netns(prefix)
        assert f"--config {config}" in done.stdout
    finally:
        done = subprocess.run([*with_config, "cni", "teardown"], capture_output=True,
                              text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    assert prefixed_netns(prefix) == []


def test_two_in_place_labs_in_one_namespace_never_take_each_others_objects(
        prefix: str, run_dir: Path) -> None:
    node = prefix + "node"  # plays the one machine both labs run in; made here, not by cnilab
    subprocess.run(["ip", "netns", "add", node], check=True)
    inside = ("nsenter", f"--net=/run/netns/{node}")
    a, b = Cnilab(prefix + "a-", run_dir), Cnilab(prefix + "b-", run_dir)

    def links() -> str:
        return subprocess.run([*inside, "ip", "-o", "link"], capture_output=True, text=True,
                              check=True).stdout

    assert a.run("--in-place", "run-all", "--to", "3", "--yes", "--no-proof",
                 wrap=inside).returncode == 0
    mine = f"cnilab:eight-steps@{a.prefix}"
    assert f"alias {mine}" in links()
    done = b.run("--in-place", "run-all", "--to", "3", "--yes", "--no-proof", wrap=inside)
    assert done.returncode == 4, done.stderr
    assert f"eight-steps@{a.prefix}" in done.stderr and "v-net-0" in done.stderr
    assert b.run("--in-place", "teardown", wrap=inside).returncode == 0
    assert "v-net-0" in links() and "veth-red-br" in links()  # lab a's: b left them alone
    assert a.run("--in-place", "teardown", wrap=inside).returncode == 0
    assert "v-net-0" not in links() and "veth" not in links()
    assert prefixed_netns(prefix) == [node]

