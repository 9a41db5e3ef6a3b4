"""Entry points of the plugin executables: VERSION is answered before anything else is imported.

libcni asks every plugin of a conflist for VERSION when a runtime loads it, with placeholders in
the other variables (CNI_NETNS=dummy, CNI_CONTAINERID=dummy, ...), and a runtime does it again
before ADD: this path is latency paid per network and per container. It needs only CNI_COMMAND
and stdin, so it imports nothing but os and sys, and reads nothing else.
"""

from __future__ import annotations

import os
import sys

TYPE_CHECKING = False  # not typing's: importing it costs ~3 ms; VERSION imports only os, sys
if TYPE_CHECKING:
    from typing import NoReturn

SUPPORTED_VERSIONS = ("1.0.0", "1.1.0")  # cnilab.cni.spec.SUPPORTED_VERSIONS (a test checks)


def asked_version(data: bytes) -> str | None:
    """The "cniVersion" string in a config, found without the json module (and its imports)."""
    key = data.find(b'"cniVersion"')
    if key < 0:
        return None
    rest = data[key + len(b'"cniVersion"'):].lstrip()
    if not rest.startswith(b":"):
        return None
    rest = rest[1:].lstrip()
    end = rest.find(b'"', 1)
    if not rest.startswith(b'"') or end < 0:
        return None
    return rest[1:end].decode("ascii", "replace")


def answer_version() -> int:
    """Print VERSION's answer: the config's cniVersion if we speak it, and what we speak."""
    try:
        asked = asked_version(sys.stdin.buffer.read())
    except OSError:
        asked = None  # VERSION answers whatever stdin holds, as the reference plugins do
    version = asked if asked in SUPPORTED_VERSIONS else SUPPORTED_VERSIONS[-1]
    listed = ",".join(f'"{v}"' for v in SUPPORTED_VERSIONS)
    sys.stdout.write(f'{{"cniVersion":"{version}","supportedVersions":[{listed}]}}\n')
    return 0


def plugin() -> int:
    """The `cnilab` executable."""
    if os.environ.get("CNI_COMMAND") == "VERSION":
        return answer_version()
    from cnilab.cni.plugin import main

    return main()


def ipam() -> int:
    """The `cnilab-ipam` executable."""
    if os.environ.get("CNI_COMMAND") == "VERSION":
        return answer_version()
    from cnilab.cni.ipam import main

    return main()


def finish(code: int) -> NoReturn:
    """End the executable's process with `code`, without Python's finalization.

    Freeing every module the call imported (pyroute2's message classes, cnilab's own) takes
    ~10 ms of CPU, and a runtime starts the plugin for every call. Nothing is left for it to
    do: the call's threads are joined, its child processes waited for and its files closed
    (with blocks); only stdout and stderr may hold text, flushed here.
    """
    try:
        for stream in (sys.stdout, sys.stderr):
            if stream is not None:  # None: started with that descriptor closed
                stream.flush()
    except (OSError, ValueError):
        code = code or 120  # what Python's own exit says when it cannot flush stdout
    os._exit(code)
