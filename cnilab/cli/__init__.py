"""The face: one Typer module per command group, and what they share (console)."""
