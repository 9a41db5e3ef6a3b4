"""The lab's questions, with expected answers read from the kernel at the moment of asking.

Question text, hints and explanations live in lessons/cluster/{en,ko}.toml; this module only knows
how to find each answer in the observed status (cluster/status.py) and how to compare answers.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from cnilab.compat import tomllib
from cnilab.errors import ConfigError
from cnilab.i18n import lessons_dir
from cnilab.lessons import check_lang

LESSON = "cluster"
NONE = "none"  # the expected answer when the kernel holds nothing to answer with

Status = Mapping[str, Any]


@dataclass(frozen=True)
class Question:
    """One question as asked now: its text, hints, explanation and the kernel's answer."""

    id: str
    text: str
    hint: str  # the command that finds the answer (given second)
    explanation: str
    expected: str
    kind: str
    nudge: str = ""  # where to look, without the command (given first)
    traps: Mapping[str, str] = field(default_factory=dict)  # a known wrong answer -> why
    aliases: tuple[str, ...] = ()  # other right answers (a node's name for its address)


@dataclass(frozen=True)
class Graded:
    """A student's answer to one question and whether it matches the kernel."""

    question: Question
    answer: str | None
    correct: bool


def _node(status: Status, name: str) -> Mapping[str, Any] | None:
    return next((n for n in status["nodes"] if n["name"] == name), None)


def _field(node: str, key: str) -> Callable[[Status], Any]:
    return lambda s: (_node(s, node) or {}).get(key)


def _pod_bridge_state(s: Status) -> str | None:
    cp = _node(s, "controlplane") or {}
    bridge = next((b for b in cp.get("bridges", []) if b["name"] == cp.get("pod_bridge")), None)
    return None if bridge is None else ("UP" if bridge["up"] else "DOWN")


def _default_gateway(s: Status) -> str | None:
    routes = (_node(s, "controlplane") or {}).get("routes", [])
    return next((r["via"] for r in routes if r["dst"] == "default"), None)


def _listening_port(process: str) -> Callable[[Status], int | None]:
    def read(s: Status) -> int | None:
        ports = (_node(s, "controlplane") or {}).get("ports", [])
        return next((p["port"] for p in ports if p["process"] == process), None)
    return read


def _busiest_etcd_port(s: Status) -> int | None:
    counts: dict[int, int] = {}
    for p in (_node(s, "controlplane") or {}).get("ports", []):
        if p["process"] == "etcd":
            counts[p["port"]] = counts.get(p["port"], 0) + p["established"]
    if not counts:
        return None
    return max(counts, key=lambda port: counts[port])


def _nodeport_range(s: Status) -> str | None:
    """kube-apiserver's --service-node-port-range, from its command line on controlplane."""
    flags = (_node(s, "controlplane") or {}).get("flags", {}).get("kube-apiserver", [])
    return next((f.split("=", 1)[1] for f in flags
                 if f.startswith("--service-node-port-range=")), None)


def _route_to_node01_pods(s: Status) -> str | None:
    cidr = (_node(s, "node01") or {}).get("pod_cidr")
    routes = (_node(s, "controlplane") or {}).get("routes", [])
    return next((r["via"] for r in routes if cidr and r["dst"] == cidr), None)


# id -> (how to read the answer from the status, how answers compare, needs node01). "host": an
# address, or the name of the node that has it (the course's `route` prints node01 for it).
ANSWERS: dict[str, tuple[Callable[[Status], Any], str, bool]] = {
    "nodes": (lambda s: len(s["lan"]["ports"]), "number", False),
    "controlplane_ip": (_field("controlplane", "ip"), "ip", False),
    "controlplane_interface": (_field("controlplane", "interface"), "name", False),
    "controlplane_mac": (_field("controlplane", "mac"), "mac", False),
    "node01_ip": (_field("node01", "ip"), "ip", True),
    "node01_mac": (_field("node01", "mac"), "mac", True),
    "runtime_bridge": (_field("controlplane", "pod_bridge"), "name", False),
    "bridge_state": (_pod_bridge_state, "name", False),
    "default_gateway": (_default_gateway, "ip", False),
    "scheduler_port": (_listening_port("kube-scheduler"), "number", False),
    "etcd_port": (_busiest_etcd_port, "number", False),
    "node01_pods_route": (_route_to_node01_pods, "host", True),
    "nodeport_range": (_nodeport_range, "range", False),
}


