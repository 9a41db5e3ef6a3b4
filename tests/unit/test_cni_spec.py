"""The CNI protocol without a kernel: environment, config, results, errors, and cnilab-ipam's
file store (IPAM touches only files, so it runs here, in a temporary folder)."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from cnilab.cni import bridge, entry, ipam, spec
from cnilab.cni.install import install, script
from cnilab.cni.ipam_store import Store
from cnilab.cni.spec import CniError

ENV = {"CNI_COMMAND": "ADD", "CNI_CONTAINERID": "abc", "CNI_NETNS": "/run/netns/x",
       "CNI_IFNAME": "eth0", "CNI_PATH": "/opt/cni/bin"}


def code_of(fn: Any, *args: Any) -> int:
    with pytest.raises(CniError) as info:
        fn(*args)
    return info.value.code


def test_environment_is_read_and_checked() -> None:
    env = spec.read_environment({**ENV, "CNI_ARGS": "IgnoreUnknown=1;IP=10.0.0.5"})
    assert env.args == {"IgnoreUnknown": "1", "IP": "10.0.0.5"}
    assert env.path == ("/opt/cni/bin",)
    for bad in ({"CNI_COMMAND": "MAKE"}, {"CNI_IFNAME": ""}, {"CNI_CONTAINERID": "-x"},
                {"CNI_NETNS": "relative"}, {"CNI_ARGS": "x"}, {"CNI_IFNAME": "a/b"}):
        assert code_of(spec.read_environment, {**ENV, **bad}) == spec.INVALID_ENVIRONMENT
    with pytest.raises(CniError) as info:
        spec.read_environment({"CNI_COMMAND": "ADD"})
    assert all(v in info.value.msg for v in ("CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME"))
    assert spec.read_environment({"CNI_COMMAND": "DEL", "CNI_CONTAINERID": "a",
                                  "CNI_IFNAME": "eth0", "CNI_PATH": "/x"}).netns == ""


def test_a_call_is_parsed_once_into_one_request(monkeypatch: pytest.MonkeyPatch) -> None:
    decoded: list[object] = []
    real = json.loads
    monkeypatch.setattr(spec.json, "loads", lambda text: decoded.append(text) or real(text))
    seen: list[spec.Request] = []
    conf = {"cniVersion": "1.1.0", "name": "n", "type": "cnilab"}
    text, code = spec.run(lambda req: seen.append(req) or None,
                          {**ENV, "CNI_ARGS": "IP=10.0.0.5"}, json.dumps(conf).encode())
    assert (text, code) == ("", 0) and len(decoded) == 1
    assert seen[0].config == conf and seen[0].env.args == {"IP": "10.0.0.5"}
    assert seen[0].env.cni_args == "IP=10.0.0.5" and seen[0].as_command("DEL").command == "DEL"


def test_an_in_process_call_is_checked_as_the_executables_without_a_fake_cni_path() -> None:
    conf = {"cniVersion": "1.0.0", "name": "n", "type": "cnilab"}
    req = bridge.request("ADD", conf, "abc", "pod-x", "eth0", "MAC=02:42:0a:f4:01:05")
    assert req.env.netns == "/run/netns/pod-x" and req.env.path == ()
    assert req.env.args == {"MAC": "02:42:0a:f4:01:05"}
    assert code_of(bridge.request, "ADD", conf, "abc", "", "eth0") == spec.INVALID_ENVIRONMENT
    assert code_of(bridge.request, "ADD", conf, "a b", "x") == spec.INVALID_ENVIRONMENT
    assert code_of(bridge.request, "DEL", {**conf, "cniVersion": "0.4.0"}, "abc", "", "eth0") == 1
    # The executable's environment must still name CNI_PATH.
    env = {k: v for k, v in ENV.items() if k != "CNI_PATH"}
    assert code_of(spec.read_environment, env) == spec.INVALID_ENVIRONMENT


def parse_config(text: str | bytes, command: str = "ADD") -> dict[str, Any]:
    return spec.check_config(spec.decode_config(text), command)


def test_config_errors_have_the_spec_codes() -> None:
    good = {"cniVersion": "1.1.0", "name": "n", "type": "cnilab"}
    assert parse_config(json.dumps(good)) == good
    assert code_of(parse_config, b"{") == spec.DECODE_FAILURE
    assert code_of(parse_config, b"[]") == spec.DECODE_FAILURE
    assert code_of(parse_config, json.dumps({**good, "cniVersion": "0.3.1"})) == 1
    assert code_of(parse_config, json.dumps({**good, "name": "a b"})) == 7
    assert code_of(parse_config, json.dumps({"name": "n", "type": "t"})) == 7
    assert code_of(parse_config, json.dumps({**good, "prevResult": 3})) == 6
    assert code_of(parse_config, json.dumps({**good, "cniVersion": "1.0.0"}), "GC") == 1
    assert spec.reply_version({"cniVersion": 1}) == spec.reply_version({}) == spec.LATEST


def test_error_object_shape() -> None:
    err = CniError(7, "bad", "why")
    assert err.to_dict("1.0.0") == {"cniVersion": "1.0.0", "code": 7, "msg": "bad",
                                    "details": "why"}
    assert CniError.from_dict(err.to_dict()).code == 7
    out, code = spec.run(ipam.handle, {"CNI_COMMAND": "NOPE"}, b"{}")
    assert code != 0 and set(json.loads(out)) == {"cniVersion", "code", "msg"}


RESULT = {
    "cniVersion": "1.0.0",
    "interfaces": [{"name": "cni0", "mac": "0a:58:0a:f4:01:01"},
                   {"name": "eth0", "mac": "0a:58:0a:f4:01:02", "sandbox": "/run/netns/p"}],
    "ips": [{"address": "10.244.1.2/24", "gateway": "10.244.1.1", "interface": 1}],
    "routes": [{"dst": "0.0.0.0/0", "gw": "10.244.1.1"}],
    "dns": {"nameservers": ["10.96.0.10"]},
}


def test_result_validation_for_1_0_0_and_1_1_0() -> None:
    assert spec.validate_result(RESULT, "1.0.0") == []
    newer = {**RESULT, "cniVersion": "1.1.0",
             "interfaces": [{**RESULT["interfaces"][0], "mtu": 1500}, RESULT["interfaces"][1]],
             "routes": [{"dst": "10.0.0.0/8", "gw": "10.244.1.1", "priority": 10}]}
    assert spec.validate_result(newer, "1.1.0") == []
    assert any("mtu" in p for p in spec.validate_result({**newer, "cniVersion": "1.0.0"},
                                                       "1.0.0"))
    broken = [
        {**RESULT, "ips": [{"address": "10.244.1.2", "interface": 1}]},  # no prefix
        {**RESULT, "ips": [{"address": "10.244.1.2/24", "version": "4"}]},  # 0.3.x field
        {**RESULT, "ips": [{"address": "10.244.1.2/24", "interface": 5}]},
        {**RESULT, "interfaces": [{"mac": "0a:58:0a:f4:01:01"}]},
        {**RESULT, "routes": [{"gw": "10.244.1.1"}]},
        {**RESULT, "cniVersion": "1.1.0"},
        {**RESULT, "extra": 1},
    ]
    for result in broken:
        assert spec.validate_result(result, "1.0.0"), result
    assert spec.convert_result(newer, "1.0.0")["interfaces"][0] == RESULT["interfaces"][0]


def test_gc_accepts_both_attachment_keys() -> None:
    pair = [{"containerID": "a", "ifname": "eth0"}]
    assert spec.valid_attachments({"cni.dev/valid-attachments": pair}) == {("a", "eth0")}
    assert spec.valid_attachments({"cni.dev/attachments": pair}) == {("a", "eth0")}
    assert code_of(spec.valid_attachments, {}) == spec.INVALID_CONFIG


# -- cnilab-ipam -----------------------------------------------------------------------------------


def net(tmp_path: Path, **ipam_extra: Any) -> dict[str, Any]:
    return {"cniVersion": "1.1.0", "name": "n1", "type": "cnilab",
            "ipam": {"type": "cnilab-ipam", "dataDir": str(tmp_path),
                     "ranges": [[{"subnet": "10.5.0.0/24", "rangeStart": "10.5.0.10",
                                  "rangeEnd": "10.5.0.12"}]], **ipam_extra}}


def test_ipam_allocates_round_robin_and_skips_the_gateway(tmp_path: Path) -> None:
    conf = net(tmp_path, ranges=[[{"subnet": "10.5.0.0/24", "rangeStart": "10.5.0.1",
                                   "rangeEnd": "10.5.0.3"}]])
    first = ipam.add(conf, "a", "eth0")
    assert first["ips"] == [{"address": "10.5.0.2/24", "gateway": "10.5.0.1"}]
    assert (tmp_path / "n1" / "10.5.0.2").read_bytes() == b"a\r\neth0"
    ipam.delete(conf, "a", "eth0")
    assert ipam.add(conf, "b", "eth0")["ips"][0]["address"] == "10.5.0.3/24"  # not .2 again
    assert ipam.add(conf, "c", "eth0")["ips"][0]["address"] == "10.5.0.2/24"


def test_ipam_requested_address_duplicate_and_exhaustion(tmp_path: Path) -> None:
    conf = net(tmp_path)
    assert ipam.add(conf, "a", "eth0", {"IP": "10.5.0.12"})["ips"][0]["address"] == \
        "10.5.0.12/24"
    assert code_of(ipam.add, conf, "b", "eth0", {"IP": "10.5.0.12"}) == spec.ADDRESS_UNAVAILABLE
    assert code_of(ipam.add, conf, "b", "eth0", {"IP": "10.5.0.99"}) == spec.ADDRESS_UNAVAILABLE
    assert code_of(ipam.add, conf, "a", "eth0") == spec.ADDRESS_UNAVAILABLE  # duplicate
    ipam.add(conf, "b", "eth0")
    ipam.add(conf, "c", "eth0")
    with pytest.raises(CniError) as info:
        ipam.add(conf, "d", "eth0")
    assert info.value.code == spec.RANGE_EXHAUSTED and "10.5.0.10-10.5.0.12" in info.value.msg
    assert code_of(ipam.status, conf) == spec.NOT_AVAILABLE
    ipam.check(conf, "a", "eth0")
    assert code_of(ipam.check, conf, "d", "eth0") == spec.CHECK_FAILED
    assert sorted(map(str, ipam.gc(conf, {("a", "eth0")}))) == ["10.5.0.10", "10.5.0.11"]
    assert sorted(p.name for p in (tmp_path / "n1").iterdir()) == [  # GC: b's, c's index too
        "10.5.0.12", Store(tmp_path / "n1")._index("a", "eth0"), "last_reserved_ip.0",
        "lock"]


def test_ipam_config_errors(tmp_path: Path) -> None:
    assert code_of(ipam.parse_ipam, {"name": "n"}) == spec.INVALID_CONFIG
    bad = [({"subnet": "fd00::/64"}, spec.UNSUPPORTED_FIELD),
           ({"subnet": "10.0.0.0/24", "rangeStart": "10.0.1.1"}, spec.INVALID_CONFIG),
           ({"subnet": "10.0.0.0/24", "rangeStart": "10.0.0.9", "rangeEnd": "10.0.0.2"},
            spec.INVALID_CONFIG),
           ({"subnet": "nonsense"}, spec.INVALID_CONFIG),
           ({"ranges": []}, spec.INVALID_CONFIG),
           ({"subnet": "10.0.0.0/24", "routes": [{"gw": "10.0.0.1"}]}, spec.INVALID_CONFIG)]
    for section, code in bad:
        assert code_of(ipam.parse_ipam, {"name": "n", "ipam": section}) == code, section
    cfg = ipam.parse_ipam({"name": "n", "ipam": {"subnet": "10.0.0.0/24"}})
    assert cfg.data_dir == ipam.DEFAULT_DATA_DIR
    assert cfg.range_sets[0][0].gateway.exploded == "10.0.0.1"


def test_ipam_executable_twenty_parallel_adds(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    install(bin_dir)
    conf = net(tmp_path / "data", ranges=[[{"subnet": "10.6.0.0/24"}]])

    def add(i: int) -> dict[str, Any]:
        env = {**os.environ, **ENV, "CNI_CONTAINERID": f"c{i}"}
        done = subprocess.run([str(bin_dir / "cnilab-ipam")], input=json.dumps(conf).encode(),
                              env=env, capture_output=True, check=True)
        return json.loads(done.stdout)

    with ThreadPoolExecutor(max_workers=20) as pool:
        results = list(pool.map(add, range(20)))
    assert len({r["ips"][0]["address"] for r in results}) == 20
    assert spec.validate_result({**results[0]}, "1.1.0") == []


def test_plugin_scripts_do_not_import_typer_or_rich(tmp_path: Path) -> None:
    assert script("cnilab").startswith(f"#!{sys.executable} -IS\n")
    install(tmp_path)
    for name in ("cnilab", "cnilab-ipam"):
        text = (tmp_path / name).read_text()
        probe = text.replace("finish(main())",
                             "print(sorted(m for m in sys.modules if m.split('.')[0] in "
                             "('typer', 'rich')))")
        done = subprocess.run([sys.executable, "-S", "-c", probe], capture_output=True,
                              text=True, check=True)
        assert done.stdout.strip() == "[]"
    env = {"CNI_COMMAND": "VERSION", "PATH": os.environ.get("PATH", "")}
    out = subprocess.run([str(tmp_path / "cnilab")], input=b'{"cniVersion": "1.1.0"}',
                         env=env, capture_output=True, check=True).stdout
    assert json.loads(out)["supportedVersions"] == ["1.0.0", "1.1.0"]


@pytest.mark.parametrize(("code", "status"), [(0, 0), (1, 1), (3, 3)])
def test_a_plugin_ends_without_finalization_and_loses_no_output(code: int, status: int) -> None:
    """finish() skips Python's teardown of every module (~10 ms a call): what was written
    without a newline, on both streams, still arrives, and the exit status is the call's."""
    program = ("import sys\nfrom cnilab.cni.entry import finish\n"
               "sys.stdout.write('{\"cniVersion\": \"1.1.0\"}' * 5000)\n"
               f"sys.stderr.write('log')\nfinish({code})\nprint('not reached')\n")
    done = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True,
                          check=False)
    assert (done.returncode, done.stdout, done.stderr) == (
        status, '{"cniVersion": "1.1.0"}' * 5000, "log")


