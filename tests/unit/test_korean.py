"""Korean that reads as Korean: particles chosen from the word, no English left."""

from __future__ import annotations

import io
import re
import string
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cnilab.compat import tomllib
from cnilab.i18n import catalog, lessons_dir, particles, t

FALLBACK = re.compile(r"이\(가\)|을\(를\)|은\(는\)|과\(와\)|\(으\)로|\(이\)")
# Words of English prose: never in a Korean sentence, outside code (`...`), a quoted message of the
# OS or a tool ('...'), or a gloss written right after its word (CNI(Container Network Interface)).
ENGLISH = {"no", "not", "the", "a", "an", "of", "is", "are", "has", "have", "with", "within",
           "and", "or", "to", "from", "for", "on", "at", "by", "error", "reply", "carrier", "this",
           "that", "it", "its", "be", "was", "were", "when", "which", "what", "there", "nothing",
           "yet", "done", "failed", "ok", "warning", "step", "steps"}
NAMES = ["red", "blue", "veth-blue-br", "v-net-0", "192.168.15.1/24", "node01", "eth0", "ens3"]


def _strings(tree: Any) -> Iterator[str]:
    if isinstance(tree, dict):
        for value in tree.values():
            yield from _strings(value)
    elif isinstance(tree, list):
        for value in tree:
            yield from _strings(value)
    elif isinstance(tree, str):
        yield tree


def _ko_messages() -> Iterator[tuple[str, str]]:
    for section, entries in catalog("ko").items():
        for name in entries:
            for value in NAMES:
                key = f"{section}.{name}"
                yield key, t(key, "ko", **_params(section, name, value))


def _params(section: str, name: str, value: str) -> dict[str, Any]:
    text = catalog("ko")[section][name]
    out: dict[str, Any] = {}
    for _, field, spec, _ in string.Formatter().parse(text):
        if field:
            out[re.split(r"[.\[]", field)[0]] = 1 if spec and spec[-1] in "dgfe%x" else value
    return out


def test_a_particle_follows_how_the_word_is_read() -> None:
    cases = {"red이(가)": "red가", "veth-blue-br이(가)": "veth-blue-br이",
             "eth0(으)로": "eth0으로", "node01(으)로": "node01로", "노드이(가)": "노드가",
             "브리지을(를)": "브리지를", "라우트은(는)": "라우트는",
             "네임스페이스과(와)": "네임스페이스와", "192.168.15.1/24이(가)": "192.168.15.1/24가",
             "10.244.0.0/16(으)로": "10.244.0.0/16으로", "'red'은(는)": "'red'는",
             "ens3이(가)": "ens3이", "터널(으)로": "터널로", "서버(으)로": "서버로",
             "주소(으)로": "주소로", "패킷(으)로": "패킷으로", "tunnel이(가)": "tunnel이",
             "plugin을(를)": "plugin을", "/bin/cnilab을(를)": "/bin/cnilab을",
             "pod이(가)": "pod가", "203.0.113.2:8080(으)로": "203.0.113.2:8080으로"}
    assert {k: particles(k) for k in cases} == cases


def test_a_name_filled_in_gets_its_own_particle() -> None:
    # The ko catalog wrote `{port}로` by hand: right for some numbers, wrong for 8080 (팔공팔공).
    said = t("proof.http_forwarded", "ko", node="203.0.113.2", port=8080, who="blue")
    assert "203.0.113.2:8080으로 보낸" in said


def test_no_message_shows_a_fallback_particle() -> None:
    bad = sorted({key for key, text in _ko_messages() if FALLBACK.search(text)})
    assert bad == []


def test_no_scenario_shows_a_fallback_particle_whatever_the_names() -> None:
    from cnilab.scenario.catalog import SCENARIOS
    from cnilab.scenario.text import raw, text

    for s in SCENARIOS:
        fields = {f for part in _strings(raw("ko")["scenarios"][s.name])
                  for _, f, _, _ in string.Formatter().parse(part) if f}
        for value in NAMES:
            story = text(s.name, "ko", {f: value for f in fields})
            for part in (story.story, story.symptom, *story.hints, story.solution):
                assert not FALLBACK.search(part), (s.name, value, part)


