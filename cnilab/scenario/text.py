"""The scenarios' prose (lessons/scenarios/{en,ko}.toml), filled with the lab's names."""

from __future__ import annotations

from functools import cache
from typing import Any

from cnilab.compat import tomllib, valueclass
from cnilab.i18n import lessons_dir, particles
from cnilab.lessons import check_lang

FOLDER = "scenarios"


@valueclass(frozen=True)
class ScenarioText:
    """What one scenario says, in one language: story, symptom, hints, why the fix works."""

    name: str
    title: str
    story: str
    symptom: str
    hints: tuple[str, ...]
    solution: str


@cache
def raw(lang: str) -> dict[str, Any]:
    """The scenarios' text file of one language, as read (placeholders unfilled)."""
    path = lessons_dir() / FOLDER / f"{check_lang(lang)}.toml"
    return tomllib.loads(path.read_text(encoding="utf-8"))


def title(name: str, lang: str) -> str:
    """A scenario's title (it has no placeholders)."""
    return str(raw(lang)["scenarios"][name]["title"])


def text(name: str, lang: str, values: dict[str, str]) -> ScenarioText:
    """A scenario's text in `lang` with the lab's names and addresses filled in."""
    data = raw(lang)["scenarios"][name]

    def fill(text: str) -> str:  # a particle after a name fits the name: {red}이(가) -> red가
        return particles(text.format(**values))

    return ScenarioText(name, data["title"], fill(data["story"]), fill(data["symptom"]),
                        tuple(fill(h) for h in data["hints"]), fill(data["solution"]))
