"""The quiz against a recorded status, lesson text in both languages, /proc/net/tcp parsing.

recorded/cluster_status.json is RECORDED, not synthetic: `cnilab cluster --prefix P up
--pods-per-node 1` then `cnilab cluster --prefix P status --json`, with the prefix removed
(Linux 6.18).
"""

from __future__ import annotations

import copy
import json
import string
from pathlib import Path
from typing import Any

import pytest

from cnilab.cluster import quiz
from cnilab.cluster.quiz import ANSWERS, grade, parse_answer_options, questions
from cnilab.errors import ConfigError
from cnilab.state import ESTABLISHED, LISTEN, parse_proc_tcp

RECORDED = Path(__file__).parent / "recorded" / "cluster_status.json"
NAMES = {"exec": "cnilab cluster exec", "shell": "cnilab cluster shell", "lan": "cnilab-lan"}


@pytest.fixture
def status() -> dict[str, Any]:
    return json.loads(RECORDED.read_text(encoding="utf-8"))


def _expected(status: dict[str, Any], lang: str = "en") -> dict[str, str]:
    return {q.id: q.expected for q in questions(status, lang, NAMES)}


def test_answers_are_read_from_the_recorded_kernel_state(status: dict[str, Any]) -> None:
    assert _expected(status) == {
        "nodes": "2", "controlplane_ip": "172.17.0.24", "controlplane_interface": "ens3",
        "controlplane_mac": "02:42:ac:11:00:18", "node01_ip": "172.17.0.40",
        "node01_mac": "02:42:ac:11:00:28", "runtime_bridge": "cni0", "bridge_state": "UP",
        "default_gateway": "172.17.0.1", "scheduler_port": "10259", "etcd_port": "2379",
        "node01_pods_route": "172.17.0.40", "nodeport_range": "30000-32767"}


def test_answers_follow_the_state_not_constants(status: dict[str, Any]) -> None:
    changed = copy.deepcopy(status)
    node01 = changed["nodes"][1]
    node01["ip"], node01["mac"] = "172.17.0.99", "02:42:ac:11:00:63"
    cp = changed["nodes"][0]
    cp["routes"] = [r if r["dst"] != "10.244.1.0/24" else {**r, "via": "172.17.0.99"}
                    for r in cp["routes"]]
    cp["bridges"] = [{**b, "up": False} if b["name"] == "cni0" else b for b in cp["bridges"]]
    for p in cp["ports"]:
        if p["process"] == "etcd":
            p["established"] = 7 if p["port"] == 2380 else 0
    cp["routes"] = [r for r in cp["routes"] if r["dst"] != "default"]
    got = _expected(changed)
    assert (got["node01_ip"], got["node01_mac"]) == ("172.17.0.99", "02:42:ac:11:00:63")
    assert (got["node01_pods_route"], got["bridge_state"]) == ("172.17.0.99", "DOWN")
    assert (got["etcd_port"], got["default_gateway"]) == ("2380", quiz.NONE)


def test_one_node_cluster_skips_the_node01_questions(status: dict[str, Any]) -> None:
    status["nodes"] = status["nodes"][:1]
    status["lan"]["ports"] = ["controlplane"]
    got = _expected(status)
    assert "node01_ip" not in got and "node01_pods_route" not in got
    assert got["nodes"] == "1"


@pytest.mark.parametrize(("qid", "answer", "ok"), [
    ("controlplane_mac", "02-42-AC-11-00-18", True),
    ("controlplane_mac", "02:42:ac:11:00:19", False),
    ("node01_ip", " 172.17.0.40/16 ", True),
    ("node01_ip", "172.17.0.4", False),
    ("bridge_state", "up", True),
    ("bridge_state", "down", False),
    ("etcd_port", "2380", False),
    ("nodes", "02", True),
    ("nodes", "3", False),
    ("runtime_bridge", "CNI0", True),
    ("runtime_bridge", "docker0", False),
])
def test_grading_normalises_but_is_not_lenient(status: dict[str, Any], qid: str, answer: str,
                                               ok: bool) -> None:
    q = next(q for q in questions(status, "en", NAMES) if q.id == qid)
    assert grade(q, answer).correct is ok


def test_empty_answer_is_skipped_not_right(status: dict[str, Any]) -> None:
    q = questions(status, "en", NAMES)[0]
    g = grade(q, "  ")
    assert (g.correct, g.answer) == (False, None)


def test_answer_options_refuse_unknown_ids_and_bad_shape(status: dict[str, Any]) -> None:
    asked = questions(status, "en", NAMES)
    assert parse_answer_options(["nodes=2", "etcd_port=2379"], asked) == {
        "nodes": "2", "etcd_port": "2379"}
    with pytest.raises(ConfigError, match="no question 'bogus'"):
        parse_answer_options(["bogus=1"], asked)
    with pytest.raises(ConfigError, match="not ID=VALUE"):
        parse_answer_options(["nodes"], asked)


