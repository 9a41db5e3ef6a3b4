"""Fit a terminal's height: the first of several views, fullest first, whose lines fit."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from rich.console import Console, ConsoleOptions, RenderableType, RenderResult
from rich.measure import Measurement


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
