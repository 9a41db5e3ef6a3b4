"""The lesson's runtime (pods as namespaces, cached results) and the in-process plugin API that
the cluster lesson uses; everything under the test's own prefix and run directory."""

from __future__ import annotations

import os
import shutil
import signal
from pathlib import Path
from typing import Any

import pytest
from helpers import Cnilab, prefixed_netns

from cnilab.cni import plugin, runtime, spec, verify
from cnilab.cni.exec import Call, find_reference
from cnilab.cni.runtime import Runtime
from cnilab.errors import ConfigError
from cnilab.kernel import Kernel
from cnilab.lab.proofs import ping
from cnilab.ops import AddNetns


def test_runtime_add_check_del_with_both_plugins(prefix: str, run_dir: Path) -> None:
    if find_reference("bridge") is None:
        pytest.skip("reference plugins not installed")
    rt = Runtime(prefix=prefix)
    try:
        web = rt.add("web")
        call = web.calls[0]
        assert call.ok, call.stdout
        assert call.env["CNI_NETNS"] == f"/run/netns/{prefix}pod-web"
        db = rt.add("db", plugin="bridge")  # same bridge, same address store
        assert all(c.ok for c in db.calls), [c.stdout for c in db.calls]
        addresses = {p.result["ips"][0]["address"] for p in rt.pods()}
        assert addresses == {"10.244.1.2/24", "10.244.1.3/24"}
        assert spec.validate_result(web.pod.result, "1.0.0") == []
        assert ping(web.pod.netns, db.pod.result["ips"][0]["address"].split("/")[0]) is None
        assert all(c.ok for c in rt.check("web") + rt.check("db"))
        assert all(c.ok for c in rt.status() + rt.gc())
        assert len(list((rt.data_dir / "cnilab-pods").glob("10.*"))
                   ) == 2  # GC kept both known pods' addresses
        assert all(c.ok for c in rt.delete("db"))
        assert [p.name for p in rt.pods()] == ["web"]
        assert db.pod.netns not in rt.kernel.observe([db.pod.netns]).netns
    finally:
        removed = rt.teardown()
    assert AddNetns(None, f"{prefix}cnilab-cni-node") in removed
    assert not any(n.startswith(prefix) for n in rt.kernel.observe([]).netns)


