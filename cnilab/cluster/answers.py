"""How a typed answer is read: the one value it gives, whatever a student typed around it.

A student answers with a value (`10259`), with what a hint command printed (`127.0.0.1:10259`,
`default via 172.17.0.1 dev ens3`, `<BROADCAST,MULTICAST,UP,LOWER_UP>`), or in words (`two`,
`2 nodes`, `10259번`, `30000 to 32767`). Each reader finds every candidate value in the text;
read() gives it only when there is exactly one: an answer listing several candidates (`ens3 cni0
docker0`, two MACs, two addresses) gives none, so it is never right by luck.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection

MAC = re.compile(r"(?<![0-9a-f:-])[0-9a-f]{2}(?:[:-][0-9a-f]{2}){5}(?![0-9a-f:-])")
IPV4 = re.compile(r"(?<![\d.])\d{1,3}(?:\.\d{1,3}){3}(?![\d.])")
# A socket's address and port as netstat and ss print them: 127.0.0.1:10259, :::6443, *:10250.
SOCKET = re.compile(r"(?:\d{1,3}(?:\.\d{1,3}){3}|\[[0-9a-f:.]*\]|[0-9a-f]*::[0-9a-f:]*|\*)"
                    r":(\d+)\b")
RANGE = re.compile(r"(\d+)\s*(?:-|~|–|—|\.\.|to|through|부터|에서)\s*(\d+)")
WORD = re.compile(r"[^\s,()\[\]]+")

# Words a count may be typed as (`two`, `2 nodes`, `두 개`, `노드 2대`).
NUMBER_WORDS = {w: i for i, ws in enumerate((
    (), ("one", "하나", "한"), ("two", "둘", "두"), ("three", "셋", "세"), ("four", "넷", "네"),
    ("five", "다섯"), ("six", "여섯"), ("seven", "일곱"), ("eight", "여덟"), ("nine", "아홉"),
    ("ten", "열"))) for w in ws}
COUNTERS = ("개", "대", "번째", "번", "명")  # Korean counters after a number (2대, 10259번)

# Values printed next to the answer that are never it: broadcast MAC, the netmask and broadcast
# of `ifconfig`/`ip addr`, route -n's 0.0.0.0 columns.
NOT_A_MAC = {"ff:ff:ff:ff:ff:ff", "00:00:00:00:00:00"}
NOT_AN_ADDRESS_AFTER = {"netmask", "mask", "genmask", "broadcast", "brd", "bcast"}
# Words of `ip link`, `ip -br addr` and `ifconfig` lines, and plain words around a name.
NOT_A_NAME = {
    "mtu", "qdisc", "noqueue", "noop", "state", "mode", "default", "group", "qlen", "up", "down",
    "unknown", "lower_up", "dormant", "link/ether", "link/loopback", "brd", "inet", "inet6",
    "netmask", "broadcast", "ether", "scope", "global", "link", "host", "txqueuelen",
    "(ethernet)", "ethernet", "master", "promiscuity", "interface", "bridge", "the", "is", "it",
    "dev", "named", "called", "인터페이스", "브리지", "이름", "입니다", "이다",
}
ADMIN_WORDS = {"up": "up", "lower_up": "up", "down": "down"}


def mac(text: str) -> set[str]:
    """MAC addresses (`link/ether 02:42:... brd ff:ff:...` gives the first)."""
    found = {m.replace("-", ":") for m in MAC.findall(text.lower())}
    return found - NOT_A_MAC


def host(text: str, names: Collection[str] = ()) -> set[str]:
    """Addresses, and `names` (a node's name, `_gateway`): what `route` prints for it.

    `default via 172.17.0.1 dev ens3` gives the address after via; `inet 172.17.0.24 netmask
    255.255.0.0 broadcast 172.17.255.255` gives 172.17.0.24; `route -n`'s 0.0.0.0 is no answer.
    """
    words = WORD.findall(text.lower())
    known = {n.lower() for n in names}
    if "via" in words[:-1]:
        words = [words[words.index("via") + 1]]
    found = set()
    for i, word in enumerate(words):
        if word.rstrip(":") in known:
            found.add(word.rstrip(":"))
            continue
        after = words[i - 1].rstrip(":") if i else ""
        for address in IPV4.findall(word):
            if address != "0.0.0.0" and after not in NOT_AN_ADDRESS_AFTER:
                found.add(address)
    return found


def number(text: str) -> set[str]:
    """Numbers: `10259`, `10259/tcp`, `port 2379`, `127.0.0.1:10259`, `two`, `2대`."""
    value = text.lower()
    ports = SOCKET.findall(value)
    if ports:  # an address:port printed by netstat or ss: its port is the answer
        return {str(int(p)) for p in ports}
    value = IPV4.sub(" ", value)
    found = {str(int(d)) for d in re.findall(r"\d+", value)}
    for word in WORD.findall(value):
        for counter in COUNTERS:
            word = word.removesuffix(counter)
        if word in NUMBER_WORDS:
            found.add(str(NUMBER_WORDS[word]))
    return found


def port_range(text: str) -> set[str]:
    """Ranges: `30000-32767`, `30000 to 32767`, `--service-node-port-range=30000-32767`."""
    return {f"{int(a)}-{int(b)}" for a, b in RANGE.findall(text.lower())}


def admin_state(text: str) -> set[str]:
    """UP or DOWN: the flags between < and > (UP among them), or a word (`state UP`)."""
    value = text.lower()
    flags = re.findall(r"<([^>]*)>", value)
    if flags:  # `ip link` / `ifconfig`'s flags field: UP is the administrative state
        return {"up" if "up" in f.split(",") else "down" for f in flags}
    return {ADMIN_WORDS[w] for w in re.split(r"[\s,]+", value) if w in ADMIN_WORDS}


def name(text: str, known: Collection[str] = ()) -> set[str]:
    """Interface names: `ens3`, `ens3@if3` (`ip -br addr`), `ens3:` (ifconfig), a whole line.

    The node's own interfaces (`known`) are the names when any is there (`it's cni0`); else
    every word that is not a word of `ip`'s and ifconfig's lines.
    """
    words = [w.rstrip(":,.").split("@")[0] for w in re.sub(r"<[^>]*>", " ", text.lower()).split()]
    mine = {w for w in words if w in {k.lower() for k in known}}
    if mine:
        return mine
    found = set()
    for word in words:
        if (not word or word in NOT_A_NAME or word.isdigit() or "=" in word or ":" in word
                or IPV4.search(word) or word.startswith(("fe80", "link/"))):
            continue
        found.add(word)
    return found


READERS: dict[str, Callable[[str], set[str]]] = {
    "mac": mac, "ip": host, "number": number, "range": port_range, "state": admin_state,
    "name": name,
}


def values(text: str, kind: str, names: Collection[str] = ()) -> set[str]:
    """Every value `text` gives for a question of this kind."""
    if kind == "host":
        return host(text, names)
    return name(text, names) if kind == "name" else READERS[kind](text)


def read(text: str, kind: str, names: Collection[str] = ()) -> str | None:
    """The one value `text` gives for a question of this kind; None for none or several."""
    found = values(text, kind, names)
    return next(iter(found)) if len(found) == 1 else None
