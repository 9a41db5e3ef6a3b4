"""The base of every operation: the KernelApi protocol, Op, reading an op back from a ledger line.

An op never imports pyroute2: it calls the KernelApi it is given (cnilab.kernel.Kernel, or anything
with the same methods). `netns` is where the op acts; None is the namespace cnilab runs in.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any, ClassVar, Optional, Protocol

from cnilab.compat import MISSING, asdict, fields, valueclass
from cnilab.errors import CnilabError
from cnilab.names import TAG
from cnilab.state import Link, Namespace, Snapshot

Key = tuple[str, ...]
Evidence = dict[str, Optional[int]]  # what the kernel showed of an object as it was made (an inode)
Note = Callable[[Evidence], None]


class KernelApi(Protocol):
    """What ops need from the kernel module."""

    def add_netns(self, name: str, on_made: Note | None = None) -> None: ...
    def netns_id(self, name: str) -> Evidence | None: ...
    def remove_netns(self, name: str) -> None: ...
    def get_link(self, netns: str | None, name: str) -> Link | None: ...
    def add_link(self, netns: str | None, name: str, kind: str, peer: str | None = None,
                 peer_netns: str | None = None, alias: str = TAG) -> None: ...
    def delete_link(self, netns: str | None, name: str) -> bool: ...
    def move_link(self, netns: str | None, name: str, target: str) -> None: ...
    def set_master(self, netns: str | None, name: str, master: str) -> None: ...
    def add_address(self, netns: str | None, dev: str, cidr: str,
                    broadcast: bool = False) -> None: ...
    def set_up(self, netns: str | None, name: str) -> None: ...
    def set_mac(self, netns: str | None, name: str, mac: str) -> None: ...
    def start_server(self, netns: str | None, port: int, body: str) -> None: ...
    def stop_server(self, netns: str | None, port: int) -> None: ...
    def add_route(self, netns: str | None, dst: str, gateway: str, dev: str | None = None,
                  prepend: bool = False) -> None: ...
    def read_sysctl(self, netns: str | None, key: str) -> str: ...
    def write_sysctl(self, netns: str | None, key: str, value: str) -> None: ...
    def iptables(self, netns: str | None, args: list[str], missing_ok: bool = False) -> str: ...
    def iptables_restore(self, netns: str | None, table: str, lines: list[list[str]]
                         ) -> None: ...
    # the scenarios' faults
    def set_down(self, netns: str | None, name: str) -> None: ...
    def set_nomaster(self, netns: str | None, name: str) -> None: ...
    def delete_address(self, netns: str | None, dev: str, cidr: str) -> bool: ...
    def delete_route(self, netns: str | None, dst: str, gateway: str) -> bool: ...
    def replace_route(self, netns: str | None, dst: str, gateway: str) -> None: ...
    # the trace's nftables table
    def nft(self, netns: str | None, script: str, missing_ok: bool = False) -> str: ...
    def nft_tables(self, netns: str | None) -> list[tuple[str, str]]: ...
    def nft_table(self, netns: str | None, family: str, table: str) -> str: ...
    def close(self) -> None: ...


@valueclass(frozen=True)
class Op:
    """Base of all operations."""

    netns: str | None

    # A process is not removed with its namespace: its undo must run even then.
    outlives_netns: ClassVar[bool] = False
    # Undone before everything else: a process inside a namespace keeps that namespace alive.
    undo_first: ClassVar[bool] = False
    # Its ledger line gives something away (a scenario's name is its answer): ledger 0600.
    private: ClassVar[bool] = False
    # The printed command is an equivalent, not what cnilab ran: the ui key that says what did.
    equivalent: ClassVar[str | None] = None

    def prepare(self, kernel: KernelApi) -> Op:
        """The op as the ledger records it before applying (e.g. with a value to restore)."""
        return self

    def prepared_key(self) -> tuple[Any, ...]:
        """What the op and its prepared form share: its type and what it changes."""
        return (type(self).__name__, self.netns, *self.highlights(), self.command(None))

    def apply(self, kernel: KernelApi) -> None:
        """Make the change."""
        raise NotImplementedError

    def apply_noting(self, kernel: KernelApi, note: Note) -> None:
        """Apply; `note` records, before the object is named, what will prove it ours."""
        self.apply(kernel)

    def undo(self, kernel: KernelApi) -> None:
        """Reverse the change. Default: it disappears with its link or namespace."""

    @classmethod
    def undo_together(cls, ops: Sequence[Op], kernel: KernelApi) -> None:
        """Undo several ops of this class (one pass over /proc for many processes, say)."""
        for op in ops:
            op.undo(kernel)

    def owned(self, kernel: KernelApi, done: bool, proof: Evidence | None) -> bool:
        """Whether what this op made is provably ours (undo may remove it).

        Default: its completion was recorded. An intent alone never is: cnilab may have been
        killed before making the object, and someone else may have made one with that name.
        """
        return done

    def lives_in(self) -> tuple[str | None, ...]:
        """The namespaces whose removal takes this op's object with it (all of them must go)."""
        return () if self.outlives_netns else (self.netns,)

    def goes_with(self, removed: Collection[str | None]) -> bool:
        """Whether removing the namespaces `removed` takes this op's object with it."""
        where = self.lives_in()
        return bool(where) and all(ns in removed for ns in where)

    def satisfied(self, snap: Snapshot) -> bool:
        """Whether the observed state already holds what this op would make."""
        raise NotImplementedError

    def argv(self) -> list[str]:
        """The command, as typed inside `self.netns`."""
        raise NotImplementedError

    def undo_argv(self) -> list[str] | None:
        """The command that undoes this op, typed inside `self.netns`; None: nothing to type."""
        return None

    def _typed(self, argv: list[str], here: str | None) -> str:
        if self.netns != here and self.netns is not None:
            argv = (["ip", "-n", self.netns, *argv[1:]] if argv[0] == "ip"
                    else ["ip", "netns", "exec", self.netns, *argv])
        return shell_join(argv)

    def command(self, here: str | None) -> str:
        """The shell command a person types in namespace `here` to do the same."""
        return self._typed(self.argv(), here)

    def undo_command(self, here: str | None) -> str | None:
        """The shell command that undoes this op, typed in namespace `here`."""
        argv = self.undo_argv()
        return None if argv is None else self._typed(argv, here)

    def claims(self) -> tuple[Key, ...]:
        """Names this op creates, which must be free or cnilab's: ('netns', n) / ('link', ns, n)."""
        return ()

    def highlights(self) -> tuple[Key, ...]:
        """What a diagram highlights after this op."""
        return self.claims()

    def rewind(self, kernel: KernelApi) -> None:
        """Take the change back now, even one that teardown lets go with its namespace (an
        address, a route): `practice N` on a lab that is further on. Already gone is fine."""
        self.undo(kernel)

    def undoable(self) -> bool:
        """Whether undo() does anything (else the object goes with its link or namespace)."""
        return type(self).undo is not Op.undo

    def to_dict(self) -> dict[str, Any]:
        """Ledger form."""
        return {"op": type(self).__name__, **asdict(self)}

    def check(self) -> None:
        """Raise BadEntry if a field read from a ledger is not something this op may act on."""

    @staticmethod
    def from_dict(data: Any, registry: Mapping[str, type[Op]]) -> Op:
        """Rebuild an op from its ledger form; BadEntry (one reason) when it is not one.

        Only the classes in `registry` (a lesson's ops) are known; every field is type-checked and
        no string may hold a control character (a NUL would cut a name short in the kernel).
        """
        if not isinstance(data, dict):
            raise BadEntry("not_object")
        name = data.get("op")
        cls = registry.get(name) if isinstance(name, str) else None
        if cls is None:
            raise BadEntry("unknown_op", op=str(name)[:40])
        known = {f.name: f for f in fields(cls)}
        for key in data:
            if key not in known and key not in ENTRY_KEYS:
                raise BadEntry("unknown_field", field=str(key)[:40])
        kw: dict[str, Any] = {}
        for f in known.values():
            if f.name not in data:
                if f.default is MISSING and f.default_factory is MISSING:
                    raise BadEntry("missing_field", field=f.name)
                continue
            kw[f.name] = _field_value(f.name, str(f.type), data[f.name])
        op = cls(**kw)
        op.check()
        return op


