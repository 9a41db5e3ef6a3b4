"""The only package that talks to the kernel: netlink (pyroute2), iptables, /proc, processes.

It imports nothing of cnilab above it (only errors and the plain data of state). Modules:
netns (namespaces, setns threads, sysctls), netlink (links, addresses, routes), iptables,
processes (the web server) and sockets (`ss`-like socket listing).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from dataclasses import replace
from pathlib import Path

from cnilab.kernel import conntrack as _conntrack
from cnilab.kernel import iptables as _iptables
from cnilab.kernel import netns as _netns
from cnilab.kernel import nftrace as _nftrace
from cnilab.kernel import processes
from cnilab.kernel.netlink import Netlink, RawLinks, with_peer
from cnilab.kernel.netns import (
    OBSERVED_SYSCTLS,
    NetnsId,
    has_privileges,
    list_netns,
    netns_path,
    read_sysctl,
    require_privileges,
    run_in_netns,
    write_sysctl,
)
from cnilab.state import LISTEN, Namespace, Snapshot, parse_proc_tcp

__all__ = ["Kernel", "has_privileges", "list_netns", "netns_path", "require_privileges",
           "run_in_netns"]


class Kernel(Netlink):
    """Applies and observes network state (what ops call); see cnilab.ops.Kernel."""

    def __init__(self, run_dir: Path | None = None) -> None:
        super().__init__()
        self.run_dir = run_dir  # where PID files of processes we start are kept
        self._iptables: str | None = _iptables.find()

    def __enter__(self) -> Kernel:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- namespaces and sysctls --------------------------------------------------------------

    def add_netns(self, name: str, on_made: Callable[[NetnsId], None] | None = None) -> None:
        """Create a named namespace (ip netns add); on_made gets its id before it is named."""
        _netns.add_netns(name, on_made)

    def netns_id(self, name: str) -> NetnsId | None:
        """Inode, device and cookie of a named namespace (None: no such name)."""
        return _netns.netns_id(name)

    def remove_netns(self, name: str) -> None:
        """Remove a named namespace (ip netns delete); already gone is fine."""
        self.close_netns(name)  # an open socket would keep the namespace alive
        _netns.remove_netns(name)

    def read_sysctl(self, netns: str | None, key: str) -> str:
        """Read a sysctl as seen inside `netns`."""
        return read_sysctl(netns, key)

    def write_sysctl(self, netns: str | None, key: str, value: str) -> None:
        """Write a sysctl inside `netns`."""
        write_sysctl(netns, key, value)

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
        processes.start_server(self._need_run_dir(), netns, port, body)

    def stop_server(self, netns: str | None, port: int) -> None:
        """Stop the web server cnilab started there, by PID, only if it is ours."""
        processes.stop_server(self._need_run_dir(), netns, port)

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
        return _iptables.run(self._iptables, netns, args, missing_ok)

    def iptables_backend(self) -> str | None:
        """'nf_tables' or 'legacy'; None when iptables is not installed."""
        return _iptables.backend(self._iptables)

    # -- packet tracing (nftables trace events, conntrack) ----------------------------------------

    def nft(self, netns: str | None, script: str, missing_ok: bool = False) -> str:
        """Run `nft SCRIPT` inside `netns` (missing_ok: deleting what is gone is fine)."""
        return _nftrace.nft(netns, script, missing_ok)

    def nft_tables(self, netns: str | None) -> list[tuple[str, str]]:
        """(family, name) of each nftables table in `netns`."""
        return _nftrace.tables(netns)

    def nft_rules(self, netns: str | None, family: str, table: str
                  ) -> dict[int, tuple[str, int, str]]:
        """handle -> (chain, position, text) of one nftables table's rules."""
        return _nftrace.rule_texts(netns, family, table)

    def trace_listener(self, namespaces: list[str | None]) -> _nftrace.TraceListener:
        """Sockets that receive the trace events of these namespaces from now on."""
        return _nftrace.TraceListener(namespaces)

    def connections(self, netns: str | None) -> list[_conntrack.Connection]:
        """conntrack's entries in `netns` (conntrack -L)."""
        return _conntrack.connections(netns)

    # -- observation -------------------------------------------------------------------------

    def observe(self, namespaces: Iterable[str | None], nat_in: Iterable[str | None] = ()
                ) -> Snapshot:
        """Read the state of each existing namespace given; NAT rules only where asked."""
        present = list_netns()
        nat_in = set(nat_in)
        raw: dict[str | None, RawLinks] = {}
        spaces: dict[str | None, Namespace] = {}
        for name in dict.fromkeys(namespaces):
            if name is not None and name not in present and not (
                    name.startswith("/") and os.path.exists(name)):
                continue
            links, routes = self.read_links_routes(name)
            raw[name] = links
            sysctls = {k: self.read_sysctl(name, k) for k in OBSERVED_SYSCTLS}
            nat = None
            if name in nat_in and self._iptables is not None:
                nat = _iptables.nat_rules(self._iptables, name)
            names = {ln.index: ln.name for ln, _, _ in links}
            # The bridge's FDB and the ARP table: what the first packets taught the kernel.
            fdb = (self.read_fdb(name, names) if any(ln.kind == "bridge" for ln, _, _ in links)
                   else ())
            spaces[name] = Namespace(name, (), routes, sysctls, nat, listening_ports(name),
                                     self.read_neighbours(name, names), fdb)
        for name, links in raw.items():
            foreign = any(nsid is not None for ln, _, nsid in links if ln.kind == "veth")
            nsids = self.nsid_map(name, list(raw)) if foreign else {}
            resolved = tuple(with_peer(name, link, peer, nsid, raw, nsids)
                             for link, peer, nsid in links)
            spaces[name] = replace(spaces[name], links=resolved)
        return Snapshot(present, spaces)


def listening_ports(netns: str | None) -> tuple[int, ...]:
    """TCP ports something listens on inside `netns`."""
    # /proc/thread-self/net/tcp lists the sockets of the reading thread's namespace.
    text = run_in_netns(netns, lambda: _netns.read_text("/proc/thread-self/net/tcp"))
    return tuple(sorted({s.local_port for s in parse_proc_tcp(text) if s.state == LISTEN}))
