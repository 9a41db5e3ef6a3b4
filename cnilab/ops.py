"""Operations: typed, frozen, each one kernel change that can apply, undo, print and check itself.

An op never imports pyroute2: it calls the Kernel it is given (cnilab.kernel.Kernel, or anything
with the same methods). `netns` is where the op acts; None is the namespace cnilab runs in.
"""

from __future__ import annotations

import shlex
from dataclasses import asdict, dataclass, fields
from typing import Any, ClassVar, Protocol

from cnilab.state import TAG, Namespace, Snapshot

Key = tuple[str, ...]


class Kernel(Protocol):
    """What ops need from the kernel module."""

    def add_netns(self, name: str) -> None: ...
    def remove_netns(self, name: str) -> None: ...
    def add_link(self, netns: str | None, name: str, kind: str,
                 peer: str | None = None, peer_netns: str | None = None) -> None: ...
    def delete_link(self, netns: str | None, name: str) -> bool: ...
    def move_link(self, netns: str | None, name: str, target: str) -> None: ...
    def set_master(self, netns: str | None, name: str, master: str) -> None: ...
    def add_address(self, netns: str | None, dev: str, cidr: str) -> None: ...
    def set_up(self, netns: str | None, name: str) -> None: ...
    def set_mac(self, netns: str | None, name: str, mac: str) -> None: ...
    def start_server(self, netns: str | None, port: int, body: str) -> None: ...
    def stop_server(self, netns: str | None, port: int) -> None: ...
    def add_route(self, netns: str | None, dst: str, gateway: str, dev: str | None = None,
                  prepend: bool = False) -> None: ...
    def read_sysctl(self, netns: str | None, key: str) -> str: ...
    def write_sysctl(self, netns: str | None, key: str, value: str) -> None: ...
    def iptables(self, netns: str | None, args: list[str], missing_ok: bool = False) -> str: ...


@dataclass(frozen=True)
class Op:
    """Base of all operations."""

    netns: str | None

    registry: ClassVar[dict[str, type[Op]]] = {}
    # A process is not removed with its namespace: its undo must run even then.
    outlives_netns: ClassVar[bool] = False

    def __init_subclass__(cls) -> None:
        Op.registry[cls.__name__] = cls

    def prepare(self, kernel: Kernel) -> Op:
        """The op as the ledger records it before applying (e.g. with a value to restore)."""
        return self

    def apply(self, kernel: Kernel) -> None:
        """Make the change."""
        raise NotImplementedError

    def undo(self, kernel: Kernel) -> None:
        """Reverse the change. Default: it disappears with its link or namespace."""

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

    def undoable(self) -> bool:
        """Whether undo() does anything (else the object goes with its link or namespace)."""
        return type(self).undo is not Op.undo

    def to_dict(self) -> dict[str, Any]:
        """Ledger form."""
        return {"op": type(self).__name__, **asdict(self)}

    @staticmethod
    def from_dict(data: dict[str, Any]) -> Op:
        """Rebuild an op from its ledger form."""
        cls = Op.registry[data["op"]]
        kw = {f.name: data[f.name] for f in fields(cls) if f.name in data}
        if "spec" in kw:
            kw["spec"] = tuple(kw["spec"])
        return cls(**kw)


def describe(key: Key) -> str:
    """A key in words: 'namespace red', 'link v-net-0 in namespace cnilab-host'."""
    if key[0] == "netns":
        return f"namespace {key[1]}"
    where = f" in namespace {key[1]}" if key[1] else ""
    return f"{key[0]} {key[-1]}{where}"


def shell_join(argv: list[str]) -> str:
    """Quote for bash, leaving a lone `!` bare as people type it (no history expansion there)."""
    return " ".join("!" if a == "!" else shlex.quote(a) for a in argv)


def _ns(snap: Snapshot, name: str | None) -> Namespace:
    return snap.ns(name) or Namespace(name)


@dataclass(frozen=True)
class AddNetns(Op):
    """ip netns add NAME"""

    name: str = ""

    def apply(self, kernel: Kernel) -> None:
        kernel.add_netns(self.name)

    def undo(self, kernel: Kernel) -> None:
        kernel.remove_netns(self.name)

    def satisfied(self, snap: Snapshot) -> bool:
        return self.name in snap.netns

    def argv(self) -> list[str]:
        return ["ip", "netns", "add", self.name]

    def undo_argv(self) -> list[str] | None:
        return ["ip", "netns", "del", self.name]

    def _typed(self, argv: list[str], here: str | None) -> str:
        return shell_join(argv)  # /run/netns is shared: the same wherever it is typed

    def claims(self) -> tuple[Key, ...]:
        return (("netns", self.name),)