def teardown_plan(ops: Sequence[Op], removed: Collection[str | None] | None = None) -> list[Op]:
    """The ops to undo: processes first, then newest first; what lives inside the namespaces
    being removed (default: every namespace the ops make) goes with them."""
    if removed is None:
        removed = {key[1] for op in ops for key in op.claims() if key[0] == "netns"}
    todo = [op for op in reversed(ops) if op.undoable() and not op.goes_with(removed)]
    return [op for op in todo if op.undo_first] + [op for op in todo if not op.undo_first]

# Keys a ledger line may carry beside an op's fields (the ledger's own bookkeeping).
ENTRY_KEYS = frozenset({"op", "seq"})


class BadEntry(ValueError):
    """A ledger line that is not an op: the reason as a UI sentence key (ledger.KEY) and values."""

    def __init__(self, key: str, **params: Any) -> None:
        super().__init__(key)
        self.key, self.params = key, params


def has_control(text: str) -> bool:
    """Whether text holds a control character (NUL, newline, escape, DEL, ...)."""
    return any(ord(ch) < 32 or 127 <= ord(ch) < 160 for ch in text)


_SCALARS: dict[str, Any] = {"str": str, "int": int, "bool": bool, "None": type(None)}


def _field_value(name: str, annotation: str, value: Any) -> Any:
    """A ledger field checked against its annotation (str, int, bool, None, tuple[str, ...]).

    A field of any other type is taken as JSON gave it: its op checks it (Op.check).
    """
    options = [a.strip() for a in annotation.split("|")]
    if not all(o in _SCALARS or o == "tuple[str, ...]" for o in options):
        return value
    for option in options:
        if option == "tuple[str, ...]" and isinstance(value, list) and all(
                isinstance(v, str) for v in value):
            if any(has_control(v) for v in value):
                raise BadEntry("control_char", field=name)
            return tuple(value)
        want = _SCALARS.get(option)
        # bool is an int in Python: a port of `true` is not a port.
        if want is not None and isinstance(value, want) and (
                want is bool or not isinstance(value, bool)):
            if isinstance(value, str) and has_control(value):
                raise BadEntry("control_char", field=name)
            return value
    raise BadEntry("bad_type", field=name, type=type(value).__name__)


