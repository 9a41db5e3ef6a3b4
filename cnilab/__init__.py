"""cnilab: how a container gets a network, replayed step by step against the real kernel."""

__version__ = "0.1.0"
