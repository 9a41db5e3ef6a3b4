"""Lesson text (English, Korean) from lessons/: code never embeds lesson prose."""

from __future__ import annotations

from functools import cache

from cnilab.compat import tomllib, valueclass
from cnilab.errors import ConfigError
from cnilab.i18n import LANGS, default_lang, lessons_dir


@valueclass(frozen=True)
class StepText:
    """What a lesson says about one step."""

    number: int
    title: str
    what: str
    why: str
    goal: str
    inspect: tuple[str, ...]
    mistake: str
    course_note: str | None = None
    watch: str | None = None  # "watch the packet": a `cnilab trace` to run after this step


@valueclass(frozen=True)
class Lesson:
    """A lesson in one language."""

    id: str
    lang: str
    title: str
    summary: str
    steps: tuple[StepText, ...]
    beyond: str | None = None  # where the lesson leads: printed after its last step

    def step(self, number: int) -> StepText:
        """The text of step `number`."""
        for s in self.steps:
            if s.number == number:
                return s
        raise ConfigError.of("no_section", lesson=self.id, number=number,
                             first=min((s.number for s in self.steps), default=0),
                             last=max((s.number for s in self.steps), default=0))


def check_lang(lang: str | None) -> str:
    """A supported language code (the locale's when None)."""
    lang = lang or default_lang()
    if lang not in LANGS:
        raise ConfigError.of("unknown_lang", lang=lang, langs=", ".join(LANGS))
    return lang


@cache
def load(lesson_id: str = "eight-steps", lang: str = "en") -> Lesson:
    """Read one lesson in one language."""
    path = lessons_dir() / lesson_id / f"{check_lang(lang)}.toml"
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as e:
        raise ConfigError.of("no_lesson_text", name=lesson_id, lang=lang) from e
    steps = tuple(
        StepText(s["number"], s["title"], s["what"], s["why"], s["goal"], tuple(s["inspect"]),
                 s["mistake"], s.get("course_note"), s.get("watch"))
        for s in data.get("steps", ()))  # a quiz lesson (cluster) has questions instead
    return Lesson(data["id"], lang, data["title"], data["summary"], steps, data.get("beyond"))

