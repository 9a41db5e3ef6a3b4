"""What a command loads, run in a fresh Python (modules earlier tests imported do not count)."""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = ("pyroute2", "cnilab.kernel")  # what commands that never touch the kernel must not load


def run_cold(*argvs: list[str], heavy: tuple[str, ...] = HEAVY) -> tuple[str, list[str]]:
    """Run `cnilab ARGV` for each argv in one fresh interpreter: what it printed, and the
    modules of `heavy` it had loaded by the end."""
    code = ("import json, sys\nfrom cnilab.cli.main import app\n"
            f"for args in {json.dumps([list(a) for a in argvs])}:\n"
            "    try:\n        app(args)\n    except SystemExit:\n        pass\n"
            f"print(json.dumps([m for m in sys.modules if m.startswith({heavy!r})]))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    *printed, loaded = done.stdout.strip().splitlines()
    return "\n".join(printed), json.loads(loaded)
