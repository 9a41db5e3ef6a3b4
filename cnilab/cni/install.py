"""Write the plugin executables `cnilab` and `cnilab-ipam` into a CNI bin folder.

Each is a few lines of Python calling cnilab.cni's entry function. Runtimes start a plugin
for every call, so startup time is latency: the scripts run Python isolated and without site
(-IS: no site module, whose .pth files can import unrelated packages; no PYTHONPATH,
PYTHONHOME or user site from the runtime's environment; not the script's folder on sys.path)
and put only the folders holding cnilab and pyroute2 on sys.path, after the standard library's.
Neither Typer nor Rich is ever imported on that path.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import stat
import sys
from pathlib import Path

from cnilab.cni.spec import INVALID_CONFIG, CniError
from cnilab.errors import CollisionError, ConfigError, PermissionDenied
from cnilab.runfiles import check_parents, safe_dir, trusted, write_atomic

# Each executable calls one function of cnilab.cni.entry, which answers VERSION before importing
# anything else.
PLUGINS = {"cnilab": "plugin", "cnilab-ipam": "ipam"}
EXEC_MODE = 0o755

SCRIPT = '''#!{python} -IS
"""CNI plugin {name!r} (spec 1.0.0, 1.1.0), written by `cnilab cni install`."""
import gc
import sys

# One call, then the process ends (finish: no teardown of the modules either): collecting
# cycles while ~150 modules load would cost ~4 ms and free next to nothing.
gc.disable()
# After the standard library's folders (-S: no site-packages among them), so that its ~80
# modules are found without a look in these two first.
sys.path += {paths!r}
from cnilab.cni.entry import finish, {function} as main

finish(main())
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
    # pyroute2 loads as cnilab.kernel.iproute loads it: its message classes only (~0.02 s).
    return SCRIPT.format(python=python, name=name, paths=paths, function=PLUGINS[name])


def _precompile() -> None:
    # A plugin is a new process per call: without .pyc files (PYTHONDONTWRITEBYTECODE, a
    # read-only tree) Python would compile cnilab's modules from source every time.
    import compileall

    package = Path(__file__).resolve().parent.parent
    with contextlib.suppress(OSError):
        compileall.compile_dir(str(package), quiet=2)


def _target_dir(folder: str | os.PathLike[str]) -> Path:
    """The bin folder, made (0755) if missing; refused when others could swap what we write:
    it or a folder above it writable by others without the sticky bit, another user's, or a
    symlink another user planted (runfiles.check_parents). A root-owned symlink is followed."""
    target = Path(os.path.abspath(folder))
    if not os.path.lexists(target):
        return safe_dir(target)
    check_parents(target / "cnilab")  # every folder above the executable, the bin folder too
    if not target.is_dir():
        raise CollisionError.of("unsafe_not_dir", path=target)
    return target


def _replaceable(path: Path) -> None:
    """Refuse to replace what someone else planted under the executable's name."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if not stat.S_ISREG(st.st_mode) or not trusted(st):
        raise CollisionError.of("cni_install_planted", path=path)


def install(folder: str | os.PathLike[str]) -> list[Path]:
    """Write both executables into `folder` (made if missing); returns their paths.

    Each is written to a random temp name (O_EXCL|O_NOFOLLOW: nothing planted is followed or
    reused), given mode 0755 on the open file, then renamed into place: a runtime calling the
    plugin meanwhile never sees half a file. A folder that cannot be written is PermissionDenied
    (read-only, full, not root's to write), with the system's reason.
    """
    if not os.fspath(folder).strip():  # Path("") is ".": the current folder, unasked
        raise ConfigError.of("cni_install_empty")
    try:
        return _write(folder)
    except OSError as e:
        raise PermissionDenied.of("cni_install_failed", folder=folder,
                                  reason=e.strerror or str(e)) from None
    except ConfigError as e:  # runfiles: a folder it cannot write
        if e.key != "cannot_write":
            raise
        raise PermissionDenied.of("cni_install_failed", folder=folder,
                                  reason=e.params["reason"]) from None


def _write(folder: str | os.PathLike[str]) -> list[Path]:
    target = _target_dir(folder)
    for name in PLUGINS:
        _replaceable(target / name)
    _precompile()
    written = []
    for name in PLUGINS:
        path = target / name
        _replaceable(path)
        write_atomic(path, script(name).encode("utf-8"), EXEC_MODE)
        written.append(path)
    return written
