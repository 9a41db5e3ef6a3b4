"""User-facing sentences in English and Korean, from lessons/ui/{en,ko}.toml (not from code).

A leaf module: errors, lessons and every command take their sentences from here.
"""

from __future__ import annotations

import os
import re
from functools import cache
from pathlib import Path
from typing import Any

from cnilab.compat import tomllib

LANGS = ("en", "ko")
UI_DIR = "ui"  # lessons/ui holds the command line's own sentences, not a lesson


def lessons_dir() -> Path:
    """lessons/ inside the installed package, or beside it in a source checkout."""
    here = Path(__file__).resolve().parent
    for candidate in (here / "lessons", here.parent / "lessons"):
        if candidate.is_dir():
            return candidate
    raise RuntimeError("cannot find the lessons/ folder next to the cnilab package")


def default_lang() -> str:
    """ko when the locale says Korean (LC_ALL, LC_MESSAGES, LANG), else en."""
    for var in ("LC_ALL", "LC_MESSAGES", "LANG"):
        value = os.environ.get(var)
        if value:
            return "ko" if value.lower().startswith("ko") else "en"
    return "en"


@cache
def catalog(lang: str) -> dict[str, dict[str, str]]:
    """Every sentence of one language, by section and key (English for an unknown language)."""
    path = lessons_dir() / UI_DIR / f"{lang if lang in LANGS else 'en'}.toml"
    return tomllib.loads(path.read_text(encoding="utf-8"))


def has(key: str, lang: str = "en") -> bool:
    """Whether 'section.name' exists in the catalog."""
    section, _, name = key.partition(".")
    return name in catalog(lang).get(section, {})


def t(key: str, lang: str = "en", /, **params: Any) -> str:
    """The sentence 'section.name' in `lang`, with {params} filled in; English if missing."""
    section, _, name = key.partition(".")
    text = catalog(lang).get(section, {}).get(name) or catalog("en")[section][name]
    return particles(text.format(**params))


# Korean particles hang on the sound a word ends with: 이/가, 을/를, 은/는, 과/와, 으로/로.
# The catalog writes both forms (`{name}이(가)`); particles() keeps the one the word takes, so no
# reader ever sees "red이(가)". A name in Latin letters or digits takes the particle of how a
# Korean reader says it: red 레드가, eth0 이스영이, ens3 삼이, node01 일로, br 비알로.
_PAIRS = {"이(가)": ("이", "가"), "을(를)": ("을", "를"), "은(는)": ("은", "는"),
          "과(와)": ("과", "와"), "(으)로": ("으로", "로")}
_MARK = re.compile(r"(이\(가\)|을\(를\)|은\(는\)|과\(와\)|\(으\)로)")
_LETTER_END = {"l": "l", "m": "c", "n": "c", "r": "l"}  # el, em, en, ar: the rest end in a vowel


def _digit(d: str) -> str:
    """How a digit read in Korean ends: 영 삼 육 c, 일 칠 팔 l (ㄹ), the rest v."""
    return {"0": "c", "1": "l", "3": "c", "6": "c", "7": "l", "8": "l"}.get(d, "v")


def _latin(word: str) -> str:
    """How a word in Latin letters ends when read: c (consonant), l (ㄹ) or v (vowel)."""
    if word.isupper() or len(word) <= 2:  # NAT, DEL, br, lo: read letter by letter
        if word in {"NAT", "DNAT", "SNAT"}:
            return "c"
        return _LETTER_END.get(word[-1].lower(), "v")
    w = word.lower()
    if w.endswith("l") or w.endswith("le"):  # pool, tunnel, table: 풀, 터널, 테이블
        return "l"
    if w.endswith(("m", "n", "ng", "me", "ne")):  # stream, plugin, ping, name, plane
        return "c"
    if w[-1] in "kptb" and w[-2] in "aeiou":  # net 넷, up 업, lab 랩; pod 파드 and tag 태그 not
        return "c"
    return "v"  # red 레드, blue 블루, host 호스트, bridge 브리지, veth 베스


def _ending(before: str) -> str:
    """How the text before a particle ends when read aloud: c, l or v."""
    for ch in reversed(before):
        if "가" <= ch <= "힣":
            final = (ord(ch) - 0xAC00) % 28
            return "v" if final == 0 else "l" if final == 8 else "c"
        if ch.isdigit():
            return _digit(ch)
        if ch.isascii() and ch.isalpha():
            word = re.search(r"[A-Za-z]+$", before[: before.rindex(ch) + 1])
            return _latin(word.group(0) if word else ch)
        if ch in "'\"`)]}>%. /-_:":
            continue
        break
    return "v"


def particles(text: str) -> str:
    """Choose each Korean particle written as `이(가)`, `을(를)`, `(으)로` ... from its word."""
    out: list[str] = []
    last = 0
    for m in _MARK.finditer(text):
        out.append(text[last:m.start()])
        end = _ending("".join(out))
        with_consonant, with_vowel = _PAIRS[m.group(1)]
        if m.group(1) == "(으)로":
            out.append(with_consonant if end == "c" else with_vowel)
        else:
            out.append(with_vowel if end == "v" else with_consonant)
        last = m.end()
    out.append(text[last:])
    return "".join(out)
