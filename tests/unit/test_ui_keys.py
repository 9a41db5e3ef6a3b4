"""Every sentence key the code names exists in the UI catalog (a merge once dropped nine)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from cnilab.i18n import catalog

CODE = Path(__file__).resolve().parents[2] / "cnilab"
T_CALL = re.compile(r"""\bt\(\s*f?["']([a-z_]+)\.([a-z_0-9]+)["']""")
ERROR_OF = re.compile(r"""\.of\(\s*["']([a-z_0-9]+)["']""")
UI_CALL = re.compile(r"""\bui\(\s*["']([a-z_0-9]+)["']""")  # cnilab.render.cni.ui: a "ui." key


def named_keys() -> set[tuple[str, str]]:
    """(section, key) of every literal `t("section.key")` and `SomeError.of("key")`."""
    found: set[tuple[str, str]] = set()
    for path in CODE.rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        found |= {(s, k) for s, k in T_CALL.findall(text) if "{" not in k}
        found |= {("error", k) for k in ERROR_OF.findall(text)}
        found |= {("ui", k) for k in UI_CALL.findall(text)}
    return found


@pytest.mark.parametrize("lang", ["en", "ko"])
def test_every_key_the_code_names_is_in_the_catalog(lang: str) -> None:
    sentences = catalog(lang)
    missing = sorted(f"{s}.{k}" for s, k in named_keys() if k not in sentences.get(s, {}))
    assert missing == []
