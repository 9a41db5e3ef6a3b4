"""The lesson registry: every lesson registered once, every step of each reachable by `explain`."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from cnilab.cli.main import app
from cnilab.cli.registry import LESSONS, get, names
from cnilab.cluster.plan import build_plan
from cnilab.i18n import lessons_dir
from cnilab.lab.topology import default_topology
from tests.unit.cold_start import run_cold

runner = CliRunner()


def test_every_folder_under_lessons_is_a_registered_lesson_and_back() -> None:
    # ui: the command line's sentences; scenarios: the troubleshooting labs' texts (`lessons`
    # lists them after the lessons; `cnilab scenario` runs them).
    folders = {p.name for p in lessons_dir().iterdir()
               if p.is_dir() and p.name not in ("ui", "scenarios")}
    assert folders == set(names())
    for lesson in LESSONS:
        assert (lesson.folder / "en.toml").is_file() and (lesson.folder / "ko.toml").is_file()


def test_the_course_order_is_eight_steps_cni_cluster() -> None:
    assert names() == ["eight-steps", "cni", "cluster"]


@pytest.mark.parametrize(("name", "plan"), [
    ("eight-steps", default_topology()), ("cluster", build_plan())])
def test_a_lessons_steps_are_ops_built_from_its_plan_and_match_its_text(name: str,
                                                                        plan: object) -> None:
    lesson = get(name)
    assert lesson.steps is not None
    steps = lesson.steps(plan)
    assert [s.number for s in steps] == [s.number for s in lesson.text("en").steps]
    assert all(s.ops for s in steps)


@pytest.mark.parametrize("lang", ["en", "ko"])
@pytest.mark.parametrize("name", names())
def test_every_section_of_every_lesson_is_reachable_with_explain(name: str, lang: str) -> None:
    for section in get(name).text(lang).steps:
        args = [str(section.number)] if name == "eight-steps" else [name, str(section.number)]
        result = runner.invoke(app, ["explain", *args, "--lang", lang])
        assert result.exit_code == 0, result.output
        assert section.title in result.output and section.inspect[0] in result.output


def test_explain_defaults_to_the_eight_steps_and_names_them_too() -> None:
    short = runner.invoke(app, ["explain", "8"])
    long = runner.invoke(app, ["explain", "eight-steps", "8"])
    assert short.exit_code == long.exit_code == 0 and short.output == long.output
    assert "MASQUERADE" in short.output


@pytest.mark.parametrize(("args", "words"), [
    (["nonsense", "1"], "there is no lesson 'nonsense'; the lessons are eight-steps, cni, cluster"),
    (["cni", "11"], "lesson cni has no step 11; its steps are 1 to 10"),
    (["10"], "lesson eight-steps has no step 10; its steps are 1 to 9"),
])
def test_bad_explain_arguments_are_one_line_and_exit_2(args: list[str], words: str) -> None:
    result = runner.invoke(app, ["explain", *args])
    assert result.exit_code == 2
    assert words in result.output and len(result.output.strip().splitlines()) == 1


def test_explain_json_is_the_section_with_its_lesson() -> None:
    result = runner.invoke(app, ["explain", "cni", "2", "--json", "--lang", "ko"])
    data = json.loads(result.output)
    assert data["lesson"] == "cni" and data["number"] == 2
    assert set(data) >= {"title", "what", "why", "goal", "inspect", "mistake"}


def test_lessons_json_lists_every_lesson_in_order_with_its_steps_and_teardown() -> None:
    data = json.loads(runner.invoke(app, ["lessons", "--json"]).output)
    assert [lesson["name"] for lesson in data["lessons"]] == names()
    by_name = {lesson["name"]: lesson for lesson in data["lessons"]}
    assert [s["number"] for s in by_name["eight-steps"]["steps"]] == list(range(1, 10))
    assert by_name["cluster"]["teardown"] == "sudo cnilab cluster down"
    assert len(by_name["cluster"]["steps"]) == 6 and len(by_name["cni"]["steps"]) == 10


def test_explain_loads_neither_pyroute2_nor_the_kernel_module() -> None:
    _, loaded = run_cold(["explain", "cni", "2"], ["explain", "cluster", "3", "--json"],
                         ["explain", "8", "--lang", "ko"])
    assert loaded == []


@pytest.mark.parametrize("lang", ["en", "ko"])
def test_a_lessons_name_alone_gives_its_overview_and_steps(lang: str) -> None:
    result = runner.invoke(app, ["explain", "cluster", "--lang", lang])
    assert result.exit_code == 0
    for section in get("cluster").text(lang).steps:
        assert section.title in result.output
    assert "cnilab explain cluster N" in result.output
