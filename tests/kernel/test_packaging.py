"""A wheel built from the repo, installed in a fresh venv, runs the lab from outside the repo."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from helpers import Cnilab, prefixed_netns

from tests.conftest import ROOT


def test_wheel_in_a_fresh_venv_runs_help_and_the_whole_lab(cnilab: Cnilab,
                                                           tmp_path: Path) -> None:
    dist = tmp_path / "dist"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(dist),
                    str(ROOT)], check=True, capture_output=True)
    wheel = next(dist.glob("cnilab-*.whl"))
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run([str(venv / "bin" / "pip"), "install", "-q", str(wheel)], check=True,
                   capture_output=True)
    exe = str(venv / "bin" / "cnilab")
    env = {**cnilab.env(), "PATH": f"{venv / 'bin'}:{os.environ['PATH']}"}
    outside = tmp_path / "elsewhere"
    outside.mkdir()

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([exe, "--prefix", cnilab.prefix, *args], cwd=outside, env=env,
                              capture_output=True, text=True, check=False)

    help_ = run("--help")
    assert help_.returncode == 0 and "run-all" in help_.stdout
    lab = run("run-all", "--yes")
    assert lab.returncode == 0, lab.stderr
    assert "Create veth pairs" in lab.stdout  # lesson text found inside the installed package
    assert run("teardown").returncode == 0
    assert prefixed_netns(cnilab.prefix) == []
    # `serve`'s page ships inside the package (no file fetched from anywhere else).
    page = subprocess.run([str(venv / "bin" / "python"), "-c", "from cnilab.render.web.server "
                           "import asset; print(*(len(asset(n)) for n in ('index.html', "
                           "'app.js', 'style.css')))"], cwd=outside, capture_output=True,
                          text=True, check=True)
    assert all(int(size) > 0 for size in page.stdout.split())
