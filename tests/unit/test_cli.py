"""The command line, through Typer's runner and as a real process; no root, no kernel."""

from __future__ import annotations

import subprocess
import sys

import pytest
from typer.testing import CliRunner

from cnilab.cli import app

runner = CliRunner()
COMMANDS = ["step", "run-all", "teardown", "status", "doctor", "shell", "lessons", "explain",
            "script", "practice", "check", "trace"]


def test_help_lists_every_command_with_examples() -> None:
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for name in COMMANDS:
        assert name in result.output
    assert "sudo cnilab run-all" in result.output


@pytest.mark.parametrize("name", COMMANDS)
def test_every_command_has_help_text_with_an_example(name: str) -> None:
    result = runner.invoke(app, [name, "--help"])
    assert result.exit_code == 0
    assert "Example" in result.output


def test_version() -> None:
    from cnilab import __version__

    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and __version__ in result.output


def test_help_and_version_never_import_pyroute2() -> None:
    code = ("import sys\nfrom cnilab.cli import app\n"
            "for args in (['--help'], ['--version'], ['run-all', '--dry-run']):\n"
            "    try:\n        app(args)\n    except SystemExit:\n        pass\n"
            "print('pyroute2' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip().splitlines()[-1] == "False"


def test_step_number_out_of_range_is_rejected() -> None:
    result = runner.invoke(app, ["step", "10"])
    assert result.exit_code == 2


def test_dry_run_prints_the_lecture_commands_without_root() -> None:
    result = runner.invoke(app, ["run-all", "--dry-run"])
    assert result.exit_code == 0
    assert "ip netns add red" in result.output
    assert ("iptables -t nat -A POSTROUTING -s 192.168.15.0/24 ! -o v-net-0 -m comment "
            "--comment cnilab -j MASQUERADE") in result.output


def test_dry_run_of_in_place_mode_has_no_stage() -> None:
    result = runner.invoke(app, ["--in-place", "step", "1", "--dry-run"])
    assert result.exit_code == 0
    assert "cnilab-host" not in result.output and "ip netns add red" in result.output


def test_bad_config_is_a_one_line_error(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "lab.toml"
    path.write_text('bridge_address = "not-an-address"\n')
    result = runner.invoke(app, ["--config", str(path), "run-all", "--dry-run"])
    assert result.exit_code == 2
    assert "cnilab: error: bridge_address 'not-an-address'" in result.output
