"""Python as cnilab needs it, a leaf module: what 3.9 and 3.10 lack, from their backports
(tomllib, typing.Self); value classes without dataclasses' cost (`@valueclass`); SHA-256
without OpenSSL's load; Typer's signatures on 3.9.

`@valueclass` gives what dataclasses gave cnilab, without writing code for each class.
dataclasses compiles a new __init__, __repr__, __eq__, __hash__, __setattr__ and __delattr__
for every class it makes (about 0.5 ms a frozen class on Python 3.11), and importing it brings
inspect, ast and dis (about 6 ms). A CNI runtime starts the plugin for every call, and the ~30
classes an ADD imports made a fourth of its CPU time. Here every class shares the same few
functions, which read the class's field table: a class costs ~0.01 ms, making an instance ~1 µs
more. Type checkers read `@valueclass` as a dataclass (dataclass_transform).

The same rules as dataclasses, as far as cnilab uses them: fields in definition order, a base
class's first; `field(default=...)` / `field(default_factory=...)`; ClassVar annotations are not
fields; a method written in the class body wins; `__post_init__` runs after __init__; frozen
instances refuse assignment and hash by their fields; mutable ones are not hashable.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from operator import attrgetter
from typing import TYPE_CHECKING, Any, TypeVar, overload

if TYPE_CHECKING:  # only type hints use Self: typing_extensions imports inspect (~6 ms) on 3.10-
    import tomllib

    if sys.version_info >= (3, 11):
        from typing import Self
    else:  # declared as conditional dependencies in pyproject.toml
        from typing_extensions import Self
    from typing_extensions import dataclass_transform
else:
    def dataclass_transform(**_: object) -> Callable[[Any], Any]:
        """Only read by type checkers."""
        return lambda f: f

__all__ = ["MISSING", "Field", "Self", "asdict", "evaluate_command_signatures", "field", "fields",
           "is_valueclass", "replace", "sha256", "tomllib", "valueclass"]


def __getattr__(name: str) -> Any:
    # tomllib on first use (~4 ms): `cnilab --help` reads no TOML file; Self likewise.
    if name == "tomllib":
        if sys.version_info >= (3, 11):
            import tomllib
        else:
            import tomli as tomllib
        globals()["tomllib"] = tomllib
        return tomllib
    if name == "Self":  # for a caller that needs it at run time (cnilab's use it in hints only)
        if sys.version_info >= (3, 11):
            from typing import Self
        else:
            from typing_extensions import Self
        return Self
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


def sha256(data: bytes) -> Any:
    """hashlib.sha256(data), from Python's own SHA-256 when it has one: hashlib loads OpenSSL
    (~2.5 ms of CPU) at import, and a CNI call hashes three short names (the same digests)."""
    return _sha256()(data)


@functools.cache
def _sha256() -> Any:
    # Looked up once: a failed import searches every folder of sys.path again each time.
    try:
        from _sha2 import sha256 as made  # Python 3.12 and later
    except ImportError:
        try:
            from _sha256 import sha256 as made  # 3.9 to 3.11
        except ImportError:  # a Python built without them
            from hashlib import sha256 as made
    return made


# Value classes (see the module's docstring).

T = TypeVar("T")


class _Missing:
    def __repr__(self) -> str:
        return "MISSING"


MISSING: Any = _Missing()  # no default given


class Field:
    """One field of a value class: its name, its annotation (a string) and its default."""

    __slots__ = ("default", "default_factory", "name", "type")

    def __init__(self, default: Any = MISSING, default_factory: Any = MISSING) -> None:
        self.name, self.type = "", ""
        self.default, self.default_factory = default, default_factory

    def __repr__(self) -> str:
        return f"Field({self.name!r}, default={self.default!r})"


def field(*, default: Any = MISSING, default_factory: Callable[[], Any] | Any = MISSING) -> Any:
    """A field's default, or a function making a fresh one for each instance."""
    if default is not MISSING and default_factory is not MISSING:
        raise ValueError("a field takes a default or a default_factory, not both")
    return Field(default, default_factory)


def _init(self: Any, *args: Any, **kwargs: Any) -> None:
    fields_ = type(self).__value_fields__
    if len(args) > len(fields_):
        raise TypeError(f"{type(self).__name__}() takes {len(fields_)} arguments, "
                        f"{len(args)} were given")
    values = self.__dict__  # not setattr: a frozen class's __setattr__ refuses
    for f, value in zip(fields_, args):
        values[f.name] = value
    used = 0
    for f in fields_[len(args):]:
        if f.name in kwargs:
            values[f.name] = kwargs[f.name]
            used += 1
        elif f.default is not MISSING:
            values[f.name] = f.default
        elif f.default_factory is not MISSING:
            values[f.name] = f.default_factory()
        else:
            raise TypeError(f"{type(self).__name__}() is missing the argument {f.name!r}")
    if used != len(kwargs):
        known = {f.name for f in fields_[len(args):]}
        raise TypeError(f"{type(self).__name__}() got an unexpected or repeated argument "
                        f"{next(k for k in kwargs if k not in known)!r}")
    if type(self).__value_post_init__:
        self.__post_init__()


