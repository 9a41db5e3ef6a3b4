"""Lessons as data: every step in English and Korean, every command a real command."""

from __future__ import annotations

import re
import shlex

import pytest
from typer.testing import CliRunner

from cnilab import lessons
from cnilab.cli.main import app
from cnilab.cli.registry import LESSONS, names
from cnilab.compat import tomllib
from cnilab.i18n import catalog
from cnilab.lessons import lessons_dir

HANGUL = re.compile(r"[\uac00-\ud7a3]")
# The programs a lesson may tell a student to type, and the subcommands `ip` really has.
PROGRAMS = {"ip", "bridge", "iptables", "ping", "sysctl", "ss", "netstat", "curl", "cat",
            "route", "arp", "tcpdump", "conntrack", "ls", "cnilab", "kubectl", "nsenter",
            "ifconfig", "hostname", "crictl"}
IP_OBJECTS = {"link", "addr", "address", "route", "netns", "neigh", "-d", "-br", "-n", "-4",
              "-o", "-s", "-j", "-c"}


def lesson_ids() -> list[str]:
    return names()


@pytest.mark.parametrize("lesson_id", lesson_ids())
def test_every_lesson_has_the_same_keys_in_english_and_korean(lesson_id: str) -> None:
    en = tomllib.loads((lessons_dir() / lesson_id / "en.toml").read_text())
    ko = tomllib.loads((lessons_dir() / lesson_id / "ko.toml").read_text())

    def shape(d: object) -> object:
        if isinstance(d, dict):
            return {k: shape(v) for k, v in d.items()}
        if isinstance(d, list):
            return [shape(v) for v in d]
        return type(d).__name__

    assert shape(en) == shape(ko)


def test_the_eight_step_lesson_covers_steps_1_to_9_in_both_languages() -> None:
    for lang in ("en", "ko"):
        lesson = lessons.load("eight-steps", lang)
        assert [s.number for s in lesson.steps] == list(range(1, 10))
        for s in lesson.steps:
            assert s.title and s.what and s.why and s.goal and s.mistake and s.inspect
            if lang == "ko":
                assert HANGUL.search(s.title + s.what + s.why), s.number


def test_course_note_callouts_cover_the_known_gaps() -> None:
    notes = {s.number: s.course_note or "" for s in lessons.load("eight-steps", "en").steps}
    assert "ip_forward" in notes[8] and "! -o v-net-0" in notes[8]
    assert "lo" in notes[7]
    assert "-p tcp" in notes[9]
    assert ".5" in notes[2] or "192.168.15.5" in notes[2]


@pytest.mark.parametrize("lesson_id", lesson_ids())
def test_every_command_a_lesson_tells_the_student_to_type_is_a_real_command(
        lesson_id: str) -> None:
    for lang in ("en", "ko"):
        for s in lessons.load(lesson_id, lang).steps:
            for line in s.inspect:
                argv = shlex.split(line)
                if argv[0] == "sudo":  # what a student types on a machine where they are not root
                    argv = argv[1:]
                if argv[:3] == ["ip", "netns", "exec"]:
                    argv = argv[4:]
                if argv[:3] == ["cnilab", "cluster", "exec"]:  # the command run in the node
                    argv = argv[argv.index("--") + 1:]
                assert argv[0] in PROGRAMS, line
                if argv[0] == "ip":
                    rest = argv[3:] if argv[1] == "-n" else argv[1:]
                    assert rest[0] in IP_OBJECTS, line


def test_ui_sentences_exist_in_both_languages_with_the_same_placeholders() -> None:
    en, ko = catalog("en"), catalog("ko")
    assert en.keys() == ko.keys()
    for section in en:
        assert en[section].keys() == ko[section].keys(), section
        for key, text in en[section].items():
            assert set(re.findall(r"{(\w+)}", text)) == set(
                re.findall(r"{(\w+)}", ko[section][key])), f"{section}.{key}"


