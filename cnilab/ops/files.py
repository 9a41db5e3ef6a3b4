"""A file `ip netns exec` shows in one namespace: /etc/netns/NETNS/NAME, seen there as /etc/NAME.

`ip netns exec NETNS CMD` bind-mounts every file of /etc/netns/NETNS/ over the file of the same
name in /etc, for CMD only: a node's own /etc/hosts, say, without touching the machine's. The
file is written as root through runfiles (explicit mode, O_NOFOLLOW, a random temp name renamed
into place); a file already there that is not exactly ours stops the op, and undo removes only a
file whose bytes are still exactly what the op wrote.
"""

from __future__ import annotations

import contextlib
import os
import shlex
from pathlib import Path
from typing import ClassVar

from cnilab.compat import replace, valueclass
from cnilab.errors import CollisionError
from cnilab.ops.base import BadEntry, Evidence, KernelApi, Op
from cnilab.runfiles import FILE_MODE, check_parents, read_file, safe_dir, write_atomic
from cnilab.state import Snapshot

ETC_NETNS = "/etc/netns"  # where iproute2 looks (`man ip-netns`)


def etc_path(netns: str, name: str, root: str = ETC_NETNS) -> Path:
    """The file `ip netns exec NETNS` shows as /etc/NAME."""
    return Path(root) / netns / name


def read_etc(netns: str, name: str, root: str = ETC_NETNS) -> str | None:
    """The text of a namespace's /etc file, if a trusted one is there."""
    try:
        data = read_file(etc_path(netns, name, root))
    except (OSError, CollisionError):
        return None
    return None if data is None else data.decode(errors="replace")


@valueclass(frozen=True)
class OwnedFile(Op):
    """A file written as root, proven ours by its bytes: exactly what the op writes."""

    # A file is not in a namespace: removing the namespaces leaves it, so undo always runs.
    outlives_netns: ClassVar[bool] = True
    mode: ClassVar[int] = FILE_MODE

    lines: tuple[str, ...] = ()
    made: tuple[str, ...] = ()  # the folders that were not there before (prepare() says)

    @property
    def path(self) -> Path:
        """Where the file goes."""
        raise NotImplementedError

    def folders(self) -> tuple[Path, ...]:
        """The folders above the file that apply makes when missing, deepest first."""
        return (self.path.parent,)

    def prepare(self, kernel: KernelApi) -> Op:
        return replace(self, made=tuple(
            str(f) for f in self.folders() if not os.path.lexists(f)))

    @property
    def data(self) -> bytes:
        """The file's bytes."""
        return "".join(line + "\n" for line in self.lines).encode()

    def mine(self) -> bool:
        """Whether the file there is exactly what this op writes (never a planted one)."""
        try:
            return read_file(self.path) == self.data
        except (OSError, CollisionError):
            return False

    def refuse_other(self) -> None:
        """Stop before anything is touched if a file that is not ours is in the way."""
        if os.path.lexists(self.path) and not self.mine():
            raise CollisionError.of("taken", what=str(self.path))

    def apply(self, kernel: KernelApi) -> None:
        self.refuse_other()
        folder = safe_dir(self.path.parent)
        check_parents(folder / self.path.name)
        write_atomic(self.path, self.data, self.mode)

    def undo(self, kernel: KernelApi) -> None:
        if self.mine():
            self.path.unlink()
        elif os.path.lexists(self.path):
            return  # changed by someone since: not ours to remove, nor its folders
        for folder in self.folders():  # only those it made, and only once empty
            if str(folder) in self.made:
                with contextlib.suppress(OSError):  # holds someone else's files meanwhile
                    folder.rmdir()

    def owned(self, kernel: KernelApi, done: bool, proof: Evidence | None) -> bool:
        # Ours: the file as written; or no file at all (killed before the write), when undo
        # only takes away the empty folders it made.
        return self.mine() or not os.path.lexists(self.path)

    def lives_in(self) -> tuple[str | None, ...]:
        return ()

    def satisfied(self, snap: Snapshot) -> bool:
        return self.mine()

    def argv(self) -> list[str]:
        return ["tee", str(self.path)]

    def command(self, here: str | None) -> str:
        lines = " ".join(shlex.quote(line) for line in self.lines)
        return (f"mkdir -p {shlex.quote(str(self.path.parent))} && "
                f"printf '%s\\n' {lines} > {shlex.quote(str(self.path))}")

    def undo_argv(self) -> list[str] | None:
        return ["rm", str(self.path)]


@valueclass(frozen=True)
class NetnsEtcFile(OwnedFile):
    """Write /etc/netns/NETNS/NAME (what `ip netns exec NETNS` shows as /etc/NAME)."""

    name: str = ""
    root: str = ETC_NETNS  # elsewhere only in unit tests: a ledger line may name no other

    @property
    def path(self) -> Path:
        return etc_path(self.netns or "", self.name, self.root)

    def folders(self) -> tuple[Path, ...]:
        return (self.path.parent, self.path.parent.parent)

    def check(self) -> None:
        if (not self.netns or "/" in self.netns or self.netns in (".", "..")
                or self.name not in ("hosts", "hostname") or self.root != ETC_NETNS
                or not set(self.made) <= {str(f) for f in self.folders()}):
            raise BadEntry("bad_name", field="name")
