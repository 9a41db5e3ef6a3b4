"""Errors a user can act on: one line, a hint, an exit code. Only the CLI prints them."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # compat loads tomllib (and datetime): every CNI plugin call would pay it
    from cnilab.compat import Self


class CnilabError(Exception):
    """A failure explained in one sentence, with an optional hint and its exit code."""

    exit_code = 1

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.key: str | None = None
        self.params: dict[str, Any] = {}

    @classmethod
    def of(cls, key: str, /, **params: Any) -> Self:
        """An error whose sentence (and hint, if any) is `key` in lessons/ui, in any language."""
        from cnilab.i18n import has, t

        hint = t(f"hint.{key}", **params) if has(f"hint.{key}") else None
        error = cls(t(f"error.{key}", **params), hint)
        error.key, error.params = key, params
        return error

    def render(self, lang: str) -> tuple[str, str | None]:
        """The sentence and hint in `lang` (keyed errors), else as raised."""
        if self.key is None:
            return self.message, self.hint
        from cnilab.i18n import has, t

        hint = t(f"hint.{self.key}", lang, **self.params) if has(f"hint.{self.key}") else None
        return t(f"error.{self.key}", lang, **self.params), hint


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