def test_both_languages_ask_the_same_questions_with_hints(status: dict[str, Any]) -> None:
    en, ko = quiz.lesson_text("en"), quiz.lesson_text("ko")
    assert [q["id"] for q in en["questions"]] == [q["id"] for q in ko["questions"]]
    assert {q["id"] for q in en["questions"]} == set(ANSWERS)
    assert set(en["ui"]) == set(ko["ui"])
    for lang in ("en", "ko"):
        for q in questions(status, lang, NAMES):
            assert q.text and q.nudge and q.hint and q.explanation
            texts = [q.text, q.nudge, q.hint, q.explanation, *q.traps.values()]
            assert "{" not in "".join(texts)  # every placeholder filled
    texts = [t for q in en["questions"] for t in q.values() if isinstance(t, str)]
    texts += [t for q in en["questions"] for t in q.get("traps", {}).values()]
    fields = {f for t in texts for _, f, _, _ in string.Formatter().parse(t) if f}
    assert fields <= {"exec", "shell", "lan", "expected", *quiz.facts(status)}


def test_hints_name_a_command_and_nudges_do_not(status: dict[str, Any]) -> None:
    for q in questions(status, "en", NAMES):
        assert "`" in q.hint, q.id
        assert "`" not in q.nudge, q.id  # the first hint says where to look, not what to type


@pytest.mark.parametrize(("qid", "printed"), [
    ("controlplane_interface", "ens3@if4"),  # `ip -br addr`
    ("controlplane_interface", "ens3@if4  UP  172.17.0.24/16"),
    ("controlplane_interface", "ens3:"),  # `ifconfig`
    ("default_gateway", "default via 172.17.0.1 dev ens3"),  # `ip route show default`
    ("node01_pods_route", "10.244.1.0/24 via 172.17.0.40 dev ens3"),  # `ip route`
    ("node01_pods_route", "via 172.17.0.40"),
    ("node01_pods_route", "node01"),  # the course's `route` prints the gateway's name
    ("scheduler_port", "127.0.0.1:10259"),  # `netstat -nplt`
    ("nodeport_range", "--service-node-port-range=30000-32767"),  # `ps -ef`
    ("nodeport_range", "30000 - 32767"),
    ("controlplane_mac", "link/ether 02:42:ac:11:00:18 brd ff:ff:ff:ff:ff:ff"),  # `ip link`
    ("controlplane_mac", "ether 02:42:ac:11:00:18  txqueuelen 1000  (Ethernet)"),  # ifconfig
])
def test_what_the_hint_commands_print_is_graded_right(status: dict[str, Any], qid: str,
                                                      printed: str) -> None:
    q = next(q for q in questions(status, "en", NAMES) if q.id == qid)
    assert grade(q, printed).correct


@pytest.mark.parametrize(("qid", "printed"), [
    ("default_gateway", "default via 172.17.0.24 dev ens3"),
    ("node01_pods_route", "controlplane"),
    ("node01_pods_route", "10.244.1.0/24"),
    ("scheduler_port", "127.0.0.1:10251"),
    ("controlplane_interface", "cni0"),
    ("nodeport_range", "30000-32768"),
    ("nodeport_range", "6443"),
])
def test_printed_output_with_the_wrong_value_stays_wrong(status: dict[str, Any], qid: str,
                                                         printed: str) -> None:
    q = next(q for q in questions(status, "en", NAMES) if q.id == qid)
    assert not grade(q, printed).correct


@pytest.mark.parametrize("lang", ["en", "ko"])
def test_the_courses_10251_is_answered_with_the_change_not_just_wrong(
        status: dict[str, Any], lang: str) -> None:
    q = next(q for q in questions(status, lang, NAMES) if q.id == "scheduler_port")
    why = quiz.trap(q, "10251")
    assert why is not None and "10259" in why and "1.17" in why
    assert quiz.trap(q, "10259") is None and quiz.trap(q, "6443") is None


TCP = """\
  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:094B 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 4242 1
   1: 0100007F:094B 0100007F:C350 01 00000000:00000000 00:00000000 00000000     0        0 4243 1
"""


def test_proc_net_tcp_is_parsed_like_ss() -> None:
    listen, conn = parse_proc_tcp(TCP)
    assert (listen.local, listen.local_port, listen.state, listen.inode) == (
        "127.0.0.1", 2379, LISTEN, 4242)
    assert (conn.remote, conn.remote_port, conn.state) == ("127.0.0.1", 50000, ESTABLISHED)
    assert listen.listening and conn.established