@pytest.mark.parametrize("lesson", ["eight-steps", "cni", "cluster"])
def test_no_lesson_text_has_a_fallback_particle(lesson: str) -> None:
    tree = tomllib.loads((lessons_dir() / lesson / "ko.toml").read_text(encoding="utf-8"))
    assert [s for s in _strings(tree) if FALLBACK.search(s)] == []


def _english_words(text: str) -> set[str]:
    text = re.sub(r"`[^`]*`|'[^']*'|\"[^\"]*\"|(?<=[\w가-힣])\([^)]*\)|\{[^}]*\}|예: .*", "", text)
    words = re.findall(r"(?<![-\w])[A-Za-z][\w\-.]*", text)  # not an option's name (--to)
    return {w for w in words if w.rstrip(".") in ENGLISH}


def test_no_ko_message_has_english_words() -> None:
    bad = {key: _english_words(text) for key, text in _ko_messages() if _english_words(text)}
    assert bad == {}


@pytest.mark.parametrize("lesson", ["eight-steps", "cni", "cluster", "scenarios"])
def test_no_ko_lesson_text_has_english_words(lesson: str) -> None:
    tree = tomllib.loads((lessons_dir() / lesson / "ko.toml").read_text(encoding="utf-8"))
    assert {s: _english_words(s) for s in _strings(tree) if _english_words(s)} == {}


def test_a_bridge_without_carrier_says_so_in_korean() -> None:
    from rich.console import Console

    from cnilab.lab.topology import default_topology
    from cnilab.render.diagram import render_diagram
    from cnilab.state import Link, Namespace, Snapshot

    br = Link("v-net-0", "bridge", 2, up=True, carrier=False, addresses=("192.168.15.5/24",))
    snap = Snapshot(frozenset({"cnilab-host"}), {"cnilab-host": Namespace("cnilab-host", (br,))})
    console = Console(width=100, record=True, color_system=None, file=io.StringIO())
    console.print(render_diagram(snap, default_topology(), lang="ko"))
    text = console.export_text()
    assert "v-net-0 bridge UP (캐리어 없음)" in text and "no carrier" not in text


def test_a_ping_without_reply_says_so_in_korean(monkeypatch: pytest.MonkeyPatch) -> None:
    from cnilab.lab import proofs

    monkeypatch.setattr(proofs, "ping", lambda *a, **k: proofs.no_reply(proofs.TIMEOUT))
    proof = proofs.ping_proof("red", "red", "192.168.15.2", "blue", True)
    assert not proof.ok
    assert proof.observed("ko") == f"{proofs.TIMEOUT:g}초 안에 응답 없음"
    assert proof.observed("en") == f"no reply within {proofs.TIMEOUT:g} s"


def test_an_error_in_korean_keeps_the_prefix_and_translates_the_rest(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from cnilab.cli.main import app

    path = tmp_path / "lab.toml"
    path.write_text('bridge_address = "not-an-address"\n')
    args = ["--lang", "ko", "--config", str(path), "run-all", "--dry-run"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2
    assert "cnilab: 오류: bridge_address 'not-an-address'" in result.output
    assert "error" not in result.output


def test_a_warning_in_korean_keeps_the_prefix_and_translates_the_word(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from rich.console import Console

    from cnilab.cli import console as face

    err = Console(width=80, record=True, color_system=None, file=io.StringIO())
    monkeypatch.setattr(face, "console", lambda stderr=False, record=False: err)
    face.warn("원장 줄 3을 읽을 수 없습니다", "ko")
    assert err.export_text().strip() == "cnilab: 경고: 원장 줄 3을 읽을 수 없습니다"
