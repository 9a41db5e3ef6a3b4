"""Where cnilab leans on a dependency's internals for speed, the versions it was built for are
pinned in pyproject.toml, and these tests fail loudly, naming the internal, when a new version
changes it (instead of cnilab breaking in a student's terminal)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import pytest
import typer
from typer.models import CommandInfo, TyperInfo

PYPROJECT = (Path(__file__).resolve().parents[2] / "pyproject.toml").read_text(encoding="utf-8")


def _release(text: str) -> tuple[int, ...]:
    return tuple(int(x) for x in re.findall(r"\d+", text)[:3])


@pytest.mark.parametrize(("package", "low", "high"), [("typer", "0.12", "0.29"),
                                                      ("pyroute2", "0.9.7", "0.10")])
def test_the_versions_whose_internals_cnilab_uses_are_pinned_and_installed(
        package: str, low: str, high: str) -> None:
    assert f'"{package}>={low},<{high}"' in PYPROJECT, f"pyproject.toml must pin {package}"
    installed = _release(version(package))
    assert _release(low) <= installed < _release(high), (
        f"{package} {version(package)} is outside the range cnilab was built for")


def test_typers_internals_that_cli_main_app_for_copies_are_still_there() -> None:
    # cnilab.cli.main.app_for builds a small app per call from these fields, and
    # compat.evaluate_command_signatures walks them: a rename breaks every command.
    app = typer.Typer()
    for name in ("registered_commands", "registered_groups", "registered_callback"):
        assert hasattr(app, name), f"typer.Typer has no {name} (cnilab.cli.main.app_for)"
    for name in ("name", "callback"):
        assert name in CommandInfo.__init__.__code__.co_varnames, (
            f"typer.models.CommandInfo has no {name} (cnilab.cli.main._listed)")
    for name in ("name", "typer_instance"):
        assert name in TyperInfo.__init__.__code__.co_varnames, (
            f"typer.models.TyperInfo has no {name} (cnilab.cli.main._bare)")


def test_pyroute2s_message_classes_load_without_its_package_init_and_the_rest_still_works(
        ) -> None:
    # cnilab.kernel.iproute registers pyroute2 as a bare package to load only the message
    # classes; anything asking for pyroute2's own names must still get the real package.
    code = ("import sys, json\nimport cnilab.kernel.iproute\n"
            "before = 'pyroute2.ndb' in sys.modules or 'pyroute2.iproute' in sys.modules\n"
            "from pyroute2.netlink.rtnl.ifinfmsg import ifinfmsg\n"
            "from pyroute2 import IPRoute\n"
            "print(json.dumps([before, IPRoute.__name__, hasattr(ifinfmsg, 'nla_map')]))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, (
        f"pyroute2 {version('pyroute2')} changed what cnilab.kernel.iproute._bare_package "
        f"relies on (its package layout):\n{done.stderr}")
    assert json.loads(done.stdout) == [False, "IPRoute", True]
