"""The cnilab CNI plugin executables, called as a runtime calls them, inside a node namespace
this test made: the protocol's error codes, VERSION, results, and the ADD/CHECK/DEL lifecycle."""

from __future__ import annotations

import fcntl
import json
import os
import shlex
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from cnilab.cni import spec
from cnilab.cni.bridge import attachment_hash, host_veth_name
from cnilab.cni.exec import Call
from tests.kernel.cni_sandbox import Sandbox

SUBNET = "10.77.0.0/24"


def conf(tmp_path: Path, version: str = "1.1.0", **extra: Any) -> dict[str, Any]:
    """The main plugin's network configuration, IPAM state under tmp_path."""
    ipam = {"type": "cnilab-ipam", "subnet": SUBNET, "routes": [{"dst": "0.0.0.0/0"}],
            "dataDir": str(tmp_path / "ipam"), **extra.pop("ipam", {})}
    return {"cniVersion": version, "name": "testnet", "type": "cnilab", "bridge": "cni0",
            "isGateway": True, "ipMasq": True, "ipam": ipam, **extra}


def leases(tmp_path: Path) -> list[str]:
    """The addresses cnilab-ipam has on disk."""
    store = tmp_path / "ipam" / "testnet"
    return sorted(f.name for f in store.iterdir() if f.name[0].isdigit()) if store.is_dir() \
        else []


def node_state(box: Sandbox) -> tuple[list[str], list[str]]:
    """The node's links other than lo and the bridge, and its cnilab NAT rules."""
    snap = box.kernel.observe([box.node], nat_in=[box.node])
    ns = snap.ns(box.node)
    assert ns is not None
    links = sorted(ln.name for ln in ns.links if ln.kind not in ("loopback", "bridge"))
    rules = [r for r in ns.nat or () if "cnilab net " in r]
    return links, rules


def error_of(call: Call, code: int) -> str:
    """Assert the call failed with the spec's error object and `code`; its message."""
    assert call.code != 0, call.stdout
    assert call.answer is not None, f"not an error object: {call.stdout!r}"
    assert set(call.answer) <= {"cniVersion", "code", "msg", "details"}
    assert call.answer["code"] == code, call.answer
    assert isinstance(call.answer["msg"], str) and call.answer["msg"]
    return call.answer["msg"]


# -- protocol ------------------------------------------------------------------------------------


def test_version_lists_1_0_0_and_1_1_0(box: Sandbox) -> None:
    for plugin in ("cnilab", "cnilab-ipam"):
        call = box.call(plugin, "VERSION", {"cniVersion": "1.0.0"})
        assert call.ok, call.stdout
        assert call.answer == {"cniVersion": "1.0.0", "supportedVersions": ["1.0.0", "1.1.0"]}


def test_incompatible_version_is_error_1(box: Sandbox, tmp_path: Path) -> None:
    pod = box.pod("p")
    msg = error_of(box.call("cnilab", "ADD", conf(tmp_path, "0.4.0"), "c1", pod), 1)
    assert "0.4.0" in msg
    error_of(box.call("cnilab", "STATUS", conf(tmp_path, "1.0.0")), 1)


def test_unsupported_field_is_error_2_naming_key_and_value(box: Sandbox, tmp_path: Path) -> None:
    msg = error_of(box.call("cnilab", "ADD", conf(tmp_path, vlan=100), "c1", box.pod("p")), 2)
    assert "vlan" in msg and "100" in msg


def test_missing_namespace_is_error_3(box: Sandbox, tmp_path: Path) -> None:
    gone = f"/run/netns/{box.prefix}never-made"
    error_of(box.call("cnilab", "ADD", conf(tmp_path), "c1", gone), 3)
    assert leases(tmp_path) == []


def test_invalid_environment_is_error_4_naming_the_variables(box: Sandbox, tmp_path: Path
                                                             ) -> None:
    pod = box.pod("p")
    msg = error_of(box.call("cnilab", "ADD", conf(tmp_path), "c1", pod, ifname=""), 4)
    assert "CNI_IFNAME" in msg
    msg = error_of(box.call("cnilab", "ADD", conf(tmp_path), "bad id!", pod), 4)
    assert "CNI_CONTAINERID" in msg
    msg = error_of(box.call("cnilab", "ADD", conf(tmp_path), "c1", pod, ifname="x" * 16), 4)
    assert "CNI_IFNAME" in msg
    msg = error_of(box.call("cnilab", "ADD", conf(tmp_path), "c1", pod, args="novalue"), 4)
    assert "CNI_ARGS" in msg


