"""The cluster sub-app's command line: help, examples, validation; no root, no kernel."""

from __future__ import annotations

import subprocess
import sys

import pytest
from typer.testing import CliRunner

from cnilab.cli.cluster import cluster_app

runner = CliRunner()
COMMANDS = ["up", "status", "exec", "shell", "quiz", "down"]


def test_help_lists_every_command() -> None:
    result = runner.invoke(cluster_app, ["--help"])
    assert result.exit_code == 0
    for name in COMMANDS:
        assert name in result.output


@pytest.mark.parametrize("name", COMMANDS)
def test_every_command_has_help_text_with_an_example(name: str) -> None:
    result = runner.invoke(cluster_app, [name, "--help"])
    assert result.exit_code == 0
    assert "Example" in result.output


@pytest.mark.parametrize(("args", "words"), [
    (["up", "--nodes", "0"], "--nodes must be between 1 and 200, not 0"),
    (["up", "--nodes", "201"], "--nodes must be between 1 and 200, not 201"),
    (["up", "--pod-network", "172.17.0.0/16"], "overlaps the cluster LAN"),
    (["up", "--pod-network", "nonsense"], "not an IPv4 network"),
])
def test_bad_up_options_fail_before_touching_anything(args: list[str], words: str) -> None:
    result = runner.invoke(cluster_app, [*args, "--dry-run"])
    assert result.exit_code == 2
    assert words in result.output


def test_dry_run_prints_the_commands_of_the_whole_cluster() -> None:
    result = runner.invoke(cluster_app, ["up", "--dry-run", "--pods-per-node", "1"])
    assert result.exit_code == 0, result.output
    out = result.output
    assert "ip -n controlplane route add 10.244.1.0/24 via 172.17.0.40" in out
    assert "ip -n node01 link set ens3 address 02:42:ac:11:00:28" in out
    assert "ip netns exec controlplane kube-scheduler" in out
    assert "CNI_COMMAND=ADD CNI_CONTAINERID=node01-pod1" in out


def test_importing_the_sub_app_loads_neither_pyroute2_nor_rich() -> None:
    code = ("import sys\nimport cnilab.cli.cluster\n"
            "bad = [m for m in sys.modules if m.startswith(('pyroute2', 'rich'))]\n"
            "print(bad)\nsys.exit(1 if bad else 0)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=False)
    assert done.returncode == 0, done.stdout + done.stderr