@cache
def lesson_text(lang: str) -> dict[str, Any]:
    """The quiz's text in one language (questions, hints, explanations, labels)."""
    path = lessons_dir() / LESSON / f"{check_lang(lang)}.toml"
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as e:
        raise ConfigError.of("cluster_no_lesson", lesson=LESSON, lang=lang) from e


def questions(status: Status, lang: str, names: Mapping[str, str]) -> list[Question]:
    """The questions for this cluster, each with the answer the kernel gives now.

    names fills the text's placeholders: {exec} (the exec command), {lan}, {bridge}, {cidr}.
    """
    text = lesson_text(lang)
    has_node01 = _node(status, "node01") is not None
    fill = {**names, "bridge": (_node(status, "controlplane") or {}).get("pod_bridge") or "cni0",
            "cidr": (_node(status, "node01") or {}).get("pod_cidr") or "?"}
    asked = []
    for q in text["questions"]:
        read, kind, needs_node01 = ANSWERS[q["id"]]
        if needs_node01 and not has_node01:
            continue
        value = read(status)
        expected = NONE if value is None else str(value)
        aliases = tuple(n["name"] for n in status["nodes"]
                        if kind == "host" and n["ip"] == expected)
        asked.append(Question(q["id"], q["question"].format(**fill), q["hint"].format(**fill),
                              q["explanation"].format(**fill), expected, kind,
                              q["nudge"].format(**fill),
                              {k: v.format(**fill) for k, v in q.get("traps", {}).items()},
                              aliases))
    return asked


MAC = re.compile(r"\b[0-9a-f]{2}(?:[:-][0-9a-f]{2}){5}\b")
IPV4 = re.compile(r"\b\d{1,3}(?:\.\d{1,3}){3}\b")


def normalize(answer: str, kind: str) -> str:
    """The answer inside what a hint command prints, in a comparable form.

    `ip -br addr` prints ens3@if4 (ens3, whose veth peer is interface 4 elsewhere), `ip route`
    `default via 172.17.0.1 dev ens3`, netstat `127.0.0.1:10259`, `ip link` `link/ether MAC`:
    a student who pastes that is right.
    """
    value = answer.strip().lower()
    if kind == "mac":
        found = MAC.search(value)
        return found.group(0).replace("-", ":") if found else value
    if kind in ("ip", "host"):
        words = value.split()
        if "via" in words[:-1]:
            value = words[words.index("via") + 1]
        found = IPV4.search(value)
        return found.group(0) if found else value
    if kind == "range":  # 30000-32767, `--service-node-port-range=30000-32767`, 30000 - 32767
        found = re.search(r"(\d+)\s*[-~]\s*(\d+)", value)
        return f"{found.group(1)}-{found.group(2)}" if found else value
    if kind == "number":
        value = value.rsplit(":", 1)[-1]  # 127.0.0.1:10259, :::6443
        return value.lstrip("0") or "0"
    first = value.split()[0] if value.split() else value
    return first.split("@")[0].rstrip(":")  # ens3@if4, `ifconfig`'s "ens3:"


def grade(question: Question, answer: str | None) -> Graded:
    """Compare one answer with the kernel's."""
    if answer is None or not answer.strip():
        return Graded(question, None, False)
    given = normalize(answer, question.kind)
    ok = given == normalize(question.expected, question.kind) or given in question.aliases
    return Graded(question, answer.strip(), ok)


def trap(question: Question, answer: str) -> str | None:
    """Why a known wrong answer is wrong (10251: the course's old scheduler port), if known."""
    given = normalize(answer, question.kind)
    return next((why for wrong, why in question.traps.items()
                 if normalize(wrong, question.kind) == given), None)


def parse_answer_options(options: list[str], asked: list[Question]) -> dict[str, str]:
    """--answer ID=VALUE options as a dict, refusing unknown ids."""
    known = {q.id for q in asked}
    parsed = {}
    for opt in options:
        qid, sep, value = opt.partition("=")
        if not sep:
            raise ConfigError.of("cluster_bad_answer", opt=opt)
        if qid not in known:
            raise ConfigError.of("cluster_no_question", qid=qid,
                                 questions=", ".join(q.id for q in asked))
        parsed[qid] = value
    return parsed
