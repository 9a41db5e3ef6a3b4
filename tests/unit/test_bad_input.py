"""Config files that are no lab, and JSON nested past Python's recursion limit: one line and
exit 2 from the command, a CNI error object from the plugin. No root: nothing is made."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def cnilab(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """`python -m cnilab ARGS`, as a user runs it (a hang fails by the timeout)."""
    return subprocess.run([sys.executable, "-m", "cnilab", *args], capture_output=True,
                          text=True, cwd=cwd, env={**os.environ, "LANG": "C.UTF-8",
                                                   "CNILAB_RUN_DIR": str(cwd / "run")},
                          check=False, timeout=60)


@pytest.mark.parametrize(("content", "says"), [
    ("fifo", "is not a plain file"),
    ("/dev/zero", "is not a plain file"),
    ("big", "is over 1048576 bytes"),
    ("containers = " + "[" * 5000 + "]" * 5000, "is not valid TOML"),
    # Where Python limits an int's digits (3.11; security releases of 3.8 to 3.10), tomllib
    # refuses 5000 of them; Debian 11's 3.9.2 reads the number, which is then no prefix.
    ("prefix = " + "7" * 5000, "is not valid TOML" if hasattr(sys, "get_int_max_str_digits")
     else "prefix must be a string, not <an integer of"),
    ("prefix = " + "7" * 4000, "prefix must be a string, not <an integer of"),
    ("containers = true", "containers must be a list of tables"),
    ("containers = [1]", "containers[0] needs a name and an address"),
])
def test_a_config_that_is_no_lab_is_one_line_and_exit_2(
        tmp_path: Path, content: str, says: str) -> None:
    path = tmp_path / "lab.toml"
    if content == "fifo":
        os.mkfifo(path)  # reading it would wait for a writer forever
    elif content == "/dev/zero":
        path = Path(content)  # reading it would never end
    elif content == "big":
        path.write_text("# padding\n" * 200_000)
    else:
        path.write_text(content + "\n")
    done = cnilab("--config", str(path), "step", "1", "--dry-run", cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and says in done.stderr, done.stderr
    assert len(done.stderr) < 300  # a value is shown cut down, never 5000 digits


def test_a_conflist_that_is_a_fifo_or_too_deep_is_one_line(tmp_path: Path) -> None:
    fifo = tmp_path / "net.conflist"
    os.mkfifo(fifo)
    deep = tmp_path / "deep.conflist"
    deep.write_text("[" * 10_000 + "]" * 10_000)
    for path, says in ((fifo, "not a plain file"), (deep, "nested too deeply")):
        done = cnilab("cni", "add", "web", "--conflist", str(path), cwd=tmp_path)
        assert done.returncode in (2, 5), done.stderr  # 5: no root here, said in one line
        assert len(done.stderr.strip().splitlines()) == 1, done.stderr
        if done.returncode == 2:
            assert says in done.stderr, done.stderr


def test_the_plugin_answers_10000_deep_json_with_a_decoding_error(tmp_path: Path) -> None:
    env = {"PATH": "/usr/bin:/bin", "CNI_COMMAND": "ADD", "CNI_CONTAINERID": "abc",
           "CNI_NETNS": "/run/netns/nothing-here", "CNI_IFNAME": "eth0", "CNI_PATH": "/nowhere"}
    done = subprocess.run(
        [sys.executable, "-c", "import sys\nfrom cnilab.cni.entry import plugin\n"
         "sys.exit(plugin())"], input="[" * 10_000 + "]" * 10_000, capture_output=True,
        text=True, cwd=ROOT, env=env, check=False, timeout=60)
    assert done.returncode == 1, done.stderr
    answer = json.loads(done.stdout)
    assert answer["code"] == 6 and "nested too deeply" in answer["msg"], answer
    assert "Traceback" not in done.stderr
