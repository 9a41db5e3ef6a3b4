"""Errors a user can act on: one line, a hint, an exit code. Only the CLI prints them."""

from __future__ import annotations


class CnilabError(Exception):
    """A failure explained in one sentence, with an optional hint and its exit code."""

    exit_code = 1

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


class ConfigError(CnilabError):
    """The lab's configuration is invalid; nothing was touched."""

    exit_code = 2


class PrerequisiteError(CnilabError):
    """An earlier step is missing; nothing was touched."""

    exit_code = 3


class CollisionError(CnilabError):
    """A name or address exists and is not cnilab's; nothing was touched."""

    exit_code = 4


class PermissionDenied(CnilabError):
    """cnilab lacks root / CAP_NET_ADMIN."""

    exit_code = 5


class LockedError(CnilabError):
    """Another cnilab process holds this lab."""

    exit_code = 6


class MissingTool(CnilabError):
    """A system tool (iptables, a shell) is not installed."""

    exit_code = 7


class KernelError(CnilabError):
    """The kernel refused an operation."""

    exit_code = 8


class ProofFailed(CnilabError):
    """A step ran but the packets that should prove it did not get through."""

    exit_code = 9