def test_the_version_path_imports_nothing_but_os_and_sys() -> None:
    """libcni asks VERSION of every plugin of a list, per network and per container."""
    program = ("import sys\nbefore = set(sys.modules)\nimport cnilab.cni.entry\n"
               "print(sorted(m for m in set(sys.modules) - before if not m.startswith('cnilab')))")
    done = subprocess.run([sys.executable, "-S", "-c", program], capture_output=True,
                          text=True, check=True, cwd=Path(__file__).resolve().parents[2])
    os_itself = {"os", "os.path", "posixpath", "genericpath", "stat", "_stat", "_collections_abc",
                 "errno"}  # (3.13's posixpath imports errno)
    assert set(ast.literal_eval(done.stdout)) <= {"__future__", *os_itself}  # -S: site has none


def test_a_plugin_started_without_stdout_still_exits_with_its_status() -> None:
    program = "from cnilab.cni.entry import finish\nfinish(0)\n"
    done = subprocess.run(["bash", "-c", f'"{sys.executable}" -c "$0" >&-', program],
                          capture_output=True, text=True, check=False)
    assert done.returncode == 0 and done.stderr == ""


def test_plugin_scripts_ignore_the_runtimes_python_variables(tmp_path: Path) -> None:
    # Isolated mode: a PYTHONPATH in the runtime's environment cannot shadow a module the
    # plugin imports (here the standard library's ipaddress).
    install(tmp_path / "bin")
    planted = tmp_path / "planted"
    planted.mkdir()
    (planted / "ipaddress.py").write_text("raise SystemExit('PYTHONPATH was followed')\n")
    env = {"CNI_COMMAND": "ADD", "PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(planted)}
    done = subprocess.run([str(tmp_path / "bin" / "cnilab-ipam")], input=b"{}", env=env,
                          capture_output=True, check=False)
    assert b"PYTHONPATH" not in done.stderr
    assert json.loads(done.stdout)["code"] == spec.INVALID_ENVIRONMENT


# libcni's GetVersionInfo (pkg/invoke/exec.go): placeholders in everything but CNI_COMMAND.
LIBCNI_PROBE = {"CNI_COMMAND": "VERSION", "CNI_NETNS": "dummy", "CNI_IFNAME": "dummy",
                "CNI_PATH": "dummy", "CNI_CONTAINERID": "dummy", "CNI_ARGS": "dummy"}


@pytest.mark.parametrize("name", ["cnilab", "cnilab-ipam"])
@pytest.mark.parametrize("stdin", [b'{"cniVersion":"1.0.0"}', b"", b"{not json"])
def test_version_answers_libcni_placeholder_probe(tmp_path: Path, name: str, stdin: bytes
                                                  ) -> None:
    install(tmp_path)
    env = {**LIBCNI_PROBE, "PATH": os.environ.get("PATH", "")}
    done = subprocess.run([str(tmp_path / name)], input=stdin, env=env, capture_output=True,
                          check=False)
    assert done.returncode == 0, done.stdout
    answer = json.loads(done.stdout)
    assert answer["supportedVersions"] == list(spec.SUPPORTED_VERSIONS)
    assert answer["cniVersion"] == ("1.0.0" if b"1.0.0" in stdin else spec.LATEST)


def test_version_imports_nothing_but_the_entry(tmp_path: Path) -> None:
    install(tmp_path)
    env = {**os.environ, **LIBCNI_PROBE}  # -I ignores PYTHONPROFILEIMPORTTIME: -X it is
    done = subprocess.run([sys.executable, "-IS", "-X", "importtime", str(tmp_path / "cnilab")],
                          input=b'{"cniVersion":"1.0.0"}', env=env, capture_output=True,
                          check=True)
    imported = {line.split("|")[-1].strip() for line in done.stderr.decode().splitlines()}
    assert "cnilab.cni.entry" in imported
    assert not {"cnilab.cni.spec", "cnilab.errors", "ipaddress", "pyroute2.iproute"} & imported


def test_entry_speaks_the_versions_spec_lists() -> None:
    assert entry.SUPPORTED_VERSIONS == spec.SUPPORTED_VERSIONS


@pytest.mark.parametrize("version", ["1.0.0", "0.4.0"])
def test_errors_carry_the_configs_cni_version(version: str) -> None:
    conf = json.dumps({"cniVersion": version, "name": "n", "type": "cnilab"}).encode()
    env = {"CNI_COMMAND": "ADD", "CNI_CONTAINERID": "c1", "CNI_NETNS": "relative",
           "CNI_IFNAME": "eth0", "CNI_PATH": "/x"}
    text, code = spec.run(lambda req: None, env, conf)
    assert code == 1 and json.loads(text)["cniVersion"] == version
    def refuse(req: spec.Request) -> None:
        raise CniError(spec.KERNEL_REFUSED, "no")

    text, code = spec.run(refuse, {**env, "CNI_NETNS": "/run/netns/x"}, conf)
    error = json.loads(text)
    assert error["cniVersion"] == version  # 0.4.0 is refused (1), in 0.4.0's words
    assert error["code"] == (spec.KERNEL_REFUSED if version == "1.0.0"
                             else spec.INCOMPATIBLE_VERSION)


@pytest.mark.parametrize(("data", "version"), [
    (b'{"cniVersion":"1.0.0"}', "1.0.0"), (b'{ "cniVersion" : "1.1.0", "name": "x"}', "1.1.0"),
    (b"", None), (b'{"cniVersion": 1}', None), (b'{"cniVersion": "1.0', None)])
def test_entry_reads_the_asked_version_without_json(data: bytes, version: str | None) -> None:
    assert entry.asked_version(data) == version


def test_a_plugin_call_loads_pyroute2s_messages_only_and_no_asyncio(tmp_path: Path) -> None:
    """A runtime starts the plugin for every call: what it imports is latency (issue 21)."""
    install(tmp_path)
    text = (tmp_path / "cnilab").read_text().replace(
        "finish(main())", "import cnilab.cni.plugin, cnilab.cni.verify\n"
        "from cnilab.cni.bridge import kernel_or_new\nkernel_or_new(None)._ipr(None)\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & "
        "{'tomllib', 'http', 'asyncio', 'typer', 'rich', 'ssl', 'dataclasses', 'inspect',"
        " 'hashlib', 'pathlib'}))\n"
        "print(sorted({'.'.join(m.split('.')[:2]) for m in sys.modules "
        "if m.startswith('pyroute2.')}))")
    done = subprocess.run([sys.executable, "-S", "-c", text], capture_output=True, text=True,
                          check=True)
    unwanted, pyroute2 = done.stdout.splitlines()
    assert unwanted == "[]"
    # the netlink message classes, not pyroute2's IPRoute, NDB, IPDB or its event loop
    assert set(ast.literal_eval(pyroute2)) <= {"pyroute2.netlink", "pyroute2.common",
                                              "pyroute2.config", "pyroute2.requests"}


@pytest.mark.parametrize("name", ["cni0\x00x", "cni0\r", "a\u200bb", "a:b", "a/b", ".", ""])
def test_a_name_the_kernel_would_cut_or_refuse_is_refused_by_the_plugin_and_the_lab(
        name: str) -> None:
    """One rule for both (a NUL would make "cni0\\0x" act on cni0)."""
    from cnilab.cni.spec import check_ifname
    from cnilab.errors import ConfigError
    from cnilab.lab.topology import check_ifname as lab_check

    assert check_ifname(name, "bridge") is not None
    with pytest.raises(ConfigError):
        lab_check(name, "bridge")
    assert check_ifname("cni0", "bridge") is None
