"""Lesson prose wrapped to the terminal, never inside a `code span`.

Rich wraps at any space, so `ip netns exec red ping 203.0.113.1` could end one line at `ip netns`
and start the next with `exec red ...`: a student copying either line copies a wrong command.
Here a code span (with whatever sticks to it, like a closing parenthesis) is one unbreakable
piece; a piece wider than the terminal gets a line of its own.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from rich.cells import cell_len
from rich.console import Console, ConsoleOptions, RenderResult
from rich.measure import Measurement
from rich.text import Text

PIECE = re.compile(r"(?:`[^`]*`|\S)+")  # words, with code spans kept whole
SPAN = re.compile(r"(`[^`]*`)")


def _pieces(paragraph: str, width: int) -> list[tuple[str, bool]]:
    """(piece, spaced): a word with its code spans whole; a too-wide one split around its spans.

    Korean glues particles to a span (`ip -br addr`는): the span and the particle may then part
    at a line's end rather than run past the terminal's edge. spaced: a space came before it.
    """
    found: list[tuple[str, bool]] = []
    for word in PIECE.findall(paragraph):
        parts = [word] if cell_len(word) <= width else [p for p in SPAN.split(word) if p]
        found += [(part, i == 0) for i, part in enumerate(parts)]
    return found


def wrap(paragraph: str, width: int) -> Iterator[str]:
    """The lines of one paragraph at `width` cells; lines that fit keep their own spacing."""
    if cell_len(paragraph) <= width:
        yield paragraph
        return
    indent = paragraph[: len(paragraph) - len(paragraph.lstrip())]
    line = ""
    for piece, spaced in _pieces(paragraph, width):
        candidate = (line + (" " if spaced else "") + piece) if line else indent + piece
        if line and cell_len(candidate) > width:
            yield line
            line = indent + piece
        else:
            line = candidate
    if line:
        yield line


class Prose:
    """A paragraph (or several, one per line) of lesson text."""

    def __init__(self, text: str, style: str = "", lead: tuple[str, str] = ("", "")) -> None:
        # lead: (text, style) that starts the first line in a style of its own (`Hint 1: ...`)
        self.text, self.style, self.lead = lead[0] + text, style, lead

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        first = True
        for paragraph in self.text.split("\n"):
            for line in wrap(paragraph, options.max_width):
                # A piece wider than the terminal is folded rather than cut off.
                fits = cell_len(line) <= options.max_width
                text = Text(line, style=self.style, no_wrap=fits,
                            overflow="ignore" if fits else "fold", end="\n")
                if first and self.lead[0]:
                    text.stylize(self.lead[1], 0, len(self.lead[0]))
                first = False
                yield text

    def __rich_measure__(self, console: Console, options: ConsoleOptions) -> Measurement:
        longest = max((cell_len(p) for p in self.text.split("\n")), default=0)
        widest_piece = max((cell_len(p) for p in PIECE.findall(self.text)), default=0)
        return Measurement(min(widest_piece, options.max_width), min(longest, options.max_width))
