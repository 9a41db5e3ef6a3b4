"""The command line, through Typer's runner and as a real process; no root, no kernel."""

from __future__ import annotations

import inspect
import re
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cnilab.cli.cluster import cluster_app
from cnilab.cli.cni import cni_app
from cnilab.cli.main import app, app_for, command_named
from cnilab.cli.scenario import scenario_app
from tests.unit.cold_start import run_cold

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


@pytest.mark.parametrize("argv", [
    [], ["--help"], ["--version"], ["--prefix", "x", "--help"], ["step", "--help"],
    ["-c", "lab.toml", "status", "--help"], ["cni", "--help"], ["cluster", "--help"],
    ["cluster", "up", "--help"], ["scenario", "--help"], ["stpe", "3"], ["step", "10"],
    ["--lang"]])
def test_the_app_built_for_one_command_answers_as_the_whole_app(argv: list[str]) -> None:
    small, whole = runner.invoke(app_for(argv), argv), runner.invoke(app, argv)
    assert (small.exit_code, small.output) == (whole.exit_code, whole.output)


def test_the_command_is_found_behind_global_options() -> None:
    assert command_named(["--prefix", "p", "--in-place", "step", "3"]) == "step"
    assert command_named(["-c", "lab.toml", "cluster", "up"]) == "cluster"
    assert command_named(["--traceback", "--help"]) is None


def test_version() -> None:
    from cnilab import __version__

    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and __version__ in result.output


def test_help_and_version_never_import_pyroute2() -> None:
    _, loaded = run_cold(["--help"], ["--version"], ["run-all", "--dry-run"])
    assert not [m for m in loaded if m.startswith("pyroute2")], loaded


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


README = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
REFERENCE = (Path(__file__).resolve().parents[2] / "docs" / "cli.md").read_text(encoding="utf-8")
SUB_APPS = {"cluster": cluster_app, "cni": cni_app, "scenario": scenario_app}


def every_command(groups: tuple[str, ...] = tuple(SUB_APPS)) -> list[tuple[list[str], object]]:
    """(argv to reach it, its callback) for every command, these sub-apps included."""
    found = [([c.name or c.callback.__name__.replace("_", "-")], c.callback)
             for c in app.registered_commands]
    for group, sub in ((g, SUB_APPS[g]) for g in groups):
        found += [([group, c.name or c.callback.__name__.rstrip("_")], c.callback)
                  for c in sub.registered_commands]
    return found


@pytest.mark.parametrize(("argv", "callback"), every_command(),
                         ids=lambda v: " ".join(v) if isinstance(v, list) else "")
def test_every_command_has_help_text_and_a_section_in_the_reference(argv: list[str],
                                                                     callback: object) -> None:
    result = runner.invoke(app, [*argv, "--help"])
    assert result.exit_code == 0
    assert (inspect.getdoc(callback) or "").strip(), argv
    assert f"## `cnilab {' '.join(argv)}`" in REFERENCE, argv


def test_the_reference_is_the_commands_own_help_made_anew() -> None:
    from cnilab.cli.reference import commands, made_with, reference

    # Every command has its section, whatever Typer lays the help out.
    titles = [line[4:-1] for line in REFERENCE.splitlines() if line.startswith("## `")]
    assert titles == [" ".join(("cnilab", *w)) for w in [(), *commands(app)]], \
        "docs/cli.md is stale: run `make docs`"
    if made_with() not in REFERENCE:  # e.g. Python 3.9, where pip finds Typer 0.23 at most
        pytest.skip(f"docs/cli.md was laid out by another Typer than {made_with()}")
    assert reference() == REFERENCE, "docs/cli.md is stale: run `make docs`"


# The cni commands' help is cnilab/cni/cli.py's (the CNI lesson's owner); they join once done.
@pytest.mark.parametrize(("argv", "callback"), every_command(("cluster", "scenario")),
                         ids=lambda v: " ".join(v) if isinstance(v, list) else "")
def test_examples_in_help_keep_each_line_whole(argv: list[str], callback: object) -> None:
    doc = inspect.getdoc(callback) or ""
    if "\b" not in doc:
        assert "Example" not in doc, f"{argv}: examples need Click's \\b to stay whole"
        return
    examples = doc.split("\b", 1)[1].strip().splitlines()[1:]
    result = runner.invoke(app, [*argv, "--help"], env={"COLUMNS": "60"}, terminal_width=60)
    for line in examples:
        assert line.strip() in result.output, (argv, line)


