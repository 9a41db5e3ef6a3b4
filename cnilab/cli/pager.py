"""Output taller than the terminal goes through a pager, as git does (`less -R`, LESS=FRX)."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

import typer

from cnilab.cli.console import console, opts, recording

PAGER = "less -R"  # as git: colours through, one screen; LESS=FRX unless the user set LESS


@contextlib.contextmanager
def paged(ctx: typer.Context) -> Iterator[None]:
    """Output taller than the terminal goes through a pager, as git does: only when stdout is a
    terminal, not with --no-pager; CNILAB_PAGER (then PAGER) names it, empty or `cat`: none."""
    c = console(record=recording[0])
    pager = os.environ.get("CNILAB_PAGER", os.environ.get("PAGER", PAGER)).strip()
    if not c.is_terminal or opts(ctx).no_pager or recording[0] or pager in ("", "cat"):
        yield
        return
    c.begin_capture()
    try:
        yield
    finally:
        page(c.end_capture(), pager, c.size.height)


def page(text: str, pager: str, height: int) -> None:
    """`text` to the terminal, through `pager` when it has more lines than the terminal."""
    import shlex
    import subprocess
    import sys

    if text.count("\n") < height:
        sys.stdout.write(text)
        sys.stdout.flush()
        return
    env = {**os.environ, "LESS": os.environ.get("LESS", "FRX")}
    try:
        run = subprocess.Popen(shlex.split(pager), stdin=subprocess.PIPE, env=env)
    except (OSError, ValueError):  # no such pager: print as if there were none
        sys.stdout.write(text)
        sys.stdout.flush()
        return
    assert run.stdin is not None
    with contextlib.suppress(BrokenPipeError):  # q before the end: fine
        run.stdin.write(text.encode())
        run.stdin.close()
    with contextlib.suppress(KeyboardInterrupt):
        run.wait()
