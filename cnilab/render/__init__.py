"""Rich renderables: diagrams of observed state, command listings, step reports, lesson text."""

from cnilab.render.commands import render_commands, render_proofs
from cnilab.render.diagram import render_diagram

__all__ = ["render_commands", "render_diagram", "render_proofs"]
