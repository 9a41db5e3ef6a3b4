"""The printed commands, typed by bash, build the same kernel state as cnilab's own ops."""

from __future__ import annotations

import subprocess
from dataclasses import replace

from helpers import Cnilab

from cnilab.ops import rule_tokens
from cnilab.state import Snapshot


def normalised(snap: Snapshot, prefix: str) -> dict:
    """The state with prefixes, indexes, MACs and cnilab's alias tags taken out."""
    def strip(name: str | None) -> str | None:
        return None if name is None else name.replace(prefix, "")

    out = {}
    for name, ns in snap.spaces.items():
        links = sorted((ln.name, ln.kind, ln.up, ln.master, strip(ln.peer), ln.addresses)
                       for ln in ns.links)
        routes = sorted((r.dst, r.gateway, r.dev) for r in ns.routes)
        nat = sorted(rule_tokens(r) for r in ns.nat or ())
        out[strip(name)] = (links, routes, ns.sysctls, nat)
    return out


def test_printed_commands_run_by_bash_give_the_same_state(cnilab: Cnilab) -> None:
    assert cnilab.run("run-all", "--yes", "--no-proof").returncode == 0
    ours = normalised(cnilab.observe(), cnilab.prefix)

    # A second lab, typed by hand: the stage on this machine, the steps inside its node.
    other = replace(cnilab, prefix=cnilab.prefix + "b")
    plan = other.run("run-all", "--dry-run", "--lang", "en").stdout
    stage, marker, steps = plan.partition("# step 1:")
    steps = marker + steps
    node = other.topo.node
    assert node is not None
    # The stage runs in this machine's own namespace: every line of it must act inside a lab
    # namespace, or this test would build the lab on the machine itself.
    assert marker and steps.count("\n") > 10
    for line in stage.splitlines():
        words = line.split()
        assert not words or words[0] == "#" or words[:3] == ["ip", "netns", "add"] or (
            words[:2] == ["ip", "-n"] or words[:3] == ["ip", "netns", "exec"]), line
    try:
        subprocess.run(["bash", "-euxc", stage], check=True, capture_output=True)
        # nsenter, not `ip netns exec`: the latter's private mount namespace would hide the
        # `ip netns add` of step 1 from everyone else.
        subprocess.run(["nsenter", f"--net=/run/netns/{node}", "bash", "-euxc", steps],
                       check=True, capture_output=True)
        theirs = normalised(other.observe(), other.prefix)
    finally:
        for ns in other.topo.namespaces():
            subprocess.run(["ip", "netns", "delete", ns], capture_output=True, check=False)
    assert theirs == ours
    assert cnilab.json("status")["steps"] == {**{str(n): True for n in range(1, 9)}, "9": False}
