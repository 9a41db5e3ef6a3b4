"""Record raw netlink answers for tests/unit/test_netlink_recorded.py (run once, as root).

Builds the lab up to step 5 under the prefix rec-, then saves, per namespace, the kernel's
RTM_NEWLINK and RTM_NEWADDR messages exactly as received (hex), and removes the lab:

    sudo .venv/bin/python tests/unit/recorded/record_netlink.py
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from pyroute2 import IPRoute

PREFIX = "rec-"
OUT = Path(__file__).with_name("netlink-after-step-5.json")


def raw(msg: object) -> str:
    """One message's bytes as the kernel sent them."""
    length = msg["header"]["length"]  # type: ignore[index]
    return bytes(msg.data[msg.offset:msg.offset + length]).hex()  # type: ignore[attr-defined]


def main() -> None:
    env = {**os.environ, "CNILAB_RUN_DIR": tempfile.mkdtemp()}
    cnilab = [sys.executable, "-m", "cnilab", "--prefix", PREFIX]
    subprocess.run([*cnilab, "run-all", "--yes", "--no-proof", "--to", "5"], env=env,
                   check=True, stdout=subprocess.DEVNULL)
    try:
        spaces = {}
        for name in ("cnilab-host", "cnilab-internet", "red", "blue"):
            with IPRoute(netns=PREFIX + name) as ipr:
                spaces[PREFIX + name] = {"links": [raw(m) for m in ipr.get_links()],
                                         "addrs": [raw(m) for m in ipr.get_addr(family=2)]}
        kernel = os.uname().release
        OUT.write_text(json.dumps({
            "recorded": f"cnilab --prefix {PREFIX} run-all --to 5, then RTM_GETLINK and "
                        f"RTM_GETADDR dumps in each namespace, on Linux {kernel}",
            "spaces": spaces}, indent=1) + "\n")
    finally:
        subprocess.run([*cnilab, "teardown"], env=env, check=True, stdout=subprocess.DEVNULL)


if __name__ == "__main__":
    main()
