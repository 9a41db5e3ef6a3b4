"""The `cnilab` command's entry point: a Ctrl-C at any moment, even while Python is still
importing Typer, Rich or the lessons, ends with one line and exit status 130.

It imports nothing before the command line is loaded: the line is printed from here when the
interrupt came outside a command's guard (console.guarded prints its own, in the command's
language, and says so in console.interrupt_said).
"""

from __future__ import annotations

import os
import signal
import sys

INTERRUPTED = 130  # console.INTERRUPTED: this module imports nothing of the command line


def _said() -> bool:
    """Whether console.guarded already printed the line (read without importing it)."""
    console = sys.modules.get("cnilab.cli.console")
    return bool(console and console.interrupt_said[0])


def main() -> None:
    """Run the command line; a KeyboardInterrupt that escapes it becomes one line, exit 130."""
    try:
        from cnilab.cli.main import main as command_line

        command_line()
    except KeyboardInterrupt:
        _interrupted()
    except SystemExit as e:
        if e.code == INTERRUPTED and not _said():
            _interrupted()  # Typer turns a Ctrl-C outside a command's guard into a bare exit
        raise


def _interrupted() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C while we print: ignored
    try:
        from cnilab.i18n import t
        from cnilab.lessons import check_lang

        line = t("error.interrupted", check_lang(None))
    except Exception:  # the translations could not be loaded: still one line
        line = "interrupted"
    sys.stdout.flush()
    os.write(2, f"cnilab: {line}\n".encode())
    sys.exit(INTERRUPTED)
