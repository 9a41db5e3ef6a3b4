"""The lab's questions, with expected answers read from the kernel at the moment of asking.

Question text, hints and explanations live in lessons/cluster/{en,ko}.toml; this module only knows
how to find each answer in the observed status (cluster/status.py) and how to compare answers.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import cache
from ipaddress import IPv4Address
from typing import Any

from cnilab.cluster import answers
from cnilab.cluster.plan import docker_mac
from cnilab.compat import field, tomllib, valueclass
from cnilab.errors import ConfigError
from cnilab.i18n import lessons_dir
from cnilab.lessons import check_lang

LESSON = "cluster"
NONE = "none"  # the expected answer when the kernel holds nothing to answer with

Status = Mapping[str, Any]


@valueclass(frozen=True)
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
    source: str = ""  # where the expected answer was read ("lan0 has 2 ports, one per node")
    names: tuple[str, ...] = ()  # every host (or interface) name an answer may give


@valueclass(frozen=True)
class Graded:
    """A student's answer to one question, whether it matches the kernel, and on which try."""

    question: Question
    answer: str | None
    correct: bool
    tries: int = 1  # the score counts answers right at the first try

    @property
    def first_try(self) -> bool:
        """Right at the first try."""
        return self.correct and self.tries == 1


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


# id -> (how to read the answer from the status, how answers compare, needs node01); each kind
# is a reader of cluster/answers.py. "host": an address, or a name the node's hosts file gives
# it (the course's `route` prints node01 and _gateway).
ANSWERS: dict[str, tuple[Callable[[Status], Any], str, bool]] = {
    "nodes": (lambda s: len(s["lan"]["ports"]), "number", False),
    "controlplane_ip": (_field("controlplane", "ip"), "ip", False),
    "controlplane_interface": (_field("controlplane", "interface"), "name", False),
    "controlplane_mac": (_field("controlplane", "mac"), "mac", False),
    "node01_ip": (_field("node01", "ip"), "ip", True),
    "node01_mac": (_field("node01", "mac"), "mac", True),
    "runtime_bridge": (_field("controlplane", "pod_bridge"), "name", False),
    "bridge_state": (_pod_bridge_state, "state", False),
    "default_gateway": (_default_gateway, "host", False),
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


def facts(status: Status) -> dict[str, str]:
    """What the text says about this cluster, read from the status (never written in the text).

    {peer}: the index `ip -br addr` prints after ens3@if, controlplane's veth peer in the LAN.
    """
    cp, n1 = _node(status, "controlplane") or {}, _node(status, "node01") or {}
    return {"bridge": cp.get("pod_bridge") or "cni0", "cidr": n1.get("pod_cidr") or "?",
            "iface": cp.get("interface") or "?", "peer": str(cp.get("peer_index") or "?"),
            "cp_ip": cp.get("ip") or "?", "cp_mac": cp.get("mac") or "?",
            "node01_ip": n1.get("ip") or "?", "switch": status["lan"].get("bridge") or "?",
            "cp_netns": cp.get("netns") or "controlplane"}


def _aliases(status: Status, kind: str, expected: str) -> tuple[str, ...]:
    """Names that stand for the expected address: a node's, or the node's hosts file's."""
    if kind != "host":
        return ()
    hosts = (_node(status, "controlplane") or {}).get("hosts", {})
    names = [n["name"] for n in status["nodes"] if n["ip"] == expected]
    return tuple(dict.fromkeys([*names, *hosts.get(expected, [])]))


def _names(status: Status, kind: str) -> tuple[str, ...]:
    """The names an answer of this kind may give, each one a value: for an address every node's
    name and controlplane's hosts file's; for an interface controlplane's interfaces."""
    cp = _node(status, "controlplane") or {}
    if kind == "host":
        hosts = cp.get("hosts", {})
        return tuple(dict.fromkeys([*(n["name"] for n in status["nodes"]),
                                    *(name for names in hosts.values() for name in names)]))
    if kind == "name":
        bridges = cp.get("bridges", [])
        return tuple(dict.fromkeys(["lo", *([cp["interface"]] if cp.get("interface") else []),
                                    *(b["name"] for b in bridges),
                                    *(p for b in bridges for p in b["ports"])]))
    return ()


def questions(status: Status, lang: str, names: Mapping[str, str]) -> list[Question]:
    """The questions for this cluster, each with the answer the kernel gives now.

    names fills the text's placeholders {exec} (the exec command), {shell} and {lan}; the
    cluster's own facts (facts()) and {expected} fill the rest.
    """
    text = lesson_text(lang)
    has_node01 = _node(status, "node01") is not None
    base = {**names, **facts(status)}
    asked = []
    for q in text["questions"]:
        read, kind, needs_node01 = ANSWERS[q["id"]]
        if needs_node01 and not has_node01:
            continue
        value = read(status)
        expected = NONE if value is None else str(value)
        fill = {**base, "expected": expected}
        asked.append(Question(q["id"], q["question"].format(**fill), q["hint"].format(**fill),
                              q[_explanation(q, status)].format(**fill), expected, kind,
                              q["nudge"].format(**fill),
                              {k: v.format(**fill) for k, v in q.get("traps", {}).items()},
                              _aliases(status, kind, expected), q["source"].format(**fill),
                              _names(status, kind)))
    return asked


def _explanation(q: Mapping[str, Any], status: Status) -> str:
    """Which explanation is true now: the MAC one says how the MAC was made only if it was."""
    if q["id"] == "controlplane_mac":
        cp = _node(status, "controlplane") or {}
        if not cp.get("ip") or docker_mac(IPv4Address(cp["ip"])) != cp.get("mac"):
            return "explanation_changed"
    return "explanation"


def answer_of(question: Question, text: str) -> str | None:
    """The one value a typed answer gives (cluster/answers.py), None for none or several."""
    return answers.read(text, question.kind, (*question.aliases, *question.names))


def grade(question: Question, answer: str | None, tries: int = 1) -> Graded:
    """Compare one answer with the kernel's; an answer listing several values is wrong."""
    if answer is None or not answer.strip():
        return Graded(question, None, False, tries)
    given = answer_of(question, answer)
    right = answers.read(question.expected, question.kind)
    ok = given is not None and (given == right or given in {a.lower() for a in question.aliases})
    return Graded(question, answer.strip(), ok, tries)


def several(question: Question, answer: str) -> list[str]:
    """The values an answer lists when it lists more than one (one answer, one value)."""
    found = answers.values(answer, question.kind, (*question.aliases, *question.names))
    if len(found) < 2:
        return []
    typed = answer.lower()  # in the order typed; a value not written as such (two: 2) last
    return sorted(found, key=lambda v: (typed.find(v) % (len(typed) + 1), v))


def trap(question: Question, answer: str) -> str | None:
    """Why a known wrong answer is wrong (10251: the course's old scheduler port), if known."""
    given = answer_of(question, answer)
    return next((why for wrong, why in question.traps.items()
                 if given is not None and answer_of(question, wrong) == given), None)


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
