"""Ctrl-C at any moment, also while Python is still importing: one line, exit 130.

The SIGINT is real and sent by the process to itself at an exact point, right after the first
import of a given module (no timing guessed), through the very entry point a user runs.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

from cnilab.compat import tomllib

ROOT = Path(__file__).resolve().parents[2]
HOOK = """
import builtins, os, signal, sys
real = builtins.__import__
def hooked(*a, **k):
    found = real(*a, **k)
    if {module!r} in sys.modules:  # just imported, by whatever import statement
        builtins.__import__ = real
        os.kill(os.getpid(), signal.SIGINT)
    return found
builtins.__import__ = hooked
sys.argv = ["cnilab", *sys.argv[1:]]
"""


def entry_points() -> dict[str, str]:
    """How the command starts: the console script pyproject declares, and `python -m`."""
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    module, _, function = scripts["cnilab"].partition(":")
    return {"script": f"from {module} import {function}\nsys.exit({function}())",
            "-m": "import runpy\nrunpy.run_module('cnilab', run_name='__main__')"}


# Click's text wrapping, where help is printed: Typer 0.26 and later carry their own click.
TEXTWRAP = ("typer._click._textwrap" if importlib.util.find_spec("typer._click") is not None
            else "click._textwrap")


@pytest.mark.parametrize("how", ["script", "-m"])
@pytest.mark.parametrize(("module", "args"), [
    ("typer", ("explain", "1")),  # Python still importing the command line
    ("cnilab.cli.scenario", ("explain", "1")),  # the commands being assembled
    ("rich.console", ("explain", "1")),  # inside a command, before its first line
    (TEXTWRAP, ("--help",)),  # help being printed: no command, no guard
])
def test_ctrl_c_at_any_moment_is_one_line_and_exit_130(
        how: str, module: str, args: tuple[str, ...]) -> None:
    code = HOOK.format(module=module) + entry_points()[how]
    done = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True,
                          cwd=ROOT, env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"},
                          check=False, timeout=60)
    assert done.returncode == 130, done.stderr
    assert done.stderr.splitlines() == [
        "cnilab: interrupted; the lab stays as it is (`cnilab teardown` removes it)"]
