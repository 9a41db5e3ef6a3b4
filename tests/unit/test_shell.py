"""`cnilab shell`: the prompt names the namespace even when ~/.bashrc sets its own PS1."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from cnilab.cli.shell import shell_argv

DEBIAN_BASHRC = "PS1='${debian_chroot:+($debian_chroot)}\\u@\\h:\\w\\$ '\n"


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_bash_keeps_the_namespace_in_its_prompt_after_the_users_bashrc(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / ".bashrc").write_text(DEBIAN_BASHRC)
    monkeypatch.setenv("PS1", "")  # shell_argv sets it; monkeypatch puts it back
    monkeypatch.setenv("SHELL", shutil.which("bash") or "bash")
    argv = shell_argv("(cnilab:red)")
    fd = int(argv[argv.index("--rcfile") + 1].rsplit("/", 1)[1])
    try:
        done = subprocess.run(argv, input='printf "%s\\n" "$PS1"\n', capture_output=True,
                              text=True, pass_fds=(fd,), timeout=10,
                              env={**os.environ, "HOME": str(tmp_path)}, check=False)
    finally:
        os.close(fd)
    ps1 = done.stdout.strip().splitlines()[-1]
    assert ps1.startswith("(cnilab:red) ") and "\\u@\\h" in ps1  # theirs, with ours in front


def test_other_shells_get_the_prompt_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PS1", "")
    monkeypatch.setenv("SHELL", "/bin/sh")
    assert shell_argv("(cnilab:blue)") == ["/bin/sh"]
    assert os.environ["PS1"].startswith("(cnilab:blue) ")
