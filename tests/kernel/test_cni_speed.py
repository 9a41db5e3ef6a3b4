"""What makes the plugin quick, checked by what it runs (never by how long it takes): the NAT
rules of one ADD or DEL in one iptables-restore, on iptables-nft and legacy alike, with the
rule text the lesson prints; cnilab-ipam in the plugin's own process."""

from __future__ import annotations

import os
import shlex
import stat
import subprocess
from pathlib import Path

import pytest

from cnilab.cni.bridge import masq_comment
from tests.kernel.cni_sandbox import Sandbox
from tests.kernel.test_cni_plugin import conf, leases, node_state


def logging_wrapper(folder: Path, name: str, target: str, log: Path) -> None:
    """`name` on PATH: writes its arguments to `log`, then runs `target` with them."""
    path = folder / name
    path.write_text(f'#!/bin/sh\necho "{name} $*" >> {log}\nexec {target} "$@"\n')
    path.chmod(stat.S_IRWXU)


def nat_rules(box: Sandbox, iptables: str) -> list[str]:
    """The node's cnilab rules, as this backend's `iptables -S` prints them."""
    out = subprocess.run(["ip", "netns", "exec", box.node, iptables, "-t", "nat", "-S",
                          "POSTROUTING"], capture_output=True, text=True, check=True).stdout
    return [r for r in out.splitlines() if "cnilab net " in r]


@pytest.mark.parametrize("backend", ["nft", "legacy"])
def test_add_and_del_change_nat_in_one_iptables_restore(
        backend: str, box: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = f"/usr/sbin/iptables-{backend}"
    if not os.access(real, os.X_OK):
        pytest.skip(f"iptables-{backend} is not installed")
    wrappers, log = tmp_path / "wrappers", tmp_path / "runs.log"
    wrappers.mkdir()
    logging_wrapper(wrappers, "iptables", real, log)
    logging_wrapper(wrappers, "iptables-restore", f"{real}-restore", log)
    monkeypatch.setenv("PATH", f"{wrappers}:{os.environ['PATH']}")
    pod, cfg = box.pod("p"), conf(tmp_path)
    call = box.call("cnilab", "ADD", cfg, "c1", pod)
    assert call.ok, call.stdout
    assert log.read_text().splitlines() == ["iptables-restore --noflush -w"]
    comment = masq_comment("testnet", "c1")
    assert nat_rules(box, real) == [  # the text the lesson prints, unchanged
        f'-A POSTROUTING -s 10.77.0.2/32 -d 10.77.0.0/24 -m comment --comment "{comment}" '
        "-j ACCEPT",
        f'-A POSTROUTING -s 10.77.0.2/32 ! -d 224.0.0.0/4 -m comment --comment "{comment}" '
        "-j MASQUERADE"]
    log.unlink()
    assert box.call("cnilab", "DEL", cfg, "c1", pod).ok
    assert log.read_text().splitlines() == ["iptables-restore --noflush -w"]  # no listing
    assert nat_rules(box, real) == [] and leases(tmp_path) == []


def test_del_finds_rules_by_their_comment_when_the_pods_addresses_are_unknown(
        box: Sandbox, tmp_path: Path) -> None:
    pod, cfg = box.pod("p"), conf(tmp_path)
    assert box.call("cnilab", "ADD", cfg, "c1", pod).ok
    assert box.call("cnilab", "ADD", cfg, "c2", box.pod("q")).ok
    box.kernel.remove_netns(pod)  # the pod's addresses went with its namespace
    assert box.call("cnilab", "DEL", cfg, "c1", pod).ok
    links, rules = node_state(box)
    assert len(links) == 1 and len(rules) == 2 and all("10.77.0.3/32" in r for r in rules)


def test_cnilab_ipam_runs_in_the_plugins_process(box: Sandbox, tmp_path: Path) -> None:
    # CNI_PATH without a cnilab-ipam executable: ADD still gets its address from the store.
    pod, cfg = box.pod("p"), conf(tmp_path)
    nowhere = tmp_path / "empty"
    nowhere.mkdir()
    call = box.call("cnilab", "ADD", cfg, "c1", pod, cni_path=[str(nowhere)])
    assert call.ok, call.stdout
    assert leases(tmp_path) == ["10.77.0.2"]
    assert box.call("cnilab", "DEL", cfg, "c1", pod, cni_path=[str(nowhere)]).ok
    assert leases(tmp_path) == []


def test_del_with_one_rule_already_gone_removes_the_other(box: Sandbox, tmp_path: Path) -> None:
    pod, cfg = box.pod("p"), conf(tmp_path)
    assert box.call("cnilab", "ADD", cfg, "c1", pod).ok
    first = node_state(box)[1][0]  # someone deleted one of the pod's two rules by hand
    box.kernel.iptables(box.node, ["-t", "nat", "-D", *shlex.split(first)[1:]])
    assert len(node_state(box)[1]) == 1
    assert box.call("cnilab", "DEL", cfg, "c1", pod).ok  # the transaction fails; found by comment
    assert node_state(box) == ([], []) and leases(tmp_path) == []
