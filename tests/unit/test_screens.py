"""What the screens show at 80 columns: wrapped between words, never cut."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from rich.console import Console

from cnilab.cni.exec import Call


def printed(*renderables: object, width: int = 80, terminal: bool = True) -> str:
    console = Console(width=width, record=True, color_system=None, file=io.StringIO(),
                      force_terminal=terminal)
    console.print(*renderables)
    return console.export_text()


def test_a_failed_checks_json_is_wrapped_never_cut() -> None:
    from cnilab.render.cni import call_lines

    msg = ("CHECK: the interface eth0 in /run/netns/pod-web has address 10.244.0.9/24, "
           "but the cached result says 10.244.0.2/24: the pod was changed behind the runtime")
    out = json.dumps({"cniVersion": "1.1.0", "code": 999, "msg": msg})
    call = Call("cnilab-cni", "CHECK", {"CNI_COMMAND": "CHECK"}, {"type": "cnilab-cni"}, 1, out)
    text = printed(*call_lines(call, "en"))
    assert all(len(line) <= 80 for line in text.splitlines())
    assert " ".join(text.split()).count("the pod was changed behind the runtime") == 1
    assert "the cached result says 10.244.0.2/24:" in " ".join(text.split())


def test_the_plugins_ipam_calls_show_between_its_stdin_and_its_answer() -> None:
    from cnilab.cni.exec import DELEGATED
    from cnilab.render.cni import calls_lines

    conf = {"type": "cnilab-cni", "ipam": {"type": "cnilab-ipam"}}
    got = {"cniVersion": "1.0.0", "ips": [{"address": "10.244.1.2/24"}]}
    add = DELEGATED + json.dumps({"plugin": "cnilab-ipam", "command": "ADD", "config": conf,
                                  "answer": got})
    call = Call("cnilab-cni", "ADD", {"CNI_COMMAND": "ADD"}, conf, 0, '{"ips": []}', None, 0.1,
                add + "\nsome log line")
    text = " ".join(printed(*calls_lines([call], "en", 1)).split())
    assert (text.index("2 · The plugin asks its IPAM plugin") < text.index('"10.244.1.2/24"')
            < text.index("3 · The plugin does the eight steps") < text.index("answered (exit 0"))
    assert call.log() == "some log line"
    gone = DELEGATED + json.dumps({"plugin": "cnilab-ipam", "command": "DEL", "config": conf,
                                   "answer": None})
    deleted = Call("cnilab-cni", "DEL", {}, conf, 0, "", None, 0.1, gone)
    text = " ".join(printed(*calls_lines([deleted], "ko", 7)).split())
    assert "cnilab-ipam의 응답은 비어 있습니다." in text and "2 ·" not in text


def test_output_taller_than_the_terminal_goes_through_the_pager(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from cnilab.cli.pager import page

    seen = tmp_path / "paged.txt"
    pager = f"sh -c 'cat > {seen}'"
    tall = "".join(f"line {n}\n" for n in range(30))
    page(tall, pager, height=24)
    assert seen.read_text() == tall and capsys.readouterr().out == ""
    page("short\n", pager, height=24)  # fits: no pager
    assert capsys.readouterr().out == "short\n" and seen.read_text() == tall
    page(tall, "/nonexistent/pager", height=24)  # no such pager: printed as is
    assert capsys.readouterr().out == tall


def test_no_pager_is_a_global_option() -> None:
    from typer.testing import CliRunner

    from cnilab.cli.main import app

    result = CliRunner().invoke(app, ["--no-pager", "explain", "8"])
    assert result.exit_code == 0 and "MASQUERADE" in result.output


def test_a_missing_fact_and_its_command_stay_apart_and_whole_at_80_columns() -> None:
    from rich.cells import cell_len

    from cnilab.lab.grade import grade
    from cnilab.lab.steps import build_steps
    from cnilab.lab.topology import default_topology
    from cnilab.render.report import render_facts
    from cnilab.state import Snapshot

    topo = default_topology(prefix="tr-")
    facts = grade([build_steps(topo)[5], build_steps(topo)[7]], Snapshot(frozenset(), {}))
    for lang in ("en", "ko"):
        lines = printed(*render_facts(facts, topo, lang)).splitlines()
        assert all(cell_len(line) <= 80 for line in lines)
        assert "    " + ("hint" if lang == "en" else "힌트") + \
            ": ip -n tr-red addr add 192.168.15.1/24 dev veth-red" in lines
        rule = "`POSTROUTING -s 192.168.15.0/24 ! -o v-net-0 -j MASQUERADE`"
        assert any(line.strip() == rule for line in lines)  # a rule is never split


def test_korean_in_a_listing_is_measured_by_its_cells_and_never_split_in_a_word() -> None:
    from rich.cells import cell_len

    from cnilab.i18n import t
    from cnilab.render.commands import Listing

    note = "# " + t("ui.equivalent_cnitool", "ko")
    lines = printed(Listing([note])).splitlines()
    assert len(lines) > 1 and all(cell_len(line) <= 80 for line in lines)
    assert all(line.startswith("#") for line in lines)
    words = note[2:].split()
    assert [w for line in lines for w in line[1:].split()] == words  # whole words, in order


def test_a_command_with_korean_words_folds_by_cells() -> None:
    from rich.cells import cell_len

    from cnilab.render.commands import fold

    command = "echo " + " ".join(["컨테이너가"] * 12)  # 5 characters, 10 cells each
    lines = fold(command, 80)
    assert len(lines) > 1 and all(cell_len(line) <= 80 for line in lines)


def test_an_error_in_a_terminal_wraps_between_words_never_inside_one(
        monkeypatch: pytest.MonkeyPatch) -> None:
    import typer
    from rich.cells import cell_len

    from cnilab.cli import console as face
    from cnilab.errors import CnilabError

    terminal = Console(width=80, record=True, color_system=None, file=io.StringIO(),
                       force_terminal=True)
    monkeypatch.setattr(face, "console", lambda stderr=False, record=False: terminal)
    error = CnilabError.of("scenario_symptom", total=8, failed=6)
    with pytest.raises(typer.Exit):
        face._fail(error, "ko")
    lines = terminal.export_text().splitlines()
    message, hint = error.render("ko")
    said = f"cnilab: 오류: {message} (힌트: {hint})"
    assert len(lines) > 1 and all(cell_len(line) <= 80 for line in lines)
    assert [w for line in lines for w in line.split()] == said.split()  # no word cut in two


def test_a_long_environment_value_folds_never_cut() -> None:
    from cnilab.render.cni import call_lines

    args = ("IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web;"
            "K8S_POD_INFRA_CONTAINER_ID=" + "ba76502d5d5b4a68dda2c4b4726685f80857dd0f6ce" * 3)
    call = Call("cnilab-cni", "ADD", {"CNI_ARGS": args}, {"type": "cnilab-cni"}, 0, "")
    text = printed(*call_lines(call, "en"))
    assert "…" not in text and args in "".join(line.strip().removeprefix("CNI_ARGS").strip()
                                               for line in text.splitlines())
