"""Fit a terminal's height: the first of several views, fullest first, whose lines fit."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from rich.console import Console, ConsoleOptions, RenderableType, RenderResult
from rich.measure import Measurement
from rich.segment import Segment


class FirstFit:
    """The first of `views` that fits the terminal's height less `reserve` lines (the last one
    if none does); written to a file or a pipe, the first, whole."""

    def __init__(self, views: Sequence[Callable[[], RenderableType]], reserve: int = 0) -> None:
        self.views = views
        self.reserve = reserve

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        room = (options.height or console.height) - self.reserve if console.is_terminal else 0
        for build in self.views:
            view = build()
            # Counted unbounded: with a height set, render_lines would pad or crop to it.
            if not room or len(console.render_lines(view, options.update(height=None),
                                                    pad=False)) <= room:
                break
        yield view

    def __rich_measure__(self, console: Console, options: ConsoleOptions) -> Measurement:
        return Measurement.get(console, options, self.views[0]())


class CropMiddle:
    """`head`, as much of `middle` as the terminal's height leaves, then `tail` whole: the last
    of a FirstFit's views, so what matters most (the latest change, the footer) stays on a
    short screen. A line says how many lines were left out."""

    def __init__(self, head: RenderableType, middle: RenderableType, tail: RenderableType,
                 more: Callable[[int], RenderableType]) -> None:
        self.head, self.middle, self.tail, self.more = head, middle, tail, more

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        unbounded = options.update(height=None)
        head, tail = (console.render_lines(part, unbounded, pad=False)
                      for part in (self.head, self.tail))
        middle = console.render_lines(self.middle, unbounded, pad=False)
        room = console.height - len(head) - len(tail) if console.is_terminal else len(middle)
        if len(middle) > room:
            left_out = len(middle) - max(room - 1, 0)
            more = console.render_lines(self.more(left_out), unbounded, pad=False)
            middle = middle[: max(room - len(more), 0)] + more
        for line in (*head, *middle, *tail):
            yield from line
            yield Segment.line()

    def __rich_measure__(self, console: Console, options: ConsoleOptions) -> Measurement:
        return Measurement.get(console, options, self.middle)
