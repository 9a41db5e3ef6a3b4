"""docs/cli.md, made from the commands' own --help: `python -m cnilab.cli.reference > docs/cli.md`.

The reference is the help text itself, so the two cannot drift; a test checks that the file is
what this prints.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

WIDTH = 80  # a student's terminal


def commands(app: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    """Every command of `app` (and of its sub-apps), as the words that reach it."""
    for info in app.registered_commands:
        yield (*path, info.name or info.callback.__name__.replace("_", "-"))
    for group in app.registered_groups:
        yield (*path, group.name)
        yield from commands(group.typer_instance, (*path, group.name))


def made_with() -> str:
    """The Typer the help was laid out by (another version lays it out differently)."""
    from importlib.metadata import version

    return f"Typer {version('typer')}."


def reference() -> str:
    """The whole reference, in Markdown."""
    from typer.testing import CliRunner

    from cnilab.cli.main import app

    env = {"COLUMNS": str(WIDTH), "TERM": "dumb", "NO_COLOR": "1", "LANG": "C.UTF-8"}
    runner = CliRunner()
    parts = ["# Every command\n",
             "Made from `--help` by `python -m cnilab.cli.reference > docs/cli.md` (`make docs`);",
             f"do not edit by hand. {made_with()}\n"]
    for words in [(), *commands(app)]:
        done = runner.invoke(app, [*words, "--help"], prog_name="cnilab", env=env, color=False)
        title = " ".join(("cnilab", *words))
        help_text = "\n".join(line.rstrip() for line in done.output.splitlines()).strip("\n")
        parts += [f"## `{title}`\n", "```", help_text, "```\n"]
    return "\n".join(parts)


if __name__ == "__main__":
    os.environ.setdefault("COLUMNS", str(WIDTH))
    print(reference(), end="")