@dataclass(frozen=True)
class AddBridge(Op):
    """ip link add NAME type bridge"""

    name: str = ""

    def apply(self, kernel: Kernel) -> None:
        kernel.add_link(self.netns, self.name, "bridge")

    def undo(self, kernel: Kernel) -> None:
        kernel.delete_link(self.netns, self.name)

    def satisfied(self, snap: Snapshot) -> bool:
        link = _ns(snap, self.netns).link(self.name)
        return link is not None and link.kind == "bridge"

    def argv(self) -> list[str]:
        return ["ip", "link", "add", self.name, "type", "bridge"]

    def undo_argv(self) -> list[str] | None:
        return ["ip", "link", "del", self.name]

    def claims(self) -> tuple[Key, ...]:
        return (("link", self.netns or "", self.name),)


@dataclass(frozen=True)
class AddVeth(Op):
    """ip link add NAME type veth peer name PEER [netns PEER_NETNS]"""

    name: str = ""
    peer: str = ""
    peer_netns: str | None = None

    def apply(self, kernel: Kernel) -> None:
        kernel.add_link(self.netns, self.name, "veth", peer=self.peer, peer_netns=self.peer_netns)

    def undo(self, kernel: Kernel) -> None:
        # Either end may have moved away; deleting the end still here takes the pair with it.
        if not kernel.delete_link(self.netns, self.name):
            kernel.delete_link(self.peer_netns or self.netns, self.peer)

    def satisfied(self, snap: Snapshot) -> bool:
        found = [snap.find_link(n) for n in (self.name, self.peer)]
        return all(f is not None and f[1].kind == "veth" for f in found)

    def argv(self) -> list[str]:
        argv = ["ip", "link", "add", self.name, "type", "veth", "peer", "name", self.peer]
        return argv + (["netns", self.peer_netns] if self.peer_netns else [])

    def undo_argv(self) -> list[str] | None:
        # The end that stays here: the peer, unless the peer was made in another namespace.
        return ["ip", "link", "del", self.name if self.peer_netns else self.peer]

    def claims(self) -> tuple[Key, ...]:
        return (("link", self.netns or "", self.name),
                ("link", self.peer_netns or self.netns or "", self.peer))


@dataclass(frozen=True)
class MoveToNetns(Op):
    """ip link set NAME netns TARGET"""

    name: str = ""
    target: str = ""

    def apply(self, kernel: Kernel) -> None:
        kernel.move_link(self.netns, self.name, self.target)

    def satisfied(self, snap: Snapshot) -> bool:
        return _ns(snap, self.target).link(self.name) is not None

    def argv(self) -> list[str]:
        return ["ip", "link", "set", self.name, "netns", self.target]

    def highlights(self) -> tuple[Key, ...]:
        return (("link", self.target, self.name),)


@dataclass(frozen=True)
class SetMaster(Op):
    """ip link set NAME master BRIDGE"""

    name: str = ""
    master: str = ""

    def apply(self, kernel: Kernel) -> None:
        kernel.set_master(self.netns, self.name, self.master)

    def satisfied(self, snap: Snapshot) -> bool:
        link = _ns(snap, self.netns).link(self.name)
        return link is not None and link.master == self.master

    def argv(self) -> list[str]:
        return ["ip", "link", "set", self.name, "master", self.master]

    def highlights(self) -> tuple[Key, ...]:
        return (("link", self.netns or "", self.name),)


@dataclass(frozen=True)
class SetMac(Op):
    """ip link set NAME address MAC"""

    name: str = ""
    mac: str = ""

    def apply(self, kernel: Kernel) -> None:
        kernel.set_mac(self.netns, self.name, self.mac)

    def satisfied(self, snap: Snapshot) -> bool:
        link = _ns(snap, self.netns).link(self.name)
        return link is not None and link.mac == self.mac

    def argv(self) -> list[str]:
        return ["ip", "link", "set", self.name, "address", self.mac]


@dataclass(frozen=True)
class AddAddress(Op):
    """ip addr add CIDR dev DEV"""

    dev: str = ""
    cidr: str = ""

    def apply(self, kernel: Kernel) -> None:
        kernel.add_address(self.netns, self.dev, self.cidr)

    def satisfied(self, snap: Snapshot) -> bool:
        link = _ns(snap, self.netns).link(self.dev)
        return link is not None and self.cidr in link.addresses

    def argv(self) -> list[str]:
        return ["ip", "addr", "add", self.cidr, "dev", self.dev]

    def highlights(self) -> tuple[Key, ...]:
        return (("link", self.netns or "", self.dev),)


@dataclass(frozen=True)
class LinkUp(Op):
    """ip link set NAME up"""

    name: str = ""

    def apply(self, kernel: Kernel) -> None:
        kernel.set_up(self.netns, self.name)

    def satisfied(self, snap: Snapshot) -> bool:
        link = _ns(snap, self.netns).link(self.name)
        return link is not None and link.up

    def argv(self) -> list[str]:
        return ["ip", "link", "set", self.name, "up"]

    def highlights(self) -> tuple[Key, ...]:
        return (("link", self.netns or "", self.name),)