def _play(status: dict[str, Any], qid: str, replies: list[str],
          monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> tuple[Any, str]:
    """The quiz in a terminal, on one question, with these replies typed in turn."""
    from cnilab.cli import quiz as cli_quiz

    typed = iter(replies)
    monkeypatch.setattr(cli_quiz, "ask", lambda prompt: next(typed))
    monkeypatch.setattr("sys.stdin.isatty", lambda: True)
    asked = [q for q in questions(status, "en", NAMES) if q.id == qid]
    graded = cli_quiz._grade(asked, quiz.lesson_text("en")["ui"], [], False, NAMES)
    assert next(typed, None) is None  # every reply was read
    return graded[0], " ".join(capsys.readouterr().out.split())  # as read, whatever the wrap


def test_a_wrong_answer_earns_the_nudge_then_the_command_then_the_answer(
        status: dict[str, Any], monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    q = next(q for q in questions(status, "en", NAMES) if q.id == "default_gateway")
    graded, shown = _play(status, "default_gateway", ["1.1.1.1", "8.8.8.8", "9.9.9.9"],
                          monkeypatch, capsys)
    assert not graded.correct
    nudge, hint = shown.find(q.nudge), shown.find("Hint: " + q.hint)
    assert 0 < nudge < hint  # one at a time: where to look first, then the command
    assert shown.count("Not yet. Try again.") == 2
    assert "controlplane's default route goes via 172.17.0.1" in shown


def test_a_second_try_after_the_nudge_counts(status: dict[str, Any],
                                             monkeypatch: pytest.MonkeyPatch,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    q = next(q for q in questions(status, "en", NAMES) if q.id == "default_gateway")
    graded, shown = _play(status, "default_gateway", ["1.1.1.1", "default via 172.17.0.1"],
                          monkeypatch, capsys)
    assert graded.correct and q.nudge in shown and q.hint not in shown


def test_the_courses_10251_gets_its_explanation_at_once(status: dict[str, Any],
                                                        monkeypatch: pytest.MonkeyPatch,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    graded, shown = _play(status, "scheduler_port", ["10251", "10259"], monkeypatch, capsys)
    assert graded.correct and "10251 was kube-scheduler's old insecure port" in shown


def test_the_score_counts_first_tries(status: dict[str, Any], monkeypatch: pytest.MonkeyPatch,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    graded, shown = _play(status, "default_gateway", ["1.1.1.1", "172.17.0.1"], monkeypatch,
                          capsys)
    assert graded.correct and graded.tries == 2 and not graded.first_try
    assert "0 of 1 right at the first try (1 in the end)" in shown


@pytest.mark.parametrize("lang", ["en", "ko"])
def test_the_interface_explanation_gives_this_nodes_peer_index(status: dict[str, Any],
                                                               lang: str) -> None:
    q = next(q for q in questions(status, lang, NAMES) if q.id == "controlplane_interface")
    assert "ens3@if3" in q.explanation and "@if4" not in q.explanation  # node01's is @if4
    status["nodes"][0]["peer_index"] = 7
    q = next(q for q in questions(status, lang, NAMES) if q.id == "controlplane_interface")
    assert "ens3@if7" in q.explanation


@pytest.mark.parametrize("lang", ["en", "ko"])
def test_the_mac_explanation_says_docker_made_it_only_while_it_did(status: dict[str, Any],
                                                                   lang: str) -> None:
    q = next(q for q in questions(status, lang, NAMES) if q.id == "controlplane_mac")
    assert "172.17.0.24" in q.explanation and "02:42:ac:11:00:18" in q.explanation
    status["nodes"][0]["mac"] = "02:42:00:00:00:99"
    changed = next(q for q in questions(status, lang, NAMES) if q.id == "controlplane_mac")
    assert changed.explanation != q.explanation and "02:42:00:00:00:99" in changed.explanation


def test_a_wrong_node_count_says_where_the_answer_comes_from(
        status: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    from cnilab.cli import quiz as cli_quiz

    asked = questions(status, "en", NAMES)
    cli_quiz._grade(asked, quiz.lesson_text("en")["ui"], ["nodes=3"], False, NAMES)
    shown = " ".join(capsys.readouterr().out.split())
    assert "the kernel says" not in shown
    assert "lan0 has 2 ports, one per node" in shown and "you answered 3" in shown


def test_the_gateways_name_comes_from_the_nodes_hosts_file(status: dict[str, Any]) -> None:
    q = next(q for q in questions(status, "en", NAMES) if q.id == "default_gateway")
    assert grade(q, "_gateway").correct
    status["nodes"][0]["hosts"] = {}  # no hosts file: `route` would print 172.17.0.1
    q = next(q for q in questions(status, "en", NAMES) if q.id == "default_gateway")
    assert not grade(q, "_gateway").correct and grade(q, "172.17.0.1").correct


@pytest.mark.parametrize("lang", ["en", "ko"])
def test_several_values_at_once_are_told_apart_from_a_wrong_one(
        status: dict[str, Any], lang: str, capsys: pytest.CaptureFixture[str]) -> None:
    from cnilab.cli import quiz as cli_quiz

    asked = questions(status, lang, NAMES)
    ui = quiz.lesson_text(lang)["ui"]
    cli_quiz._grade(asked, ui, ["controlplane_ip=172.17.0.24 172.17.0.40"], False, NAMES)
    shown = " ".join(capsys.readouterr().out.split())
    assert ui["several"].format(count=2, values="172.17.0.24, 172.17.0.40") in shown
