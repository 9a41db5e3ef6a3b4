"""The only package that talks to the kernel: netlink (pyroute2), iptables, /proc, processes.

It imports nothing of cnilab above it (only errors, packages for install hints and the plain
data of state). Modules:
netns (namespaces, setns threads, sysctls), netlink (links, addresses, routes), iptables,
processes (the web server) and sockets (`ss`-like socket listing).
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from cnilab.compat import replace
from cnilab.kernel import iptables as _iptables
from cnilab.kernel import netns as _netns
from cnilab.kernel.messages import RawLinks, resolve_peers
from cnilab.kernel.netlink import Netlink
from cnilab.kernel.netns import (
    OBSERVED_SYSCTLS,
    TCP,
    NetnsId,
    has_privileges,
    list_netns,
    netns_path,
    open_rtnl_socket,
    require_privileges,
    run_in_netns,
    sysctl_path,
)
from cnilab.state import Namespace, Snapshot, listening_ports

if TYPE_CHECKING:  # the packet tracer's modules load when a trace runs, not with every command
    from pathlib import Path

    from cnilab.kernel.conntrack import Connection
    from cnilab.kernel.nftrace import TraceListener

__all__ = ["Kernel", "has_privileges", "list_netns", "netns_path", "require_privileges",
           "run_in_netns"]


class Kernel(Netlink):
    """Applies and observes network state (what ops call); see cnilab.ops.Kernel."""

    def __init__(self, run_dir: Path | None = None) -> None:
        super().__init__()
        self.run_dir = run_dir  # where PID files of processes we start are kept
        self._iptables: str | None = _iptables.find()
        # NAT rules by namespace, with the nf_tables generation they were read at: read again
        # only when the ruleset changed (iptables-nft; every time with the legacy backend).
        self._nat: dict[str | None, tuple[int, tuple[str, ...]]] = {}
        self._generations: dict[str | None, socket.socket] = {}
        self._nft = _iptables.is_nft(self._iptables)
        # A namespace's /proc files (sysctls, its TCP sockets), opened once by a thread inside
        # it, then read and written without entering it again.
        self._files: dict[str | None, dict[str, int]] = {}
        # What observe() read in each namespace, until a change made here touches it.
        self._seen: dict[str | None, tuple[tuple[bool, bool], RawLinks, Namespace]] = {}

    def __enter__(self) -> Kernel:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- namespaces and sysctls --------------------------------------------------------------

    def add_netns(self, name: str, on_made: Callable[[NetnsId], None] | None = None) -> None:
        """Create a named namespace (ip netns add); on_made gets its id before it is named.

        Its netlink socket is made by the thread that creates it: no second thread later.
        """
        sock = _netns.add_netns(name, on_made, inside=open_rtnl_socket)
        if sock is not None:
            self.adopt_socket(name, sock)
        self.changed(name)

    def netns_id(self, name: str) -> NetnsId | None:
        """Inode, device and cookie of a named namespace (None: no such name)."""
        return _netns.netns_id(name)

    def remove_netns(self, name: str) -> None:
        """Remove a named namespace (ip netns delete); already gone is fine."""
        self.close_netns(name)  # an open socket would keep the namespace alive
        _netns.remove_netns(name)
        self.changed(anywhere=True)  # the veths inside took their peers along

    def changed(self, *namespaces: str | None, anywhere: bool = False) -> None:
        """Forget what observe() saw in these namespaces (or in all)."""
        if anywhere:
            self._seen.clear()
        for name in namespaces:
            self._seen.pop(name, None)

    def close_netns(self, netns: str | None) -> None:
        """Close the sockets and files into one namespace (they would keep it alive)."""
        super().close_netns(netns)
        self._nat.pop(netns, None)
        sock = self._generations.pop(netns, None)
        if sock is not None:
            sock.close()
        for fd in self._files.pop(netns, {}).values():
            os.close(fd)

    def close(self) -> None:
        """Close every socket and file into any namespace."""
        super().close()
        for name in {*self._generations, *self._files}:
            self.close_netns(name)

    def read_sysctl(self, netns: str | None, key: str) -> str:
        """Read a sysctl as seen inside `netns`."""
        return self._read(netns, sysctl_path(key))

    def write_sysctl(self, netns: str | None, key: str, value: str) -> None:
        """Write a sysctl inside `netns`."""
        path = sysctl_path(key)
        self._open(netns, [path])
        os.pwrite(self._files[netns][path], value.encode("ascii"), 0)
        self.changed(netns)

    def _open(self, netns: str | None, paths: list[str], nat: bool = False) -> None:
        """Open what is missing of `paths`, the netlink socket and (nat) the nf_tables one,
        all by one thread inside `netns`."""
        files = self._files.setdefault(netns, {})
        missing = [p for p in paths if p not in files]
        need_socket = not self.has_socket(netns)
        need_gen = nat and self._nft and netns not in self._generations
        if not (missing or need_socket or need_gen):
            return

        def enter() -> tuple[Any, Any, dict[str, int]]:
            # /proc/thread-self/net and /proc/sys/net show the namespace of the thread that
            # opens them, and keep showing it: these descriptors stay bound to `netns`.
            return (open_rtnl_socket() if need_socket else None,
                    _iptables.generation_socket() if need_gen else None,
                    {p: _open_proc(p) for p in missing})

        sock, gen, opened = run_in_netns(netns, enter)
        files.update(opened)
        if sock is not None:
            self.adopt_socket(netns, sock)
        if gen is not None:
            self._generations[netns] = gen

    def _read(self, netns: str | None, path: str) -> str:
        """A /proc file of `netns`, read again from its start."""
        self._open(netns, [path])
        fd, chunks = self._files[netns][path], []
        os.lseek(fd, 0, os.SEEK_SET)
        while chunk := os.read(fd, 1 << 16):
            chunks.append(chunk)
        return b"".join(chunks).decode("ascii").strip()

    def has_sysctl(self, netns: str | None, key: str) -> bool:
        """Whether the sysctl exists inside `netns` (a module such as br_netfilter adds some)."""
        return run_in_netns(netns, lambda: os.path.exists(_netns.sysctl_path(key)))

    # -- processes -----------------------------------------------------------------------------

    def _need_run_dir(self) -> Path:
        if self.run_dir is None:
            raise RuntimeError("Kernel(run_dir=...) is needed to start or stop processes")
        return self.run_dir

    def start_server(self, netns: str | None, port: int, body: str) -> None:
        """Start cnilab's web server inside `netns` and wait until it listens."""
        from cnilab.kernel import processes  # not at import: pathlib, off the CNI plugin's path

        processes.start_server(self._need_run_dir(), netns, port, body)
        self.changed(netns)

    def stop_server(self, netns: str | None, port: int) -> None:
        """Stop the web server cnilab started there, by PID, only if it is ours."""
        from cnilab.kernel import processes

        processes.stop_server(self._need_run_dir(), netns, port)
        self.changed(netns)

    # -- iptables ------------------------------------------------------------------------------

    @property
    def has_iptables(self) -> bool:
        """Whether the iptables binary is installed."""
        return self._iptables is not None

    def require_iptables(self) -> str:
        """The iptables binary's path, or MissingTool saying how to install it."""
        return _iptables.require(self._iptables)

    def iptables(self, netns: str | None, args: list[str], missing_ok: bool = False) -> str:
        """Run iptables inside `netns`; returns stdout (missing_ok: -D of what is gone)."""
        try:
            return _iptables.run(self._iptables, netns, args, missing_ok)
        finally:
            self.changed(netns)

    def iptables_restore(self, netns: str | None, table: str, lines: list[list[str]]) -> None:
        """Rule commands ("-A CHAIN ...", "-D CHAIN ...") in one iptables-restore --noflush:
        one process, one transaction (all or nothing)."""
        try:
            _iptables.restore(self._iptables, netns, table, lines)
        finally:
            self.changed(netns)

    def nat_rules(self, netns: str | None) -> tuple[str, ...]:
        """The nat table's rules in `netns` (`iptables -t nat -S`), read again only when
        nf_tables says the ruleset changed since."""
        self._open(netns, [], nat=True)
        sock = self._generations.get(netns)
        generation = None if sock is None else _iptables.generation(sock)
        cached = self._nat.get(netns)
        if generation is not None and cached is not None and cached[0] == generation:
            return cached[1]
        rules = _iptables.nat_rules(self._iptables, netns)
        if generation is not None:  # the generation before the read: a change during it shows
            self._nat[netns] = (generation, rules)
        return rules

    def iptables_backend(self) -> str | None:
        """'nf_tables' or 'legacy'; None when iptables is not installed."""
        return _iptables.backend(self._iptables)

    # -- packet tracing (nftables trace events, conntrack) ----------------------------------------

    def nft(self, netns: str | None, script: str, missing_ok: bool = False) -> str:
        """Run `nft SCRIPT` inside `netns` (missing_ok: deleting what is gone is fine)."""
        try:
            from cnilab.kernel.nftrace import nft

            return nft(netns, script, missing_ok)
        finally:
            self.changed(netns)

    def nft_tables(self, netns: str | None) -> list[tuple[str, str]]:
        """(family, name) of each nftables table in `netns`."""
        from cnilab.kernel.nftrace import tables

        return tables(netns)

    def nft_table(self, netns: str | None, family: str, table: str) -> str:
        """One nftables table as nft lists it; "" when it is not there."""
        from cnilab.kernel.nftrace import list_table

        return list_table(netns, family, table)

    def nft_rules(self, netns: str | None, family: str, table: str
                  ) -> dict[int, tuple[str, int, str]]:
        """handle -> (chain, position, text) of one nftables table's rules."""
        from cnilab.kernel.nftrace import rule_texts

        return rule_texts(netns, family, table)

    def trace_listener(self, namespaces: list[str | None]) -> TraceListener:
        """Sockets that receive the trace events of these namespaces from now on."""
        from cnilab.kernel.nftrace import TraceListener

        return TraceListener(namespaces)

    def connections(self, netns: str | None) -> list[Connection]:
        """conntrack's entries in `netns` (conntrack -L)."""
        from cnilab.kernel.conntrack import connections

        return connections(netns)

    # -- observation -------------------------------------------------------------------------

    def observe(self, namespaces: Iterable[str | None], nat_in: Iterable[str | None] = (),
                listen_in: Iterable[str | None] | None = None, reuse: bool = False) -> Snapshot:
        """Read the state of each existing namespace given; NAT rules and listening sockets
        only where asked (listen_in None: everywhere).

        reuse: take what the last call saw in a namespace that no change made through this
        object has touched since (for a caller that knows no one else changes the lab).
        """
        present = list_netns()
        nat_in = set(nat_in)
        listen = None if listen_in is None else set(listen_in)
        raw: dict[str | None, RawLinks] = {}
        spaces: dict[str | None, Namespace] = {}
        for name in dict.fromkeys(namespaces):
            if name is not None and name not in present and not (
                    name.startswith("/") and os.path.exists(name)):
                continue
            asked = (name in nat_in and self._iptables is not None,
                     listen is None or name in listen)
            seen = self._seen.get(name)
            if reuse and seen is not None and seen[0] == asked:
                _, raw[name], spaces[name] = seen
                continue
            # One thread enters a namespace the first time, to open its files and sockets.
            self._open(name, [*map(sysctl_path, OBSERVED_SYSCTLS), *((TCP,) if asked[1] else ())],
                       nat=asked[0])
            links, routes = self.read_links_routes(name)
            raw[name] = links
            sysctls = {k: self.read_sysctl(name, k) for k in OBSERVED_SYSCTLS}
            nat = self.nat_rules(name) if asked[0] else None
            ports = listening_ports(self._read(name, TCP)) if asked[1] else ()
            names = {ln.index: ln.name for ln, _, _ in links}
            # The bridge's FDB and the ARP table: what the first packets taught the kernel.
            fdb = (self.read_fdb(name, names) if any(ln.kind == "bridge" for ln, _, _ in links)
                   else ())
            spaces[name] = Namespace(name, (), routes, sysctls, nat, ports,
                                     self.read_neighbours(name, names), fdb)
            self._seen[name] = (asked, links, spaces[name])
        for name, named in resolve_peers(raw, self.nsid_map).items():
            spaces[name] = replace(spaces[name], links=named)
        return Snapshot(present, spaces)


def _open_proc(path: str) -> int:
    """A /proc file for reading, and for writing where it can be written (a sysctl)."""
    try:
        return os.open(path, os.O_RDWR | os.O_CLOEXEC)
    except PermissionError:
        return os.open(path, os.O_RDONLY | os.O_CLOEXEC)
