"""The commands a person would type, and the proofs' outcomes, as Rich renderables."""

from __future__ import annotations

from collections.abc import Sequence

from rich.console import RenderableType
from rich.syntax import Syntax
from rich.table import Table
from rich.text import Text

from cnilab.ops import Op
from cnilab.probes import Proof


def command_lines(ops: Sequence[Op], here: str | None) -> list[str]:
    """Each op as the command typed in namespace `here` (the node)."""
    return [op.command(here) for op in ops]


def render_commands(ops: Sequence[Op], here: str | None) -> RenderableType:
    """The ops as a syntax-highlighted bash listing."""
    code = "\n".join(command_lines(ops, here)) or "# nothing to do: the kernel already holds this"
    return Syntax(code, "bash", theme="ansi_dark", background_color="default", word_wrap=True)


def render_proofs(proofs: Sequence[Proof]) -> RenderableType:
    """One line per proof: passed or failed, the claim, and what was seen."""
    table = Table.grid(padding=(0, 1))
    for p in proofs:
        mark = Text("✔ proved", style="bold green") if p.ok else Text("✘ FAILED", style="bold red")
        table.add_row(mark, Text(p.claim), Text(f"({p.seen})", style="dim"))
    return table
