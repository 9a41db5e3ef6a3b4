"""Fault ops: the changes that break a healthy lab, owned like every other op (ledger, undo).

Each is the inverse of a lab op (a link down, a route or an address removed, a rule deleted, a
chain's policy set), so `teardown` after a crash finds it in the ledger; inside the lab's own
namespaces it simply goes away with them. ScenarioRecord remembers which scenario runs.
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Any, ClassVar

from cnilab.compat import valueclass
from cnilab.errors import CollisionError, KernelError
from cnilab.names import TAG
from cnilab.ops import AddRule, Evidence, KernelApi, Key, Op, ns_of, registry_of
from cnilab.runfiles import PRIVATE_MODE, read_file, safe_dir, write_atomic
from cnilab.state import Snapshot

# Which scenario is running, and how many hints were shown: one small JSON file in the run dir,
# written as root with runfiles (0600 whatever the umask), read back only if it is a plain file
# of ours (never through a symlink someone planted).
SUFFIX = ".scenario.json"


def record_path(ledger: Path) -> Path:
    """The record of the scenario running on the lab (or cluster) kept in ledger file `ledger`."""
    return ledger.with_name(ledger.stem + SUFFIX)


def write_record(path: Path, data: dict[str, Any]) -> None:
    """Replace the file at `path` with `data` as JSON, atomically, mode 0600."""
    safe_dir(path.parent)
    write_atomic(path, json.dumps(data).encode(), PRIVATE_MODE)  # the name is the answer


def read_record(path: Path) -> dict[str, Any] | None:
    """The record's data; None when there is none, or it is not a plain file of ours."""
    try:
        raw = read_file(path)
        data = json.loads(raw or b"null")
    except (CollisionError, ValueError, UnicodeDecodeError):  # planted, or not our JSON
        return None
    return data if isinstance(data, dict) else None


def remove_record(path: Path) -> None:
    """Remove the record (a symlink in its place is removed, never followed)."""
    with contextlib.suppress(FileNotFoundError):
        path.unlink()


@valueclass(frozen=True)
class LinkDown(Op):
    """ip link set NAME down"""

    name: str = ""

    def apply(self, kernel: KernelApi) -> None:
        kernel.set_down(self.netns, self.name)

    def undo(self, kernel: KernelApi) -> None:
        kernel.set_up(self.netns, self.name)

    def satisfied(self, snap: Snapshot) -> bool:
        link = ns_of(snap, self.netns).link(self.name)
        return link is not None and not link.up

    def argv(self) -> list[str]:
        return ["ip", "link", "set", self.name, "down"]

    def undo_argv(self) -> list[str] | None:
        return ["ip", "link", "set", self.name, "up"]

    def highlights(self) -> tuple[Key, ...]:
        return (("link", self.netns or "", self.name),)


@valueclass(frozen=True)
class NoMaster(Op):
    """ip link set NAME nomaster (MASTER: the bridge it was on, to plug it back)"""

    name: str = ""
    master: str = ""

    def apply(self, kernel: KernelApi) -> None:
        kernel.set_nomaster(self.netns, self.name)

    def undo(self, kernel: KernelApi) -> None:
        kernel.set_master(self.netns, self.name, self.master)

    def satisfied(self, snap: Snapshot) -> bool:
        link = ns_of(snap, self.netns).link(self.name)
        return link is not None and link.master != self.master

    def argv(self) -> list[str]:
        return ["ip", "link", "set", self.name, "nomaster"]

    def undo_argv(self) -> list[str] | None:
        return ["ip", "link", "set", self.name, "master", self.master]

    def highlights(self) -> tuple[Key, ...]:
        return (("link", self.netns or "", self.name),)


@valueclass(frozen=True)
class DelRoute(Op):
    """ip route del DST via GATEWAY"""

    dst: str = "default"
    gateway: str = ""

    def apply(self, kernel: KernelApi) -> None:
        kernel.delete_route(self.netns, self.dst, self.gateway)

    def undo(self, kernel: KernelApi) -> None:
        kernel.replace_route(self.netns, self.dst, self.gateway)  # idempotent

    def satisfied(self, snap: Snapshot) -> bool:
        ns = ns_of(snap, self.netns)
        return not any(r.dst == self.dst and r.gateway == self.gateway for r in ns.routes)

    def argv(self) -> list[str]:
        return ["ip", "route", "del", self.dst, "via", self.gateway]

    def undo_argv(self) -> list[str] | None:
        return ["ip", "route", "add", self.dst, "via", self.gateway]

    def highlights(self) -> tuple[Key, ...]:
        return (("route", self.netns or "", self.dst),)


