"""English and Korean say the same facts: same code spans, numbers and placeholders everywhere.

A translation may reorder a sentence, never change a command, an address or a port: a student
reading Korean types what a student reading English types.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest

from cnilab.compat import tomllib
from cnilab.i18n import lessons_dir

CODE = re.compile(r"`([^`]*)`")
NUMBER = re.compile(r"(?<![\w.:/-])\d+(?:[.:/]\d+)*(?![.:/]?\d)")
PLACEHOLDER = re.compile(r"{(\w+)}")
FOLDERS = [p.name for p in sorted(lessons_dir().iterdir()) if p.is_dir()]  # lessons and ui


def texts(data: Any, path: str = "") -> Iterator[tuple[str, str]]:
    """Every string of a TOML document, with its path (lists by index)."""
    if isinstance(data, dict):
        for key, value in data.items():
            yield from texts(value, f"{path}.{key}")
    elif isinstance(data, list):
        for i, value in enumerate(data):
            yield from texts(value, f"{path}[{i}]")
    elif isinstance(data, str):
        yield path, data


def pairs(folder: str) -> list[tuple[str, str, str]]:
    en = dict(texts(tomllib.loads((lessons_dir() / folder / "en.toml").read_text("utf-8"))))
    ko = dict(texts(tomllib.loads((lessons_dir() / folder / "ko.toml").read_text("utf-8"))))
    assert en.keys() == ko.keys()
    return [(path, en[path], ko[path]) for path in en if path not in (".id",)]


WORDS_WITH_DIGITS = ("16진수",)  # "hexadecimal": a word, not a number


def numbers(text: str) -> Counter[str]:
    # Inside code spans numbers are compared with the spans.
    for word in WORDS_WITH_DIGITS:
        text = text.replace(word, " ")
    return Counter(NUMBER.findall(CODE.sub(" ", text)))


@pytest.mark.parametrize("folder", FOLDERS)
def test_code_spans_are_the_same_in_english_and_korean(folder: str) -> None:
    for path, en, ko in pairs(folder):
        assert Counter(CODE.findall(en)) == Counter(CODE.findall(ko)), f"{folder}{path}"


@pytest.mark.parametrize("folder", FOLDERS)
def test_placeholders_are_the_same_in_english_and_korean(folder: str) -> None:
    for path, en, ko in pairs(folder):
        assert set(PLACEHOLDER.findall(en)) == set(PLACEHOLDER.findall(ko)), f"{folder}{path}"


@pytest.mark.parametrize("folder", FOLDERS)
def test_numbers_addresses_and_ports_are_the_same_in_english_and_korean(folder: str) -> None:
    for path, en, ko in pairs(folder):
        assert set(numbers(en)) == set(numbers(ko)), f"{folder}{path}"


def test_the_inspect_commands_are_the_same_commands() -> None:
    for folder in FOLDERS:
        for path, en, ko in pairs(folder):
            if ".inspect[" in path:
                assert en == ko, f"{folder}{path}"


KO_CALQUES = ["외부행", "포트행", "실습 무대", "증명", "닿습니다", "닿지", "이(가) {value}이(가)",
              "어디 있는지는 오늘날 런타임의 설정입니다",  # explain cni 1, word for word
              # a route is 라우트 everywhere; 경로 stays for a file's path
              "가는 경로", "경로가 있", "경로가 없", "기본 경로"]


@pytest.mark.parametrize("folder", FOLDERS)
def test_korean_has_none_of_the_known_calques(folder: str) -> None:
    text = (lessons_dir() / folder / "ko.toml").read_text("utf-8")
    assert [c for c in KO_CALQUES if c in text] == []


@pytest.mark.parametrize("width", [80, 60, 40])
def test_lesson_prose_wraps_keep_every_character_and_code_spans_whole(width: int) -> None:
    from cnilab.render.prose import wrap

    for folder in FOLDERS:
        for path, en, ko in pairs(folder):
            for text in (en, ko):
                for paragraph in text.split("\n"):
                    lines = list(wrap(paragraph, width))
                    assert " ".join(lines).split() == paragraph.split() or "".join(
                        "".join(lines).split()) == "".join(paragraph.split()), path
                    # A code span is never cut (it wraps as one piece): each line closes
                    # every span it opens.
                    assert all(line.count("`") % 2 == 0 for line in lines), (path, lines)
