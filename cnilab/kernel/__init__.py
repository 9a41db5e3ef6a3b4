"""The only package that talks to the kernel: netlink (pyroute2), iptables, /proc, processes.

It imports nothing of cnilab above it (only errors and the plain data of state). Modules:
netns (namespaces, setns threads, sysctls), netlink (links, addresses, routes), iptables,
processes (the web server) and sockets (`ss`-like socket listing).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path

from cnilab.kernel import iptables as _iptables
from cnilab.kernel import netns as _netns
from cnilab.kernel import processes
from cnilab.kernel.netlink import Netlink, RawLinks, with_peer
from cnilab.kernel.netns import (
    OBSERVED_SYSCTLS,
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

    def add_netns(self, name: str) -> None:
        """Create a named namespace (ip netns add)."""
        _netns.add_netns(name)

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
            spaces[name] = Namespace(name, (), routes, sysctls, nat, listening_ports(name))
        for name, links in raw.items():
            resolved = tuple(with_peer(name, link, peer, local, raw)
                             for link, peer, local in links)
            spaces[name] = replace(spaces[name], links=resolved)
        return Snapshot(present, spaces)


def listening_ports(netns: str | None) -> tuple[int, ...]:
    """TCP ports something listens on inside `netns`."""
    # /proc/thread-self/net/tcp lists the sockets of the reading thread's namespace.
    text = run_in_netns(netns, lambda: _netns.read_text("/proc/thread-self/net/tcp"))
    return tuple(sorted({s.local_port for s in parse_proc_tcp(text) if s.state == LISTEN}))
