"""The runtime's side of CNI without root: conflists, what each chained plugin gets on stdin,
the runtime's ops in the ledger, and the `cnilab cni` command line's shape."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cnilab.cli.cni import cni_app
from cnilab.cli.main import app
from cnilab.cni.attach import AttachNetwork, StateDir
from cnilab.cni.chain import find, load, parse_list, read_cache
from cnilab.cni.runtime import CNI_OPS
from cnilab.errors import ConfigError
from cnilab.ledger import Ledger
from cnilab.ops import Op
from cnilab.runfiles import PRIVATE_MODE, write_atomic
from tests.unit.fake_kernel import FakeKernel

CONFLIST = {"cniVersion": "1.0.0", "name": "chained", "plugins": [
    {"type": "cnilab", "bridge": "cni0", "ipam": {"type": "cnilab-ipam", "subnet": "10.9.0.0/24"}},
    {"type": "tuning", "sysctl": {"net.core.somaxconn": "512"}},
    {"type": "portmap", "capabilities": {"portMappings": True}, "snat": True},
]}


def test_each_plugin_gets_name_version_prev_result_and_only_its_capabilities() -> None:
    net = parse_list(CONFLIST, "test")
    ports = [{"hostPort": 8080, "containerPort": 80, "protocol": "tcp"}]
    first = net.plugin_config(0, None, {"portMappings": ports})
    assert first["name"] == "chained" and first["cniVersion"] == "1.0.0"
    assert "prevResult" not in first and "runtimeConfig" not in first
    prev = {"cniVersion": "1.0.0", "ips": [{"address": "10.9.0.2/24"}]}
    last = net.plugin_config(2, prev, {"portMappings": ports, "mac": "02:00:00:00:00:01"})
    assert last["prevResult"] == prev
    assert last["runtimeConfig"] == {"portMappings": ports}  # mac is not a capability it has


def test_a_single_conf_becomes_a_one_plugin_list() -> None:
    net = parse_list({"cniVersion": "1.1.0", "name": "one", "type": "cnilab", "bridge": "x"},
                     "test")
    assert net.main_type() == "cnilab" and len(net.plugins) == 1
    assert net.plugin_config(0)["bridge"] == "x"


@pytest.mark.parametrize(("content", "words"), [
    (b"{not json", "not JSON"),
    (b"\xff\xfe", "not UTF-8"),
    (b"[]", "not a JSON object"),
    (json.dumps({"cniVersion": "1.0.0", "name": "n", "plugins": []}).encode(), "no plugins"),
    (json.dumps({"cniVersion": "1.0.0", "name": "n", "plugins": [{}]}).encode(),
     "plugins[0] has no type"),
    (json.dumps({"cniVersion": "1.0.0", "name": "a b", "type": "x"}).encode(), "name"),
    (json.dumps({"name": "n", "type": "x"}).encode(), "no cniVersion"),
])
def test_a_bad_conflist_is_one_config_error(tmp_path: Path, content: bytes, words: str) -> None:
    path = tmp_path / "net.conflist"
    path.write_bytes(content)
    with pytest.raises(ConfigError, match=re.escape(words)) as info:
        load(path)
    assert info.value.exit_code == 2


def test_a_directory_or_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="a directory"):
        load(tmp_path)
    with pytest.raises(ConfigError, match="cannot read"):
        load(tmp_path / "nope.conflist")


def test_a_network_is_found_by_name_conflists_first(tmp_path: Path) -> None:
    (tmp_path / "10-broken.conflist").write_text("{")
    (tmp_path / "20-one.conf").write_text(json.dumps(
        {"cniVersion": "1.0.0", "name": "chained", "type": "bridge"}))
    (tmp_path / "30-chained.conflist").write_text(json.dumps(CONFLIST))
    assert len(find(tmp_path, "chained").plugins) == 3
    with pytest.raises(ConfigError, match="no network named 'other'") as info:
        find(tmp_path, "other")
    assert "chained" in str(info.value)


def test_cache_file_is_root_only_whatever_the_umask(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        path = tmp_path / "net-id-eth0"
        write_atomic(path, json.dumps({"kind": "cni.dev/attachment", "result": {}}).encode(),
                     PRIVATE_MODE)
    finally:
        os.umask(old)
    assert path.stat().st_mode & 0o777 == 0o600
    assert read_cache(path) == {"kind": "cni.dev/attachment", "result": {}}
    assert [p.name for p in tmp_path.iterdir()] == ["net-id-eth0"]  # no temp file left
    (tmp_path / "link").symlink_to(path)
    assert read_cache(tmp_path / "link") is None  # a symlink is never followed


def test_runtime_ops_round_trip_through_the_ledger(tmp_path: Path) -> None:
    attach = AttachNetwork("node", "web", "/run/netns/pod-web", "c1", "eth0",
                           json.dumps(CONFLIST), "/a:/b", "K8S_POD_NAME=web", "{}", "/cache")
    state = StateDir(None, str(tmp_path / "state"))
    for op in (attach, state):
        assert Op.from_dict(json.loads(json.dumps(op.to_dict())), CNI_OPS) == op
    assert attach.command("node") == "cnitool add chained /run/netns/pod-web"
    assert attach.attachment().args == (("K8S_POD_NAME", "web"),)
    assert attach.runner().cni_path == ("/a", "/b")


def test_ledger_undo_of_some_ops_keeps_the_others_recorded(tmp_path: Path) -> None:
    ledger = Ledger("unit", str(tmp_path / "run"), ops=CNI_OPS)
    kernel = FakeKernel()  # a state folder needs no kernel call: the recording fake sees none
    a, b = StateDir(None, str(tmp_path / "a")), StateDir(None, str(tmp_path / "b"))
    assert ledger.apply([a, b], kernel) == [a, b]
    assert (tmp_path / "a").is_dir() and (tmp_path / "b").is_dir()
    assert ledger.undo(kernel, [a]) == [a]
    assert not (tmp_path / "a").exists() and (tmp_path / "b").is_dir()
    assert Ledger("unit", str(tmp_path / "run"), ops=CNI_OPS).ops() == [b]
    assert ledger.undo(kernel) == [b]
    assert not ledger.exists() and not (tmp_path / "b").exists()


def test_state_dir_is_0700_whatever_the_umask_and_never_adopts_a_symlink(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        StateDir(None, str(tmp_path / "s")).apply(None)  # type: ignore[arg-type]
    finally:
        os.umask(old)
    assert (tmp_path / "s").stat().st_mode & 0o777 == 0o700
    (tmp_path / "planted").symlink_to(tmp_path / "s")
    with pytest.raises(Exception, match="not made by cnilab"):
        StateDir(None, str(tmp_path / "planted")).apply(None)  # type: ignore[arg-type]


CNI_COMMANDS = ["add", "none", "attach", "detach", "check", "del", "status", "gc", "version",
                "install", "teardown"]


@pytest.mark.parametrize("name", CNI_COMMANDS)
def test_every_cni_command_has_lang_json_and_a_whole_example(name: str) -> None:
    result = CliRunner().invoke(cni_app, [name, "--help"], terminal_width=60)
    assert result.exit_code == 0
    assert "--lang" in result.output and "--json" in result.output
    example = result.output.split("Example:")[1].splitlines()[1]
    assert example.strip().startswith("sudo cnilab cni " + name.split()[0])


def test_plugin_is_a_choice_refused_before_anything_runs() -> None:
    result = CliRunner().invoke(app, ["cni", "add", "web", "--plugin", "flannel"])
    assert result.exit_code == 2
    assert "cnilab" in result.output and "bridge" in result.output


@pytest.mark.parametrize("lang", ["en", "ko"])
def test_the_cni_lesson_teaches_cnm_vs_cni_and_the_none_network_attach(lang: str) -> None:
    from cnilab import lessons

    lesson = lessons.load("cni", lang)
    cnm, none = lesson.step(9), lesson.step(10)
    assert "CNM" in cnm.what and "dockerd" in cnm.what and "libcni" in cnm.what
    assert "--network none" in none.what and "/proc/PID/ns/net" in none.what
    assert "cnilab cni attach --pid PID box" in none.what
    assert "conf_dir" in (lesson.step(1).course_note or "")
    assert "--port 8080:80" in lesson.step(6).what
    if lang == "ko":
        assert re.search(r"[\uac00-\ud7a3]", cnm.what + none.what + cnm.title + none.title)


@pytest.mark.parametrize("lang", ["en", "ko"])
def test_every_sentence_the_cni_commands_print_is_in_its_section(lang: str) -> None:
    from pathlib import Path as P

    from cnilab.i18n import catalog

    used: set[tuple[str, str]] = set()
    package = P(__file__).parents[2] / "cnilab"
    sources = [*(package / "cni").glob("*.py"), package / "cli" / "cni.py",
               package / "render" / "cni.py"]
    for source in sources:
        text = source.read_text(encoding="utf-8")
        used |= {("ui", k) for k in re.findall(r"\bui\(\s*['\"](\w+)['\"]", text)}
        used |= {("ui", k) for k in re.findall(r"['\"]ui\.(\w+)['\"]", text)}
        used |= {("error", k) for k in re.findall(r"\.of\(\s*['\"](\w+)['\"]", text)}
    assert ("ui", "cni_runs") in used and ("error", "cni_bad_port") in used
    sentences = catalog(lang)
    assert [u for u in sorted(used) if u[1] not in sentences[u[0]]] == []
