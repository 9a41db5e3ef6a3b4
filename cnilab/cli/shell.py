"""An interactive shell whose prompt says where it runs, whatever the user's rc files set.

`cnilab shell` and `cnilab cluster shell` start the user's shell inside a namespace; a student
with two terminals must see at a glance which one is inside red and which one is the node.
"""

from __future__ import annotations

import os
import shlex
import shutil


def shell_argv(label: str) -> list[str]:
    """The user's shell (argv), started so that its prompt begins with `label`.

    bash reads ~/.bashrc after the environment, and Debian's and Ubuntu's set PS1 there, so
    PS1 from the environment alone is lost: bash gets an rc file, through an inherited pipe
    (no file to write), that runs the usual ones and then puts the label first. Other shells
    take PS1 from the environment.
    """
    user_shell = os.environ.get("SHELL") or shutil.which("bash") or "/bin/sh"
    os.environ["PS1"] = f"{label} \\w# "
    if os.path.basename(user_shell) != "bash":
        return [user_shell]
    rc = ('for f in /etc/bash.bashrc ~/.bashrc; do [ -r "$f" ] && . "$f"; done\n'
          f'PS1={shlex.quote(label + " ")}"$PS1"\n')
    read_end, write_end = os.pipe()
    os.write(write_end, rc.encode())  # far below a pipe's buffer: never blocks
    os.close(write_end)
    os.set_inheritable(read_end, True)  # through nsenter / ip netns exec, into bash
    return [user_shell, "--rcfile", f"/dev/fd/{read_end}", "-i"]