@valueclass(frozen=True)
class DelAddress(Op):
    """ip addr del CIDR dev DEV"""

    dev: str = ""
    cidr: str = ""

    def apply(self, kernel: KernelApi) -> None:
        kernel.delete_address(self.netns, self.dev, self.cidr)

    def undo(self, kernel: KernelApi) -> None:
        link = kernel.get_link(self.netns, self.dev)
        if link is not None and self.cidr not in link.addresses:
            kernel.add_address(self.netns, self.dev, self.cidr)

    def satisfied(self, snap: Snapshot) -> bool:
        link = ns_of(snap, self.netns).link(self.dev)
        return link is None or self.cidr not in link.addresses

    def argv(self) -> list[str]:
        return ["ip", "addr", "del", self.cidr, "dev", self.dev]

    def undo_argv(self) -> list[str] | None:
        return ["ip", "addr", "add", self.cidr, "dev", self.dev]

    def highlights(self) -> tuple[Key, ...]:
        return (("link", self.netns or "", self.dev),)


@valueclass(frozen=True)
class DelRule(Op):
    """iptables -t TABLE -D CHAIN SPEC... (a rule cnilab added, so with its comment)"""

    table: str = "nat"
    chain: str = "POSTROUTING"
    spec: tuple[str, ...] = ()
    comment: str = TAG

    def _added(self) -> AddRule:
        return AddRule(self.netns, self.table, self.chain, self.spec, self.comment)

    def apply(self, kernel: KernelApi) -> None:
        self._added().undo(kernel)  # iptables -D, the very rule AddRule made

    def undo(self, kernel: KernelApi) -> None:
        check = ["-t", self.table, "-C", self.chain, *self._added().rule()]
        try:
            kernel.iptables(self.netns, check)  # -C exits 1 when the rule is not there
        except KernelError:
            self._added().apply(kernel)

    def satisfied(self, snap: Snapshot) -> bool:
        return not self._added().satisfied(snap)

    def argv(self) -> list[str]:
        return ["iptables", "-t", self.table, "-D", self.chain, *self._added().rule()]

    def undo_argv(self) -> list[str] | None:
        return self._added().argv()

    def highlights(self) -> tuple[Key, ...]:
        return (("rule", self.netns or "", self.table, self.chain),)


@valueclass(frozen=True)
class SetPolicy(Op):
    """iptables -t TABLE -P CHAIN POLICY (the previous policy is kept to restore it)"""

    table: str = "filter"
    chain: str = "FORWARD"
    policy: str = "DROP"
    previous: str | None = None

    def prepare(self, kernel: KernelApi) -> Op:
        rules = kernel.iptables(self.netns, ["-t", self.table, "-S", self.chain])
        return SetPolicy(self.netns, self.table, self.chain, self.policy,
                         policy_of(rules, self.chain))

    def apply(self, kernel: KernelApi) -> None:
        kernel.iptables(self.netns, ["-t", self.table, "-P", self.chain, self.policy])

    def undo(self, kernel: KernelApi) -> None:
        if self.previous is not None:
            kernel.iptables(self.netns, ["-t", self.table, "-P", self.chain, self.previous])

    def satisfied(self, snap: Snapshot) -> bool:
        # A snapshot holds the nat table only; the grader reads the filter chains itself.
        return False

    def argv(self) -> list[str]:
        return ["iptables", "-t", self.table, "-P", self.chain, self.policy]

    def undo_argv(self) -> list[str] | None:
        return ["iptables", "-t", self.table, "-P", self.chain, self.previous or "ACCEPT"]

    def highlights(self) -> tuple[Key, ...]:
        return (("rule", self.netns or "", self.table, self.chain),)


def policy_of(rules: str, chain: str) -> str | None:
    """The policy in `iptables -S CHAIN` output ('-P FORWARD DROP' -> 'DROP')."""
    for line in rules.splitlines():
        parts = line.split()
        if parts[:2] == ["-P", chain] and len(parts) > 2:
            return parts[2]
    return None


@valueclass(frozen=True)
class ScenarioRecord(Op):
    """Remember which scenario runs on this lab (a file in the run dir; undo removes it)."""

    path: str = ""
    name: str = ""

    private: ClassVar[bool] = True  # the scenario's name is the answer

    def apply(self, kernel: KernelApi) -> None:
        write_record(Path(self.path), {"name": self.name, "hints": 0})

    def undo(self, kernel: KernelApi) -> None:
        if self.path.endswith(SUFFIX):  # a ledger entry never makes root remove anything else
            remove_record(Path(self.path))

    def owned(self, kernel: KernelApi, done: bool, proof: Evidence | None) -> bool:
        # Killed after writing the file but before recording it done: the file proves itself
        # (a plain file of ours, 0600, naming this very scenario; read_record follows no link).
        data = read_record(Path(self.path))
        return done or (data is not None and data.get("name") == self.name)

    def satisfied(self, snap: Snapshot) -> bool:
        data = read_record(Path(self.path))
        return data is not None and data.get("name") == self.name

    def argv(self) -> list[str]:
        return ["cnilab", "scenario", "start", self.name]

    def undo_argv(self) -> list[str] | None:
        return ["rm", "-f", self.path]


# The fault ops a lab's or a cluster's ledger reads back (teardown after a crash undoes them).
FAULT_OPS = registry_of(LinkDown, NoMaster, DelRoute, DelAddress, DelRule, SetPolicy,
                        ScenarioRecord)
