"""The commands a person would type, and the proofs' outcomes, as Rich renderables."""

from __future__ import annotations

from collections.abc import Sequence

from rich.console import Group, RenderableType
from rich.syntax import Syntax
from rich.text import Text

from cnilab.ops import Op
from cnilab.probes import Proof


def command_lines(ops: Sequence[Op], here: str | None) -> list[str]:
    """Each op as the command typed in namespace `here` (the node)."""
    return [op.command(here) for op in ops]


def render_commands(ops: Sequence[Op], here: str | None) -> RenderableType:
    """The ops as a syntax-highlighted bash listing."""
    code = "\n".join(command_lines(ops, here)) or "# nothing to do: the kernel already holds this"
    # Highlighted Text rather than a Syntax block, so that long lines are never wrapped.
    syntax = Syntax(code, "bash", theme="ansi_dark", background_color="default")
    text = syntax.highlight(code)
    text.rstrip()
    return text


def render_proofs(proofs: Sequence[Proof]) -> RenderableType:
    """One line per proof: passed or failed, the claim, and what was seen."""
    lines = []
    for p in proofs:
        line = Text("✔ proved " if p.ok else "✘ FAILED ",
                    style="bold green" if p.ok else "bold red")
        line.append(p.claim)
        line.append(f"  ({p.seen})", style="dim")
        lines.append(line)
    return Group(*lines)
