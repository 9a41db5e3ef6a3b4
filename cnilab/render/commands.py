"""The commands a person would type, and the proofs' outcomes, as Rich renderables."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from rich.console import Group, RenderableType
from rich.syntax import Syntax
from rich.text import Text

from cnilab.i18n import t
from cnilab.ops import Op

if TYPE_CHECKING:  # probes reach the kernel; rendering a proof needs only its data
    from cnilab.probes import Proof


def command_lines(ops: Sequence[Op], here: str | None) -> list[str]:
    """Each op as the command typed in namespace `here` (the node)."""
    return [op.command(here) for op in ops]


def render_commands(ops: Sequence[Op], here: str | None, lang: str = "en") -> RenderableType:
    """The ops as a syntax-highlighted bash listing."""
    code = "\n".join(command_lines(ops, here)) or "# " + t("ui.nothing_to_do", lang)
    syntax = Syntax(code, "bash", theme="ansi_dark", background_color="default")
    text = syntax.highlight(code)
    text.rstrip()
    # Never cut a command in two: copied back into a shell, a wrapped line is two commands.
    text.no_wrap, text.overflow = True, "ignore"
    return text


def render_proofs(proofs: Sequence[Proof], lang: str = "en") -> RenderableType:
    """One line per proof: passed or failed, the claim, and what was seen."""
    lines = []
    for p in proofs:
        line = Text(t("ui.proved" if p.ok else "ui.failed", lang) + " ",
                    style="bold green" if p.ok else "bold red")
        line.append(p.claim(lang))
        line.append(f"  ({p.observed(lang)})", style="dim")
        lines.append(line)
    return Group(*lines)
