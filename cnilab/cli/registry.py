"""The lesson registry: every lesson, in the order the course teaches them, and what it has.

One place declares, for each lesson, its name (also its text folder, lessons/NAME/{en,ko}.toml),
where its commands live, its steps as ops built from its plan (where it has them) and its
teardown. `cnilab lessons` and `cnilab explain` read only this.

Builders are imported when called: `cnilab explain` needs no root and must load neither pyroute2
nor cnilab.kernel.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cnilab.compat import valueclass
from cnilab.errors import ConfigError
from cnilab.i18n import lessons_dir
from cnilab.lessons import Lesson, StepText, load

if TYPE_CHECKING:
    from cnilab.ops import Step


@valueclass(frozen=True)
class LessonDef:
    """One lesson: its name, its commands, its steps from a plan, its teardown."""

    name: str
    command: str  # the command group that runs it: `cnilab`, `cnilab cni`, `cnilab cluster`
    run: str  # how a student starts it
    teardown: str  # the one command that removes what it made, nothing else
    steps: Callable[[Any], Sequence[Step]] | None = None  # plan -> its steps (ops)

    @property
    def folder(self) -> Path:
        """Its text folder under lessons/."""
        return lessons_dir() / self.name

    def text(self, lang: str) -> Lesson:
        """Its text in `lang`."""
        return load(self.name, lang)

    def section(self, number: int, lang: str) -> StepText:
        """Section (step) `number` of its text, or a one-line error naming the range."""
        text = self.text(lang)
        numbers = [s.number for s in text.steps]
        if number not in numbers:
            raise ConfigError.of("no_section", lesson=self.name, number=number,
                                 first=min(numbers, default=0), last=max(numbers, default=0))
        return text.step(number)


def _eight_steps(topo: Any) -> Sequence[Step]:
    from cnilab.lab.steps import build_steps

    return build_steps(topo)


def _cluster_steps(plan: Any) -> Sequence[Step]:
    from cnilab.cluster.steps import lesson_steps

    return lesson_steps(plan)


LESSONS: tuple[LessonDef, ...] = (
    LessonDef("eight-steps", "cnilab", "sudo cnilab run-all", "sudo cnilab teardown",
              _eight_steps),
    # The CNI lesson's sections are plugin calls a student makes (add, check, del ...), not ops.
    LessonDef("cni", "cnilab cni", "sudo cnilab cni add web", "sudo cnilab cni teardown"),
    LessonDef("cluster", "cnilab cluster", "sudo cnilab cluster up", "sudo cnilab cluster down",
              _cluster_steps),
)


def names() -> list[str]:
    """Every lesson's name, in the course's order."""
    return [lesson.name for lesson in LESSONS]


def get(name: str) -> LessonDef:
    """The lesson called `name`, or a one-line error listing them."""
    for lesson in LESSONS:
        if lesson.name == name:
            return lesson
    raise ConfigError.of("no_lesson", name=name, lessons=", ".join(names()))
