"""Kernel events: what changes in each watched namespace, as the kernel itself announces it.

A netlink socket made inside a namespace and bound to rtnetlink's multicast groups is sent a
message for every link, address, route, neighbour and FDB change there, whoever made it (cnilab,
`ip` typed in a shell, the kernel on its own). Named namespaces come and go under /run/netns;
inotify on that folder says when. Nothing here polls: wait() sleeps in select() until the kernel
writes to one of these descriptors.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import selectors
import socket
import struct
import time
from collections.abc import Callable, Collection
from typing import cast

from cnilab.compat import field, replace, valueclass
from cnilab.errors import KernelError
from cnilab.kernel import iptables as _iptables
from cnilab.kernel.messages import (
    RTM_DELADDR,
    RTM_DELLINK,
    RTM_DELNEIGH,
    RTM_DELNETCONF,
    RTM_DELROUTE,
    RTM_NEWADDR,
    RTM_NEWLINK,
    RTM_NEWNEIGH,
    RTM_NEWNETCONF,
    RTM_NEWROUTE,
    RawLinks,
    headers,
)
from cnilab.kernel.netlink import Netlink
from cnilab.kernel.netns import (
    LIBC,
    NETNS_DIR,
    OBSERVED_SYSCTLS,
    TCP,
    list_netns,
    netns_path,
    read_sysctl,
    read_text,
    run_in_netns,
)
from cnilab.kernel.nfnetlink import NETLINK_NETFILTER
from cnilab.state import FdbEntry, Neighbour, Route, listening_ports

# rtnetlink multicast groups, in the bind() bitmask form of <linux/rtnetlink.h>.
RTMGRP_LINK, RTMGRP_NEIGH, RTMGRP_IPV4_IFADDR, RTMGRP_IPV4_ROUTE = 0x1, 0x4, 0x10, 0x40
RTNLGRP_IPV4_NETCONF = 24  # a change of ip_forward arrives here as RTM_NEWNETCONF
GROUPS = (RTMGRP_LINK | RTMGRP_NEIGH | RTMGRP_IPV4_IFADDR | RTMGRP_IPV4_ROUTE
          | 1 << (RTNLGRP_IPV4_NETCONF - 1))
NETLINK_ROUTE, NFNLGRP_NFTABLES = 0, 7

IN_MOVED_FROM, IN_MOVED_TO, IN_CREATE, IN_DELETE, IN_Q_OVERFLOW = 0x40, 0x80, 0x100, 0x200, 0x4000
IN_NONBLOCK, IN_CLOEXEC = os.O_NONBLOCK, os.O_CLOEXEC
INOTIFY_EVENT = struct.Struct("=iIII")

# The parts of a namespace that are read again when the kernel says they changed.
LINKS, NEIGHBOURS, SYSCTLS, NAT = "links", "neighbours", "sysctls", "nat"
ALL = frozenset((LINKS, NEIGHBOURS, SYSCTLS, NAT))

QUIET, LONGEST = 0.02, 0.1  # one `ip` command's messages: a burst that ends after 20 ms of quiet
RETRY, GIVE_UP = 0.01, 2.0  # a new name under /run/netns is a namespace once it is mounted
BUFFER = 1 << 20


@valueclass(frozen=True)
class Observed:
    """What is watched in one namespace; each part is read again when the kernel says so."""

    links: RawLinks = field(default_factory=list)
    routes: tuple[Route, ...] = ()
    neighbours: tuple[Neighbour, ...] = ()
    fdb: tuple[FdbEntry, ...] = ()
    sysctls: dict[str, str] = field(default_factory=dict)
    nat: tuple[str, ...] | None = None
    listening: tuple[int, ...] = ()  # TCP ports, where a step starts a server (listen_in)


@valueclass
class Batch:
    """What one wait() saw: namespaces that appeared or vanished, parts to read again."""

    appeared: list[str] = field(default_factory=list)
    vanished: list[str] = field(default_factory=list)
    dirty: dict[str | None, set[str]] = field(default_factory=dict)
    woken: bool = False  # the wake-up descriptor was written (a signal, e.g. SIGWINCH)

    def __bool__(self) -> bool:
        return bool(self.appeared or self.vanished or self.dirty or self.woken)


def parts_of(data: bytes) -> set[str]:
    """Which parts the rtnetlink messages in `data` change (their headers are enough)."""
    found: set[str] = set()
    for kind, _, offset, length in headers(data):
        # The family is the first byte after the header (ifinfomsg, ndmsg). IPv6's own link and
        # neighbour news (router solicitations, DAD, MLD: a burst from every new pod for ~30 s)
        # changes nothing the view shows, and a node of a hundred pods is costly to read again.
        if length > 16 and data[offset + 16] == socket.AF_INET6:
            continue
        if kind in (RTM_NEWLINK, RTM_DELLINK):
            # A link going down or away takes its routes with it, and IPv4 announces no
            # RTM_DELROUTE for those: read routes (and neighbours) again with the links.
            found |= {LINKS, NEIGHBOURS}
        elif kind in (RTM_NEWADDR, RTM_DELADDR, RTM_NEWROUTE, RTM_DELROUTE):
            found.add(LINKS)
        elif kind in (RTM_NEWNEIGH, RTM_DELNEIGH):
            found.add(NEIGHBOURS)
        elif kind in (RTM_NEWNETCONF, RTM_DELNETCONF):
            found.add(SYSCTLS)
    return found


def parse_inotify(data: bytes) -> list[tuple[int, str]]:
    """(mask, name) of each inotify event in `data`."""
    events, offset = [], 0
    while offset + INOTIFY_EVENT.size <= len(data):
        _, mask, _, size = INOTIFY_EVENT.unpack_from(data, offset)
        start = offset + INOTIFY_EVENT.size
        name = data[start:start + size].rstrip(b"\0").decode(errors="replace")
        events.append((mask, name))
        offset = start + size
    return events


def is_netns(path: str) -> bool:
    """Whether `path` is a namespace: `ip netns add` makes the file first, then mounts onto it."""
    try:
        return os.stat(path).st_dev == os.stat("/proc/self/ns/net").st_dev  # both on nsfs
    except OSError:
        return False


class NamespaceEvents:
    """Follow namespaces (named ones that `follow` accepts, and our own if asked) and their changes.

    Use as a context manager: start(), then wait() in a loop and read() what it says changed.
    """

    def __init__(self, follow: Callable[[str], bool], own: bool = False,
                 nat_in: Collection[str | None] = (), wake_fd: int | None = None,
                 listen_in: Collection[str | None] = ()) -> None:
        self._follow = follow
        self._own = own
        self._nat_in = set(nat_in)
        # No event says a socket started listening: these are read at start and with links.
        self._listen_in = set(listen_in)
        self._wake_fd = wake_fd
        self._reader = Netlink()
        self._iptables = _iptables.find()
        # iptables-nft announces rule changes on NFNLGRP_NFTABLES; the legacy backend says
        # nothing, so there NAT rules are read again whenever anything else changes.
        self._nft = _iptables.is_nft(self._iptables)  # as the Kernel decides it: no process
        self._selector = selectors.DefaultSelector()
        self._sockets: dict[str | None, list[socket.socket]] = {}
        self._pending: dict[str, float] = {}  # created names not mounted yet: give-up time
        self._nsids: dict[tuple[str | None, str | None], int | None] = {}  # see nsid_map
        self._inotify = -1

    def __enter__(self) -> NamespaceEvents:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def watched(self) -> list[str | None]:
        """The namespaces followed now."""
        return list(self._sockets)

    def start(self) -> list[str | None]:
        """Watch /run/netns, then attach to every followed namespace there; returns them."""
        os.makedirs(NETNS_DIR, mode=0o755, exist_ok=True)
        fd = LIBC.inotify_init1(IN_NONBLOCK | IN_CLOEXEC)
        if fd < 0:
            raise KernelError(f"inotify: {os.strerror(ctypes.get_errno())}")
        self._inotify = fd
        mask = IN_CREATE | IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO
        if LIBC.inotify_add_watch(fd, NETNS_DIR.encode(), mask) < 0:
            raise KernelError(f"cannot watch {NETNS_DIR}: {os.strerror(ctypes.get_errno())}")
        self._selector.register(fd, selectors.EVENT_READ, "inotify")
        if self._wake_fd is not None:
            self._selector.register(self._wake_fd, selectors.EVENT_READ, "wake")
        if self._own:
            self._attach(None)
        # Listed after inotify is on: a namespace made in between is seen twice, never missed.
        for name in sorted(list_netns()):
            if self._follow(name) and is_netns(netns_path(name)):
                self._attach(name)
        return self.watched

    def close(self) -> None:
        """Close every descriptor: an open socket would keep a removed namespace alive."""
        for name in list(self._sockets):
            self._detach(name)
        with contextlib.suppress(KeyError, ValueError):
            if self._wake_fd is not None:
                self._selector.unregister(self._wake_fd)
        if self._inotify >= 0:
            self._selector.unregister(self._inotify)
            os.close(self._inotify)
            self._inotify = -1
        self._selector.close()
        self._reader.close()

    def _attach(self, netns: str | None) -> bool:
        if netns in self._sockets:
            return False
        nft = self._nft and netns in self._nat_in

        def make() -> list[socket.socket]:
            # Made by a thread inside the namespace: a socket belongs to it for good.
            made = []
            for proto, groups in ((NETLINK_ROUTE, GROUPS),
                                  *(((NETLINK_NETFILTER, 1 << (NFNLGRP_NFTABLES - 1)),)
                                    if nft else ())):
                sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_NONBLOCK
                                     | socket.SOCK_CLOEXEC, proto)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, BUFFER)
                sock.bind((0, groups))
                made.append(sock)
            return made

        try:
            socks = run_in_netns(netns, make)
        except (KernelError, OSError):
            return False  # gone again already; its removal is (or was) seen by inotify
        self._sockets[netns] = socks
        for sock in socks:
            self._selector.register(sock, selectors.EVENT_READ,
                                    (netns, sock.proto == NETLINK_NETFILTER))
        return True

    def _detach(self, netns: str | None) -> None:
        for sock in self._sockets.pop(netns, []):
            self._selector.unregister(sock)
            sock.close()
        self._reader.close_netns(netns)
        self._forget_nsids(netns)

    def _forget_nsids(self, netns: str | None, only_as_asker: bool = False) -> None:
        self._nsids = {k: v for k, v in self._nsids.items()
                       if k[0] != netns and (only_as_asker or k[1] != netns)}

    def nsid_map(self, netns: str | None, others: list[str | None]) -> dict[int, str | None]:
        """The ids `netns` knows `others` by (Netlink.nsid_map), remembered: an id holds while
        both namespaces live, and a new veth between them shows as a change of `netns`'s links
        (which forgets what `netns` was told)."""
        missing = [o for o in others if (netns, o) not in self._nsids]
        if missing:
            found = {o: nsid for nsid, o in self._reader.nsid_map(netns, missing).items()}
            self._nsids.update({(netns, o): found.get(o) for o in missing})
        return {nsid: o for o in others if (nsid := self._nsids[netns, o]) is not None}

    # -- waiting -------------------------------------------------------------------------------

    def wait(self, timeout: float | None = None) -> Batch:
        """Sleep until the kernel reports something (or `timeout` s), then gather the burst."""
        batch = Batch()
        end = None if timeout is None else time.monotonic() + timeout
        first: float | None = None
        while True:
            now = time.monotonic()
            if first is None:
                wait_for = None if end is None else max(0.0, end - now)
            else:  # the first message came: take what follows it within a short quiet
                wait_for = max(0.0, min(QUIET, first + LONGEST - now))
            if self._pending:
                wait_for = RETRY if wait_for is None else min(wait_for, RETRY)
            ready = self._selector.select(wait_for)
            for key, _ in ready:
                self._handle(key.data, key.fileobj, batch)
            self._try_pending(batch)
            if batch and first is None:
                first = time.monotonic()
            if first is not None and (not ready or time.monotonic() - first >= LONGEST):
                return batch
            if first is None and end is not None and time.monotonic() >= end:
                return batch

    def _handle(self, what: object, fileobj: object, batch: Batch) -> None:
        if what == "wake":
            with contextlib.suppress(BlockingIOError):
                os.read(self._wake_fd or 0, 512)
            batch.woken = True
        elif what == "inotify":
            self._read_inotify(batch)
        else:
            netns, netfilter = cast("tuple[str | None, bool]", what)
            assert isinstance(fileobj, socket.socket)
            parts = self._drain(fileobj, netfilter)
            if parts and netns in self._nat_in and not self._nft:
                parts.add(NAT)
            if parts:
                batch.dirty.setdefault(netns, set()).update(parts)

    def _drain(self, sock: socket.socket, netfilter: bool) -> set[str]:
        parts: set[str] = set()
        while True:
            try:
                data = sock.recv(BUFFER)
            except BlockingIOError:
                return parts
            except OSError as e:
                if e.errno != errno.ENOBUFS:
                    raise
                parts |= ALL  # the kernel dropped messages for us: read everything again
                continue
            parts |= {NAT} if netfilter else parts_of(data)

    def _read_inotify(self, batch: Batch) -> None:
        while True:
            try:
                data = os.read(self._inotify, 1 << 16)
            except BlockingIOError:
                return
            for mask, name in parse_inotify(data):
                if mask & IN_Q_OVERFLOW:
                    self._resync(batch)
                elif mask & (IN_CREATE | IN_MOVED_TO) and self._follow(name):
                    self._pending[name] = time.monotonic() + GIVE_UP
                elif mask & (IN_DELETE | IN_MOVED_FROM):
                    self._pending.pop(name, None)
                    if name in self._sockets:
                        self._detach(name)
                        batch.vanished.append(name)
                        batch.dirty.pop(name, None)

    def _resync(self, batch: Batch) -> None:
        present = list_netns()
        for name in [n for n in self._sockets if n is not None and n not in present]:
            self._detach(name)
            batch.vanished.append(name)
        for name in present:
            if name not in self._sockets and self._follow(name):
                self._pending[name] = time.monotonic() + GIVE_UP

    def _try_pending(self, batch: Batch) -> None:
        now = time.monotonic()
        for name, give_up in list(self._pending.items()):
            path = netns_path(name)
            if is_netns(path):
                del self._pending[name]
                if self._attach(name):
                    batch.appeared.append(name)
            elif now > give_up or not os.path.exists(path):
                del self._pending[name]  # a plain file someone made, or removed before mounted

    # -- reading -------------------------------------------------------------------------------

    def _learned_arp(self, netns: str | None, names: dict[int, str]) -> tuple[Neighbour, ...]:
        # What traffic taught the namespace: not the entries someone set by hand (PERMANENT).
        found = self._reader.read_neighbours(netns, names)
        return tuple(sorted((n for n in found if n.state != "PERMANENT"),
                            key=lambda n: (n.dev or "", n.ip)))

    def _learned_fdb(self, netns: str | None, names: dict[int, str]) -> tuple[FdbEntry, ...]:
        # What the bridges learned: not their ports' own addresses (local, permanent).
        found = self._reader.read_fdb(netns, names)
        return tuple(sorted((f for f in found if not f.local),
                            key=lambda f: (f.bridge or "", f.mac)))

    def read(self, netns: str | None, parts: Collection[str] = ALL,
             current: Observed | None = None) -> Observed:
        """Read again the given parts of one namespace; the others are kept from `current`."""
        from cnilab.kernel.iproute import NetlinkError

        seen = current or Observed()
        try:
            if LINKS in parts:
                self._forget_nsids(netns, only_as_asker=True)
                links, routes = self._reader.read_links_routes(netns)
                seen = replace(seen, links=links, routes=routes)
            names = {link.index: link.name for link, _, _ in seen.links}
            if NEIGHBOURS in parts:
                seen = replace(seen, neighbours=self._learned_arp(netns, names),
                               fdb=self._learned_fdb(netns, names))
            if SYSCTLS in parts:
                seen = replace(seen, sysctls={k: read_sysctl(netns, k) for k in OBSERVED_SYSCTLS})
            if NAT in parts and netns in self._nat_in and self._iptables is not None:
                seen = replace(seen, nat=_iptables.nat_rules(self._iptables, netns))
            if (LINKS in parts or current is None) and netns in self._listen_in:
                tcp = run_in_netns(netns, lambda: read_text(TCP))
                seen = replace(seen, listening=listening_ports(tcp))
        except (KernelError, NetlinkError, OSError):
            return current or Observed()  # the namespace went away meanwhile: inotify says so
        return seen
