"""What Python 3.9 and 3.10 lack, from their backports (tomllib, typing.Self): a leaf module."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

if sys.version_info >= (3, 11):
    from typing import Self
else:  # declared as conditional dependencies in pyproject.toml
    from typing_extensions import Self

if TYPE_CHECKING:
    import tomllib

__all__ = ["Self", "evaluate_command_signatures", "tomllib"]


def __getattr__(name: str) -> Any:
    # tomllib on first use (~4 ms): `cnilab --help` reads no TOML file.
    if name == "tomllib":
        if sys.version_info >= (3, 11):
            import tomllib
        else:
            import tomli as tomllib
        globals()["tomllib"] = tomllib
        return tomllib
    raise AttributeError(name)


def evaluate_command_signatures(app: Any) -> None:
    """Give every command of a Typer app (and its sub-apps) its evaluated signature.

    Below Python 3.10 Typer reads a command's signature without evaluating postponed
    annotations, so the options inside `Annotated[...]` are lost (`--json` became `--as-json`).
    """
    if sys.version_info >= (3, 10):
        return
    import inspect

    infos = [*app.registered_commands, app.registered_callback, *app.registered_groups]
    for info in infos:
        if info is None:
            continue
        fn = info.callback
        if callable(fn) and not hasattr(fn, "__signature__"):
            # eval, not typing.get_type_hints: on 3.9 that wraps a None default's Annotated in
            # Optional[...], where Typer no longer finds the option.
            sig = inspect.signature(fn)
            fn.__signature__ = sig.replace(parameters=[
                p.replace(annotation=eval(p.annotation, fn.__globals__))
                if isinstance(p.annotation, str) else p for p in sig.parameters.values()])
        sub = getattr(info, "typer_instance", None)
        if hasattr(sub, "registered_commands"):  # a sub-app (else Typer's placeholder)
            evaluate_command_signatures(sub)