def _repr(self: Any) -> str:
    shown = ", ".join(f"{f.name}={getattr(self, f.name)!r}" for f in self.__value_fields__)
    return f"{type(self).__qualname__}({shown})"


def _eq(self: Any, other: Any) -> Any:
    if other.__class__ is not self.__class__:
        return NotImplemented
    return self.__value_values__(self) == other.__value_values__(other)


def _hash(self: Any) -> int:
    return hash(self.__value_values__(self))


def _refuse(self: Any, name: str, *_: Any) -> None:
    raise AttributeError(f"cannot assign to field {name!r} of a frozen {type(self).__name__}")


def _is_classvar(annotation: Any) -> bool:
    text = annotation if isinstance(annotation, str) else repr(annotation)
    return text.startswith(("ClassVar", "typing.ClassVar"))


def _own_annotations(cls: type) -> dict[str, Any]:
    """The annotations the class itself declares (strings: `from __future__ import annotations`)."""
    if sys.version_info >= (3, 10):
        # From 3.10 a class without annotations of its own answers {} here, not its base's; from
        # 3.14 they are made on first access, no longer kept in the class's __dict__.
        return dict(cls.__annotations__)
    return dict(cls.__dict__.get("__annotations__", {}))  # noqa: RUF063 (3.9: inspect-free)


def _make(cls: type[T], frozen: bool) -> type[T]:
    table: dict[str, Field] = {}
    for base in reversed(cls.__mro__[1:]):
        table.update({f.name: f for f in getattr(base, "__value_fields__", ())})
    for name, annotation in _own_annotations(cls).items():
        if _is_classvar(annotation):
            continue
        given = cls.__dict__.get(name, MISSING)
        f = given if isinstance(given, Field) else Field(given)
        if isinstance(f.default, (list, dict, set)):
            raise ValueError(f"{cls.__name__}.{name}: a mutable default is shared by every "
                             "instance; use field(default_factory=...)")
        f.name, f.type = name, annotation
        if given is not MISSING:  # the class attribute is the default, as with dataclasses
            if f.default is MISSING:
                delattr(cls, name)
            else:
                setattr(cls, name, f.default)
        table[name] = f
    names = tuple(table)
    own = cls.__dict__
    if frozen and ("__setattr__" in own or "__delattr__" in own):
        raise TypeError(f"{cls.__name__} is frozen and defines __setattr__ or __delattr__")
    made: dict[str, Any] = {
        "__value_fields__": tuple(table.values()),
        "__value_post_init__": hasattr(cls, "__post_init__"),
        # One C call reading every field as a tuple, for __eq__ and __hash__.
        "__value_values__": staticmethod(attrgetter(*names) if len(names) > 1 else
                                          lambda o: tuple(getattr(o, n) for n in names)),
        "__setattr__": _refuse if frozen else None, "__delattr__": _refuse if frozen else None,
    }
    written = {"__init__": _init, "__repr__": _repr, "__eq__": _eq,  # unless the class has one
               "__hash__": _hash if frozen else None}
    made.update({k: v for k, v in written.items() if k not in own})
    for name, value in made.items():
        if value is not None or name == "__hash__":
            setattr(cls, name, value)
    return cls


@overload
@dataclass_transform(field_specifiers=(field,))
def valueclass(cls: type[T], /) -> type[T]: ...
@overload
def valueclass(*, frozen: bool = False) -> Callable[[type[T]], type[T]]: ...
def valueclass(cls: type[T] | None = None, /, *, frozen: bool = False) -> Any:
    """Make `cls` a value class, as @dataclass or @dataclass(frozen=True) would."""
    if cls is None:
        return lambda c: _make(c, frozen)
    return _make(cls, frozen)


def is_valueclass(obj: Any) -> bool:
    """Whether obj is a value class instance or class."""
    return hasattr(obj, "__value_fields__")


def fields(obj: Any) -> tuple[Field, ...]:
    """A value class's (or its instance's) fields, in order."""
    return tuple(obj.__value_fields__)


def replace(obj: T, /, **changes: Any) -> T:
    """A copy of a value with some fields changed (its __post_init__ runs again)."""
    values = {f.name: getattr(obj, f.name) for f in obj.__value_fields__}  # type: ignore[attr-defined]
    unknown = set(changes) - set(values)
    if unknown:
        raise TypeError(f"{type(obj).__name__} has no field {sorted(unknown)[0]!r}")
    return type(obj)(**{**values, **changes})


def asdict(obj: Any) -> Any:
    """A value as a dict, the values inside it too (lists, tuples and dicts are walked)."""
    if is_valueclass(obj) and not isinstance(obj, type):
        return {f.name: asdict(getattr(obj, f.name)) for f in obj.__value_fields__}
    if isinstance(obj, list):
        return [asdict(v) for v in obj]
    if isinstance(obj, tuple):
        items = [asdict(v) for v in obj]
        return type(obj)(*items) if hasattr(obj, "_fields") else type(obj)(items)
    if isinstance(obj, dict):
        return type(obj)((asdict(k), asdict(v)) for k, v in obj.items())
    return obj
