"""Write the plugin executables `cnilab` and `cnilab-ipam` into a CNI bin folder.

Each is a few lines of Python calling cnilab.cni's entry function. Runtimes start a plugin
for every call, so startup time is latency: the scripts run Python with -S (no site module,
whose .pth files can import unrelated packages) and put only the folders holding cnilab and
pyroute2 on sys.path. Neither Typer nor Rich is ever imported on that path.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import sys
from pathlib import Path

from cnilab.cni.spec import INVALID_CONFIG, CniError

# Each executable calls one function of cnilab.cni.entry, which answers VERSION before importing
# anything else.
PLUGINS = {"cnilab": "plugin", "cnilab-ipam": "ipam"}

SCRIPT = '''#!{python} -S
"""CNI plugin {name!r} (spec 1.0.0, 1.1.0), written by `cnilab cni install`."""
import sys

sys.path[:0] = {paths!r}
{stub}from cnilab.cni.entry import {function} as main

sys.exit(main())
'''

# pyroute2/__init__.py imports every pyroute2 module (IPDB, NDB, conntrack, ...): ~0.15 s of
# each plugin call. A bare package object with the same __path__ lets kernel.py's imports load
# only the modules they need; `from pyroute2 import IPRoute` resolves through __getattr__.
# Only the plugin process gets this, never a program that imports cnilab.
PYROUTE2_STUB = '''import types

_pyroute2 = types.ModuleType("pyroute2")
_pyroute2.__path__ = {path!r}


def _lazy(name):
    if name == "IPRoute":
        from pyroute2.iproute.linux import IPRoute
        return IPRoute
    raise AttributeError(name)


_pyroute2.__getattr__ = _lazy
sys.modules["pyroute2"] = _pyroute2
'''


def _package_parent(name: str) -> str | None:
    found = importlib.util.find_spec(name)
    if found is None or not found.submodule_search_locations:
        return None
    return str(Path(next(iter(found.submodule_search_locations))).parent)


def script(name: str, python: str | None = None) -> str:
    """The text of the executable `name` (cnilab or cnilab-ipam)."""
    python = python or sys.executable
    if not python or any(c.isspace() for c in python):
        raise CniError(INVALID_CONFIG, f"cannot write a #! line for the interpreter {python!r}")
    paths = list(dict.fromkeys(p for p in (_package_parent("cnilab"), _package_parent("pyroute2"))
                               if p))
    stub = ""
    found = importlib.util.find_spec("pyroute2")
    if name == "cnilab" and found is not None and found.submodule_search_locations:
        stub = PYROUTE2_STUB.format(path=list(found.submodule_search_locations)) + "\n"
    return SCRIPT.format(python=python, name=name, paths=paths, function=PLUGINS[name],
                         stub=stub)


def _precompile() -> None:
    # A plugin is a new process per call: without .pyc files (PYTHONDONTWRITEBYTECODE, a
    # read-only tree) Python would compile cnilab's modules from source every time.
    import compileall

    package = Path(__file__).resolve().parent.parent
    with contextlib.suppress(OSError):
        compileall.compile_dir(str(package), quiet=2)


def install(folder: str | os.PathLike[str]) -> list[Path]:
    """Write both executables into `folder` (made if missing); returns their paths."""
    target = Path(folder)
    target.mkdir(parents=True, exist_ok=True)
    _precompile()
    written = []
    for name in PLUGINS:
        path = target / name
        tmp = target / f".{name}.tmp"
        tmp.write_text(script(name), encoding="utf-8")
        tmp.chmod(0o755)
        tmp.replace(path)  # atomic: a runtime calling the plugin now never sees half a file
        written.append(path)
    return written
