"""User-facing sentences in English and Korean, from lessons/ui/{en,ko}.toml (not from code)."""

from __future__ import annotations

from functools import cache
from typing import Any

from cnilab.compat import tomllib
from cnilab.lessons import UI_DIR, check_lang, lessons_dir


@cache
def catalog(lang: str) -> dict[str, dict[str, str]]:
    """Every sentence of one language, by section and key."""
    path = lessons_dir() / UI_DIR / f"{check_lang(lang)}.toml"
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