def test_explain_needs_no_root_and_korean_is_korean() -> None:
    result = CliRunner().invoke(app, ["explain", "8", "--lang", "ko"])
    assert result.exit_code == 0
    assert len(HANGUL.findall(result.output)) > 100
    assert "iptables -t nat -S POSTROUTING" in result.output


def test_language_follows_the_locale(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LC_ALL", "")
    monkeypatch.setenv("LANG", "ko_KR.UTF-8")
    assert lessons.default_lang() == "ko"
    result = CliRunner().invoke(app, ["explain", "1"])
    assert HANGUL.search(result.output)
    monkeypatch.setenv("LANG", "en_US.UTF-8")
    assert lessons.default_lang() == "en"


def test_unknown_language_is_one_clear_error() -> None:
    result = CliRunner().invoke(app, ["explain", "1", "--lang", "fr"])
    assert result.exit_code == 2 and "unknown language 'fr'" in result.output


def test_script_is_standalone_commented_bash() -> None:
    result = CliRunner().invoke(app, ["script"])
    assert result.exit_code == 0
    text = result.output
    assert text.startswith("#!/usr/bin/env bash\n")
    assert "ip netns add cnilab-host" in text and "nsenter --net=/run/netns/cnilab-host" in text
    assert "  ip link add v-net-0 type bridge" in text
    korean = CliRunner().invoke(app, ["script", "--lang", "ko"]).output
    assert HANGUL.search(korean)
    teardown = CliRunner().invoke(app, ["script", "--teardown"]).output
    assert teardown.splitlines()[-4:] == [
        "ip netns del blue", "ip netns del red", "ip netns del cnilab-internet",
        "ip netns del cnilab-host"]
    in_place = CliRunner().invoke(app, ["--in-place", "script", "--teardown"]).output
    assert "iptables -t nat -D POSTROUTING" in in_place and "ip link del v-net-0" in in_place


def test_junit_from_a_summary_parses_and_counts_cases(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import xml.etree.ElementTree as ET

    from cnilab.render.junit import junit_xml

    summary = [
        {"step": 7, "title": "Up", "ok": True,
         "proofs": [{"claim": "red reaches blue", "ok": True, "seen": "reply"},
                    {"claim": "blue reaches red", "ok": False, "seen": "no reply"}]},
        {"step": 8, "title": "NAT", "ok": False, "error": "boom", "proofs": []},
    ]
    suite = ET.fromstring(junit_xml(summary))
    assert suite.get("tests") == "4" and suite.get("failures") == "2"


def test_errors_come_in_korean_too() -> None:
    result = CliRunner().invoke(app, ["--lang", "ko", "--config", "/nonexistent.toml",
                                      "run-all", "--dry-run"])
    assert result.exit_code == 2
    assert "설정 파일 /nonexistent.toml이 없습니다" in result.output


def test_lessons_lists_every_lesson_in_the_courses_order_in_both_languages() -> None:
    assert lesson_ids() == ["eight-steps", "cni", "cluster"]
    for lang in ("en", "ko"):
        result = CliRunner().invoke(app, ["lessons", "--lang", lang])
        assert result.exit_code == 0, result.output
        titles = [lesson.text(lang).title for lesson in LESSONS]
        assert [result.output.index(title) for title in titles] == sorted(
            result.output.index(title) for title in titles)
        for lesson in LESSONS:
            for step in lesson.text(lang).steps:
                assert step.title in result.output


def test_cluster_errors_come_in_korean_too() -> None:
    result = CliRunner().invoke(app, ["--lang", "ko", "cluster", "up", "--nodes", "0"])
    assert result.exit_code == 2
    assert any("\uac00" <= ch <= "\ud7a3" for ch in result.output), result.output
    assert "--nodes는 1에서" in result.output
    english = CliRunner().invoke(app, ["cluster", "up", "--nodes", "0"])
    assert "--nodes must be between 1 and" in english.output