def describe(key: Key) -> str:
    """A key in words: 'namespace red', 'link v-net-0 in namespace cnilab-host'."""
    if key[0] == "netns":
        return f"namespace {key[1]}"
    where = f" in namespace {key[1]}" if key[1] else ""
    return f"{key[0]} {key[-1]}{where}"


def same_netns(current: Evidence | None, proof: Evidence) -> bool:
    """Whether a namespace seen now is the one noted: same inode and device, and same cookie
    when both have one (an inode number can be reused once its namespace is gone; a cookie
    cannot)."""
    if current is None or (current.get("ino"), current.get("dev")) != (
            proof.get("ino"), proof.get("dev")):
        return False
    return None in (current.get("cookie"), proof.get("cookie")) or (
        current.get("cookie") == proof.get("cookie"))


def tagged(kernel: KernelApi, netns: str | None, name: str, mark: str) -> bool | None:
    """Whether the link carries this lab's mark as its alias; None when there is no such link
    (or namespace)."""
    try:
        link = kernel.get_link(netns, name)
    except CnilabError:  # its namespace is gone
        return None
    return None if link is None else link.alias == mark


def shell_join(argv: list[str]) -> str:
    """Quote for bash, leaving a lone `!` bare as people type it (no history expansion there)."""
    return " ".join("!" if a == "!" else shlex.quote(a) for a in argv)


def ns_of(snap: Snapshot, name: str | None) -> Namespace:
    """The observed namespace `name`, or an empty one when it was not seen."""
    return snap.ns(name) or Namespace(name)


def registry_of(*classes: type[Op]) -> dict[str, type[Op]]:
    """The ledger names of op classes (their class names), for a ledger to read them back."""
    return {cls.__name__: cls for cls in classes}


@valueclass(frozen=True)
class Step:
    """One step of a lesson: the ops that make it, in order; done when the kernel holds them all."""

    number: int
    ops: tuple[Op, ...]

    def done(self, snap: Snapshot) -> bool:
        """Whether the kernel already holds everything this step makes."""
        return all(op.satisfied(snap) for op in self.ops)

    def missing(self, snap: Snapshot) -> tuple[Op, ...]:
        """The ops whose result the kernel does not hold yet."""
        return tuple(op for op in self.ops if not op.satisfied(snap))
