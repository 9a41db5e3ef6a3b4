"""User-facing sentences in English and Korean, from lessons/ui/{en,ko}.toml (not from code).

A leaf module: errors, lessons and every command take their sentences from here.
"""

from __future__ import annotations

import os
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
    return text.format(**params)