@dataclass(frozen=True)
class AddRoute(Op):
    """ip route add DST via GATEWAY"""

    dst: str = "default"
    gateway: str = ""

    def apply(self, kernel: Kernel) -> None:
        kernel.add_route(self.netns, self.dst, self.gateway)

    def satisfied(self, snap: Snapshot) -> bool:
        return any(r.dst == self.dst and r.gateway == self.gateway
                   for r in _ns(snap, self.netns).routes)

    def argv(self) -> list[str]:
        return ["ip", "route", "add", self.dst, "via", self.gateway]

    def highlights(self) -> tuple[Key, ...]:
        return (("route", self.netns or "", self.dst),)


@dataclass(frozen=True)
class SetSysctl(Op):
    """sysctl -w KEY=VALUE (the previous value is kept to restore it)"""

    key: str = ""
    value: str = ""
    previous: str | None = None

    def prepare(self, kernel: Kernel) -> Op:
        return SetSysctl(self.netns, self.key, self.value, kernel.read_sysctl(self.netns, self.key))

    def apply(self, kernel: Kernel) -> None:
        kernel.write_sysctl(self.netns, self.key, self.value)

    def undo(self, kernel: Kernel) -> None:
        if self.previous is not None:
            kernel.write_sysctl(self.netns, self.key, self.previous)

    def satisfied(self, snap: Snapshot) -> bool:
        return _ns(snap, self.netns).sysctls.get(self.key) == self.value

    def argv(self) -> list[str]:
        return ["sysctl", "-w", f"{self.key}={self.value}"]

    def undo_argv(self) -> list[str] | None:
        return ["sysctl", "-w", f"{self.key}={self.previous or '0'}"]

    def highlights(self) -> tuple[Key, ...]:
        return (("sysctl", self.netns or "", self.key),)


_IMPLIED = {("-m", "tcp"), ("-m", "udp")}  # `iptables -S` adds these after -p tcp / -p udp


def rule_tokens(rule: str | tuple[str, ...]) -> tuple[str, ...]:
    """A rule's tokens without comments or implied matches, to compare rules whoever made them."""
    tokens = shlex.split(rule) if isinstance(rule, str) else list(rule)
    out: list[str] = []
    i = 0
    while i < len(tokens):
        if tokens[i:i + 2] == ["-m", "comment"]:
            i += 4  # -m comment --comment TEXT
        elif tuple(tokens[i:i + 2]) in _IMPLIED:
            i += 2
        else:
            out.append(tokens[i])
            i += 1
    return tuple(out)


@dataclass(frozen=True)
class AddRule(Op):
    """iptables -t TABLE -A CHAIN SPEC... (tagged with a comment naming cnilab)"""

    table: str = "nat"
    chain: str = "POSTROUTING"
    spec: tuple[str, ...] = ()
    comment: str = TAG

    def _rule(self) -> list[str]:
        # The comment goes before the target, where `iptables -S` prints it.
        j = self.spec.index("-j") if "-j" in self.spec else len(self.spec)
        return [*self.spec[:j], "-m", "comment", "--comment", self.comment, *self.spec[j:]]

    def apply(self, kernel: Kernel) -> None:
        kernel.iptables(self.netns, ["-t", self.table, "-A", self.chain, *self._rule()])

    def undo(self, kernel: Kernel) -> None:
        kernel.iptables(self.netns, ["-t", self.table, "-D", self.chain, *self._rule()],
                        missing_ok=True)

    def satisfied(self, snap: Snapshot) -> bool:
        rules = _ns(snap, self.netns).nat if self.table == "nat" else None
        want = rule_tokens(("-A", self.chain, *self.spec))
        return rules is not None and any(rule_tokens(r) == want for r in rules)

    def argv(self) -> list[str]:
        return ["iptables", "-t", self.table, "-A", self.chain, *self._rule()]

    def undo_argv(self) -> list[str] | None:
        return ["iptables", "-t", self.table, "-D", self.chain, *self._rule()]

    def highlights(self) -> tuple[Key, ...]:
        return (("rule", self.netns or "", self.table, self.chain),)


@dataclass(frozen=True)
class StartServer(Op):
    """A web server process in a namespace (what `python3 -m http.server PORT &` does there)."""

    outlives_netns: ClassVar[bool] = True

    port: int = 80
    body: str = ""

    def apply(self, kernel: Kernel) -> None:
        kernel.start_server(self.netns, self.port, self.body)

    def undo(self, kernel: Kernel) -> None:
        kernel.stop_server(self.netns, self.port)

    def satisfied(self, snap: Snapshot) -> bool:
        return self.port in _ns(snap, self.netns).listening

    def argv(self) -> list[str]:
        return ["python3", "-m", "http.server", str(self.port)]

    def command(self, here: str | None) -> str:
        return super().command(here) + " &"

    def highlights(self) -> tuple[Key, ...]:
        return (("server", self.netns or "", str(self.port)),)