def test_the_runtime_asks_version_once_per_network(prefix: str, run_dir: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    if find_reference("tuning") is None:
        pytest.skip("reference plugins not installed")
    asked: list[str] = []
    real = runtime.invoke

    def counting(exe: str, command: str, *args: Any, **kwargs: Any) -> Call:
        if command == "VERSION":
            asked.append(os.path.basename(exe))
        return real(exe, command, *args, **kwargs)

    monkeypatch.setattr(runtime, "invoke", counting)
    rt = Runtime(prefix=prefix)
    try:
        assert rt.add("web").calls[0].ok
        assert rt.add("db").calls[0].ok
        assert asked == ["tuning"]  # libcni asks when it loads the conflist, not at every use
    finally:
        rt.teardown()


def test_runtime_refuses_a_duplicate_pod(prefix: str, run_dir: Path) -> None:
    rt = Runtime(prefix=prefix)
    try:
        assert rt.add("web").calls[0].ok
        with pytest.raises(ConfigError, match="already exists"):
            rt.add("web")
    finally:
        rt.teardown()


def test_in_process_api_attaches_a_pod_in_a_node_namespace(prefix: str, tmp_path: Path) -> None:
    node, pod = prefix + "node", prefix + "pod"
    config = {"cniVersion": "1.1.0", "name": "inproc", "type": "cnilab", "bridge": "cni0",
              "isGateway": True, "ipMasq": True,
              "ipam": {"type": "cnilab-ipam", "subnet": "10.244.2.0/24",
                       "routes": [{"dst": "0.0.0.0/0"}], "dataDir": str(tmp_path)}}
    with Kernel() as kernel:
        kernel.add_netns(node)
        kernel.add_netns(pod)
        result = plugin.add(config, "abc", pod, "eth0", node=node, kernel=kernel)
        assert result["ips"][0]["address"] == "10.244.2.2/24"
        assert result["interfaces"][2]["sandbox"] == f"/run/netns/{pod}"
        assert ping(pod, "10.244.2.1") is None
        verify.check({**config, "prevResult": result}, "abc", pod, "eth0", node=node,
                     kernel=kernel)
        with pytest.raises(spec.CniError) as info:
            plugin.add(config, "abc2", pod, "eth0", node=node, kernel=kernel)
        assert info.value.code == spec.INTERFACE_EXISTS
        plugin.delete(config, "abc", pod, "eth0", node=node, kernel=kernel)
        plugin.delete(config, "abc", pod, "eth0", node=node, kernel=kernel)
        snap = kernel.observe([node, pod], nat_in=[node])
        assert snap.ns(pod).link("eth0") is None  # type: ignore[union-attr]
        assert [r for r in snap.ns(node).nat or () if "inproc" in r] == []  # type: ignore
        assert list((tmp_path / "inproc").glob("10.*")) == []


def _killer(tmp_path: Path, after_plugin: bool) -> tuple[dict[str, str], Path]:
    """A PATH whose `nsenter` SIGKILLs the runtime that ran it: before the plugin runs, or after
    it has made the attachment and before the runtime could cache the result. The marker file
    proves the kill landed inside the ADD, not by timing."""
    real = shutil.which("nsenter")
    assert real is not None
    folder, marker = tmp_path / "killer", tmp_path / "killed"
    folder.mkdir()
    run = f'"{real}" "$@"\n' if after_plugin else ""
    script = folder / "nsenter"
    script.write_text(f'#!/bin/sh\ntouch "{marker}"\n{run}kill -9 $PPID\n')
    script.chmod(0o755)
    return {"PATH": f"{folder}:{os.environ['PATH']}"}, marker


@pytest.mark.parametrize("after_plugin", [False, True], ids=["before-plugin", "after-plugin"])
def test_sigkill_during_add_leaves_a_pod_that_del_and_teardown_remove(
        prefix: str, run_dir: Path, tmp_path: Path, after_plugin: bool) -> None:
    env, marker = _killer(tmp_path, after_plugin)
    killed = Cnilab(prefix, run_dir, env).run("cni", "add", "web")
    assert killed.returncode == -signal.SIGKILL and marker.exists()
    assert f"{prefix}pod-web" in prefixed_netns(prefix)  # the kill landed mid-ADD
    cnilab = Cnilab(prefix, run_dir)
    again = cnilab.run("cni", "add", "web")
    assert again.returncode == 2 and "already exists" in again.stderr
    assert f"cnilab --prefix {prefix} cni del web" in again.stderr  # the hint reaches this lab
    done = cnilab.run("cni", "del", "web")
    assert done.returncode == 0, done.stderr
    assert prefixed_netns(prefix) == [f"{prefix}cnilab-cni-node", f"{prefix}cnilab-cni-world"]
    state = Runtime(prefix, str(run_dir)).state
    leases = state / "networks" / "cnilab-pods"
    assert leases.is_dir() == after_plugin  # the plugin ran (and made its store) or not
    assert not list(leases.glob("10.*"))  # DEL without a cached result still released it
    assert cnilab.run("cni", "add", "web").returncode == 0  # the name is free again
    assert cnilab.run("cni", "teardown").returncode == 0
    assert prefixed_netns(prefix) == []
    assert not state.exists()


def test_sigkill_during_add_then_teardown_removes_everything(prefix: str, run_dir: Path,
                                                            tmp_path: Path) -> None:
    env, marker = _killer(tmp_path, after_plugin=True)
    assert Cnilab(prefix, run_dir, env).run("cni", "add", "web").returncode == -signal.SIGKILL
    assert marker.exists()
    cnilab = Cnilab(prefix, run_dir)
    done = cnilab.run("cni", "teardown")
    assert done.returncode == 0, done.stderr
    assert f"ip netns del {prefix}pod-web" in done.stdout
    # cnitool never ran: the listing says its `cnitool del` is an equivalent of what did.
    lines = done.stdout.splitlines()
    at = next(i for i, line in enumerate(lines) if "cnitool del" in line)
    assert lines[at + 1].strip().startswith("# an equivalent: cnitool did not run")
    assert prefixed_netns(prefix) == []
    assert cnilab.run("cni", "teardown").stdout.strip() != ""  # idempotent, says so
    assert cnilab.run("cni", "teardown").returncode == 0


def test_cni_add_shows_the_plugins_call_to_ipam_its_stdin_and_answer(prefix: str,
                                                                     run_dir: Path) -> None:
    # The lesson's step 2: the plugin -> IPAM call, as the plugin really made it.
    cnilab = Cnilab(prefix, run_dir)
    try:
        done = cnilab.run("cni", "add", "web")
        assert done.returncode == 0, done.stderr
        text = " ".join(done.stdout.split())
        two = text.index("2 · The plugin asks its IPAM plugin for an address")
        three = text.index("3 · The plugin does the eight steps")
        said = text.index("The plugin calls its IPAM plugin cnilab-ipam (ADD)")
        answered = text.index("cnilab-ipam answered the plugin:")
        assert two < said < answered < three < text.index("4 · The result, kept by the runtime")
        # The answer shown is IPAM's own: the address the pod then got, and no interfaces
        # (IPAM hands out addresses; the plugin makes the interfaces).
        address = Runtime(prefix, str(run_dir)).pods()[0].result["ips"][0]["address"]
        assert f'"address": "{address}"' in text[answered:three]
        assert '"interfaces"' not in text[answered:three]
    finally:
        cnilab.run("cni", "teardown")
    assert prefixed_netns(prefix) == []