def test_unwritable_ipam_store_is_error_5(box: Sandbox, tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    bad = conf(tmp_path, ipam={"dataDir": str(blocker / "ipam")})
    error_of(box.call("cnilab", "ADD", bad, "c1", box.pod("p")), 5)
    assert node_state(box) == ([], [])


def test_undecodable_stdin_is_error_6(box: Sandbox, tmp_path: Path) -> None:
    error_of(box.call("cnilab", "ADD", {}, "c1", box.pod("p"), stdin=b"{not json"), 6)


def test_invalid_config_is_error_7(box: Sandbox, tmp_path: Path) -> None:
    pod = box.pod("p")
    no_name = conf(tmp_path)
    del no_name["name"]
    error_of(box.call("cnilab", "ADD", no_name, "c1", pod), 7)
    no_ipam = conf(tmp_path)
    del no_ipam["ipam"]
    error_of(box.call("cnilab", "ADD", no_ipam, "c1", pod), 7)
    error_of(box.call("cnilab", "ADD", conf(tmp_path, ipam={"subnet": "10.1.2.300/24"}),
                      "c1", pod), 7)


def test_locked_store_is_error_11_try_again_later(box: Sandbox, tmp_path: Path) -> None:
    store = tmp_path / "ipam" / "testnet"
    store.mkdir(parents=True)
    fd = os.open(store / "lock", os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        call = box.call("cnilab", "ADD", conf(tmp_path, ipam={"lockTimeout": 0.2}), "c1",
                        box.pod("p"))
        error_of(call, 11)
    finally:
        os.close(fd)
    assert node_state(box) == ([], [])


def test_status_is_50_when_range_is_full_and_51_when_bridge_is_down(box: Sandbox,
                                                                   tmp_path: Path) -> None:
    small = conf(tmp_path, ipam={"rangeStart": "10.77.0.2", "rangeEnd": "10.77.0.2"})
    assert box.call("cnilab", "STATUS", small).ok
    assert box.call("cnilab", "ADD", small, "c1", box.pod("p")).ok
    error_of(box.call("cnilab", "STATUS", small), 50)
    assert box.call("cnilab", "DEL", small, "c1", box.pod("q")).ok  # other netns: still frees
    assert box.call("cnilab", "STATUS", small).ok
    box.kernel.add_link(box.node, "cni9", "bridge")  # made, never brought up
    error_of(box.call("cnilab", "STATUS", {**small, "bridge": "cni9"}), 51)


def test_plugin_specific_errors_are_100_and_up(box: Sandbox, tmp_path: Path) -> None:
    pod = box.pod("p")
    missing = conf(tmp_path, ipam={"type": "no-such-ipam"})
    assert "no-such-ipam" in error_of(box.call("cnilab", "ADD", missing, "c1", pod), 103)
    error_of(box.call("cnilab", "ADD", conf(tmp_path), "c1", pod, args="IP=10.99.9.9"), 111)


# -- results ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("version", spec.SUPPORTED_VERSIONS)
def test_add_result_follows_the_spec_format(box: Sandbox, tmp_path: Path, version: str) -> None:
    pod = box.pod("p")
    call = box.call("cnilab", "ADD", conf(tmp_path, version, mtu=1400), "c1", pod)
    assert call.ok, call.stdout
    assert spec.validate_result(call.answer, version) == []
    result = call.answer
    assert [i["name"] for i in result["interfaces"]] == [
        "cni0", host_veth_name("testnet", "c1", "eth0"), "eth0"]
    assert result["interfaces"][2]["sandbox"] == pod
    assert result["ips"] == [{"address": "10.77.0.2/24", "gateway": "10.77.0.1",
                              "interface": 2}]
    assert result["routes"] == [{"dst": "0.0.0.0/0"}]
    has_mtu = ["mtu" in i for i in result["interfaces"]]
    assert has_mtu == ([False, True, True] if version == "1.1.0" else [False] * 3)
    eth0 = box.kernel.get_link(pod, "eth0")
    assert eth0 is not None and eth0.mac == result["interfaces"][2]["mac"]
    assert eth0.addresses == ("10.77.0.2/24",)


def test_a_runtime_that_did_not_ask_gets_no_ipam_report_on_stderr(box: Sandbox,
                                                                   tmp_path: Path) -> None:
    """libcni passes a plugin's stderr to the runtime's own (podman run's terminal): the IPAM
    call is reported only when the caller sets CNILAB_REPORT_DELEGATION, as cnilab's does."""
    import subprocess

    pod, data = box.pod("p"), json.dumps(conf(tmp_path)).encode()
    env = {"PATH": os.environ["PATH"], "CNI_CONTAINERID": "c1", "CNI_NETNS": pod,
           "CNI_IFNAME": "eth0", "CNI_PATH": ":".join(box.cni_path)}
    for command in ("ADD", "DEL"):
        done = subprocess.run(["nsenter", f"--net=/run/netns/{box.node}", box.exe("cnilab")],
                              input=data, env={**env, "CNI_COMMAND": command},
                              capture_output=True, check=False)
        assert (done.returncode, done.stderr) == (0, b""), done.stdout
    call = box.call("cnilab", "ADD", conf(tmp_path), "c2", pod)  # cnilab's own runtime asks
    assert call.ok and [d["plugin"] for d in call.delegations] == ["cnilab-ipam"]
    assert call.log() == ""


# -- lifecycle -------------------------------------------------------------------------------------


def test_check_passes_then_names_what_is_missing(box: Sandbox, tmp_path: Path) -> None:
    pod, cfg = box.pod("p"), conf(tmp_path)
    add = box.call("cnilab", "ADD", cfg, "c1", pod)
    assert add.ok
    with_prev = {**cfg, "prevResult": add.answer}
    assert box.call("cnilab", "CHECK", with_prev, "c1", pod).ok
    error_of(box.call("cnilab", "CHECK", cfg, "c1", pod), 7)  # no prevResult
    rule = node_state(box)[1][0]
    box.kernel.iptables(box.node, ["-t", "nat", "-D", *shlex.split(rule)[1:]])
    msg = error_of(box.call("cnilab", "CHECK", with_prev, "c1", pod), 102)
    assert "NAT rule" in msg
    box.kernel.delete_link(pod, "eth0")
    assert "eth0 is missing" in error_of(box.call("cnilab", "CHECK", with_prev, "c1", pod), 102)
    assert box.call("cnilab", "DEL", cfg, "c1", pod).ok
    assert node_state(box) == ([], []) and leases(tmp_path) == []


def test_del_twice_and_without_prev_result_succeed(box: Sandbox, tmp_path: Path) -> None:
    pod, cfg = box.pod("p"), conf(tmp_path)
    add = box.call("cnilab", "ADD", cfg, "c1", pod)
    assert add.ok and node_state(box)[0] and leases(tmp_path)
    assert box.call("cnilab", "DEL", {**cfg, "prevResult": add.answer}, "c1", pod).ok
    assert box.call("cnilab", "DEL", cfg, "c1", pod).ok
    assert box.call("cnilab", "DEL", cfg, "never-added", pod).ok
    assert node_state(box) == ([], []) and leases(tmp_path) == []
    assert box.kernel.get_link(pod, "eth0") is None


def test_del_after_the_pod_namespace_is_gone(box: Sandbox, tmp_path: Path) -> None:
    pod, cfg = box.pod("p"), conf(tmp_path)
    assert box.call("cnilab", "ADD", cfg, "c1", pod).ok
    box.kernel.remove_netns(pod)
    assert box.call("cnilab", "DEL", cfg, "c1", pod).ok
    assert box.call("cnilab", "DEL", cfg, "c1", "").ok  # CNI_NETNS is optional for DEL
    assert node_state(box) == ([], []) and leases(tmp_path) == []


def test_second_add_with_same_ifname_fails_and_leaks_nothing(box: Sandbox, tmp_path: Path
                                                             ) -> None:
    pod, cfg = box.pod("p"), conf(tmp_path)
    assert box.call("cnilab", "ADD", cfg, "c1", pod).ok
    before = node_state(box), leases(tmp_path)
    assert "eth0" in error_of(box.call("cnilab", "ADD", cfg, "c2", pod), 101)
    assert (node_state(box), leases(tmp_path)) == before


def test_failed_add_undoes_everything_it_made(box: Sandbox, tmp_path: Path) -> None:
    # A route whose gateway is off-link: the kernel refuses it after the links and address
    # were made, so the rollback has real work to do.
    cfg = conf(tmp_path, ipam={"routes": [{"dst": "10.9.0.0/16", "gw": "192.0.2.1"}]})
    pod = box.pod("p")
    error_of(box.call("cnilab", "ADD", cfg, "c1", pod), 100)
    assert node_state(box) == ([], []) and leases(tmp_path) == []
    assert box.kernel.get_link(box.node, "cni0") is None  # no other pod: the bridge went too
    assert box.kernel.get_link(pod, "eth0") is None


def test_twenty_parallel_adds_get_distinct_addresses(box: Sandbox, tmp_path: Path) -> None:
    cfg = conf(tmp_path)
    pods = [box.pod(f"p{i}") for i in range(20)]
    with ThreadPoolExecutor(max_workers=20) as pool:
        calls = list(pool.map(lambda i: box.call("cnilab", "ADD", cfg, f"c{i}", pods[i]),
                              range(20)))
    assert [c.code for c in calls] == [0] * 20, [c.stdout for c in calls if not c.ok]
    addresses = {c.answer["ips"][0]["address"] for c in calls if c.answer}
    assert len(addresses) == 20 and len(leases(tmp_path)) == 20
    links, rules = node_state(box)
    assert len(links) == 20 and len(rules) == 40
    with ThreadPoolExecutor(max_workers=20) as pool:
        dels = list(pool.map(lambda i: box.call("cnilab", "DEL", cfg, f"c{i}", pods[i]),
                             range(20)))
    assert all(c.ok for c in dels), [c.stdout for c in dels if not c.ok]
    assert node_state(box) == ([], []) and leases(tmp_path) == []


def test_range_exhaustion_is_a_clear_error(box: Sandbox, tmp_path: Path) -> None:
    cfg = conf(tmp_path, ipam={"rangeStart": "10.77.0.10", "rangeEnd": "10.77.0.11"})
    pods = [box.pod(f"p{i}") for i in range(3)]
    assert box.call("cnilab", "ADD", cfg, "c0", pods[0]).ok
    assert box.call("cnilab", "ADD", cfg, "c1", pods[1]).ok
    before = node_state(box)
    msg = error_of(box.call("cnilab", "ADD", cfg, "c2", pods[2]), 110)
    assert "no IP addresses available" in msg and "10.77.0.10-10.77.0.11" in msg
    assert node_state(box) == before and leases(tmp_path) == ["10.77.0.10", "10.77.0.11"]
    for i in range(2):
        assert box.call("cnilab", "DEL", cfg, f"c{i}", pods[i]).ok
    assert node_state(box) == ([], []) and leases(tmp_path) == []


def test_gc_removes_what_valid_attachments_do_not_name(box: Sandbox, tmp_path: Path) -> None:
    cfg = conf(tmp_path)
    pods = [box.pod(f"p{i}") for i in range(2)]
    for i in range(2):
        assert box.call("cnilab", "ADD", cfg, f"c{i}", pods[i]).ok
    keep = {**cfg, "cni.dev/valid-attachments": [{"containerID": "c0", "ifname": "eth0"}]}
    assert box.call("cnilab", "GC", keep).ok
    assert leases(tmp_path) == ["10.77.0.2"]
    assert all(attachment_hash("testnet", "c0") in r for r in node_state(box)[1])
    older = {**cfg, "cni.dev/attachments": []}
    assert box.call("cnilab", "GC", older).ok
    assert leases(tmp_path) == [] and node_state(box)[1] == []


def test_result_is_json_on_stdout_and_nothing_else(box: Sandbox, tmp_path: Path) -> None:
    call = box.call("cnilab", "ADD", conf(tmp_path), "c1", box.pod("p"))
    assert call.ok and json.loads(call.stdout) == call.answer