@pytest.mark.parametrize("group", [[], ["cluster"], ["scenario"], ["cni"]])
def test_short_help_lines_are_not_cut(group: list[str]) -> None:
    result = runner.invoke(app, [*group, "--help"], env={"COLUMNS": "80"}, terminal_width=80)
    listing = result.output.split("Commands:", 1)[1]
    assert "..." not in listing, listing


PRINTING = [["step"], ["run-all"], ["teardown"], ["status"], ["doctor"], ["lessons"],
            ["explain"], ["practice"], ["check"], ["cluster", "up"], ["cluster", "down"],
            ["cluster", "status"], ["cluster", "quiz"], ["scenario", "list"],
            ["scenario", "start"], ["scenario", "check"], ["scenario", "hint"],
            ["scenario", "solution"], ["scenario", "stop"]]


@pytest.mark.parametrize("argv", PRINTING, ids=" ".join)
def test_every_command_that_prints_takes_lang_and_json(argv: list[str]) -> None:
    result = runner.invoke(app, [*argv, "--help"])
    assert "--lang" in result.output and "--json" in result.output


@pytest.mark.parametrize("argv", [["step", "{}", "--dry-run"], ["explain", "{}"],
                                  ["script", "--to", "{}"], ["run-all", "--to", "{}", "--dry-run"]])
def test_step_ranges_are_1_to_9_everywhere(argv: list[str]) -> None:
    for number, code in (("1", 0), ("9", 0), ("10", 2), ("0", 2)):
        result = runner.invoke(app, [a.replace("{}", number) for a in argv])
        assert result.exit_code == code, (argv, number, result.output)


@pytest.mark.parametrize("argv", [["practice"], ["check"]])
def test_practice_and_check_take_1_to_9_too(argv: list[str]) -> None:
    assert runner.invoke(app, [*argv, "10"]).exit_code == 2
    assert "1<=x<=9" in runner.invoke(app, [*argv, "10"]).output.replace(" ", "")


def test_the_step_argument_takes_every_step_the_lab_has() -> None:
    from cnilab.lab import BONUS_STEP
    from cnilab.lab.steps import build_steps
    from cnilab.lab.topology import default_topology

    assert len(build_steps(default_topology())) == BONUS_STEP
    assert runner.invoke(app, ["explain", str(BONUS_STEP + 1)]).exit_code == 2


def test_shell_accepts_only_the_labs_places() -> None:
    result = runner.invoke(app, ["shell", "green"])
    assert result.exit_code == 2
    assert "'green' is not one of host, internet, red, blue" in result.output


def test_the_readme_exit_code_table_has_every_code() -> None:
    from cnilab import errors

    codes = {cls.exit_code for cls in vars(errors).values()
             if isinstance(cls, type) and issubclass(cls, errors.CnilabError)}
    table = set(re.findall(r"^\| (\d+) \|", README, re.M))
    assert {str(c) for c in codes} | {"0", "130"} <= table
    assert re.search(r"^\| 1 \| `check`", README, re.M)


def test_the_dry_run_plan_splits_at_step_1_and_its_stage_acts_only_in_lab_namespaces() -> None:
    # Scripts and the equivalence test run what precedes `# step 1:` on this machine itself:
    # that part may only make namespaces and act inside them.
    plan = runner.invoke(app, ["run-all", "--dry-run", "--lang", "en"]).output
    stage, marker, steps = plan.partition("# step 1:")
    assert marker and "ip netns add red" in steps and "iptables" in steps
    for n in range(2, 9):
        assert f"\n# step {n}: " in steps
    for line in stage.splitlines():
        words = line.split()
        assert not words or words[0] == "#" or words[:3] in (
            ["ip", "netns", "add"], ["ip", "netns", "exec"]) or words[:2] == ["ip", "-n"], line


def test_hints_after_a_run_name_the_command_as_called_with_the_labs_options(
        monkeypatch: pytest.MonkeyPatch) -> None:
    import types

    from cnilab.cli import console
    from cnilab.cli.console import Options, command_line

    root = types.SimpleNamespace(obj=Options(config=Path("lab.toml"), prefix="demo-"))
    ctx = types.SimpleNamespace(obj=root.obj, find_root=lambda: root)
    monkeypatch.setattr(sys, "argv", [".venv/bin/cnilab", "run-all"])
    monkeypatch.delenv("SUDO_USER", raising=False)
    monkeypatch.setattr("shutil.which", lambda name: None)  # not on PATH: as typed
    assert command_line(ctx) == ".venv/bin/cnilab --config lab.toml --prefix demo-"
    monkeypatch.setenv("SUDO_USER", "student")
    monkeypatch.setattr(console.os, "geteuid", lambda: 0)
    assert command_line(ctx).startswith("sudo .venv/bin/cnilab ")
