"""nftables tracing: the `nft` program in a namespace, trace events read off netlink, rule texts.

A packet whose nftrace bit is set makes every nftables chain it passes report to the group
NFNLGRP_NFTRACE of its namespace (what `nft monitor trace` prints): the table, the chain, the
rule or the policy that decided, the in/out interfaces and the packet's headers as they are at
that point, so a NAT rewrite shows between two events. The bit is cleared when a packet crosses
into another namespace (skb_scrub_packet), so each namespace needs its own trace table.
"""

from __future__ import annotations

import os
import re
import select
import socket
import struct
import subprocess

from cnilab.compat import valueclass
from cnilab.errors import KernelError, MissingTool
from cnilab.kernel.netns import netns_path
from cnilab.kernel.nfnetlink import attrs, be32, messages, open_socket, text
from cnilab.packages import install_command, which

NFNLGRP_NFTRACE = 9
NFT_MSG_TRACE = (10 << 8) | 17  # NFNL_SUBSYS_NFTABLES, NFT_MSG_TRACE
FAMILIES = {1: "inet", 2: "ip", 3: "arp", 5: "netdev", 7: "bridge", 10: "ip6"}
KINDS = {1: "policy", 2: "return", 3: "rule"}
VERDICTS = {0: "drop", 1: "accept", 2: "stolen", 3: "queue", 4: "repeat", -1: "continue",
            -2: "break", -3: "jump", -4: "goto", -5: "return"}
(A_TABLE, A_CHAIN, A_HANDLE, A_TYPE, A_VERDICT, _A_ID, A_LL, A_NETWORK, A_TRANSPORT, A_IIF,
 _A_IIFTYPE, A_OIF, _A_OIFTYPE, _A_MARK, _A_NFPROTO, A_POLICY) = range(1, 17)


@valueclass(frozen=True)
class TraceEvent:
    """One trace event: where a traced packet was (table, chain, hook) and what decided there.

    Headers are hex strings as the kernel copied them (recorded events replay in unit tests).
    """

    netns: str | None
    family: str
    table: str
    chain: str
    kind: str  # rule / policy / return
    verdict: str  # accept, drop, continue, jump, ...
    target: str | None = None  # the chain of a jump or goto
    handle: int | None = None  # the rule's handle (nft -a)
    iif: int | None = None
    oif: int | None = None
    ll: str = ""
    network: str = ""
    transport: str = ""


def find_nft() -> str:
    """The nft binary, or MissingTool saying how to install it."""
    binary = which("nft")
    if binary is None:
        raise MissingTool.of("no_nft", install=install_command("nftables"))
    return binary


def nft(netns: str | None, script: str, missing_ok: bool = False) -> str:
    """Run `nft SCRIPT` inside `netns` (commands separated by ';'); returns stdout.

    missing_ok: a delete of a table (or in a namespace) that is already gone is not an error.
    """
    if netns is not None and not os.path.exists(netns_path(netns)):
        if missing_ok:
            return ""
        raise KernelError(f"namespace {netns!r} does not exist")
    argv = [find_nft(), script]
    if netns is not None:
        argv = ["nsenter", f"--net={netns_path(netns)}", "--", *argv]
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        detail = (done.stderr.strip().splitlines() or ["no message"])[0]
        if missing_ok and "No such file or directory" in detail:
            return ""
        raise KernelError(f"nft {script[:60]} failed: {detail}")
    return done.stdout


def tables(netns: str | None) -> list[tuple[str, str]]:
    """(family, name) of every nftables table in `netns` (nft list tables); none if it is gone."""
    if netns is not None and not os.path.exists(netns_path(netns)):
        return []
    out = nft(netns, "list tables")
    return [(p[1], p[2]) for p in (ln.split() for ln in out.splitlines()) if len(p) == 3]


def rule_texts(netns: str | None, family: str, table: str) -> dict[int, tuple[str, int, str]]:
    """handle -> (chain, position in the chain, rule as nft prints it) for one table."""
    out = list_table(netns, family, table)
    found: dict[int, tuple[str, int, str]] = {}
    chain, position = "", 0
    for line in out.splitlines():
        line = line.strip()
        if line.startswith("chain "):
            chain, position = line.split()[1], 0
            continue
        m = re.match(r"(.*?)\s*# handle (\d+)$", line)
        if m and chain and not line.startswith(("table ", "type ")) and m.group(1):
            found[int(m.group(2))] = (chain, position, re.sub(r"\s+", " ", m.group(1)))
            position += 1
    return found


def list_table(netns: str | None, family: str, table: str) -> str:
    """One table as `nft -a list table` prints it (with handles); "" when it is gone."""
    # `-a` must come before the command: nft takes options, then one command string.
    if netns is not None and not os.path.exists(netns_path(netns)):
        return ""
    argv = [find_nft(), "-a", "list", "table", family, table]
    if netns is not None:
        argv = ["nsenter", f"--net={netns_path(netns)}", "--", *argv]
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    return done.stdout if done.returncode == 0 else ""


class TraceListener:
    """Trace events of several namespaces, from sockets opened before the probe is sent."""

    def __init__(self, namespaces: list[str | None]) -> None:
        self._socks: dict[str | None, socket.socket] = {}
        try:
            for ns in namespaces:
                sock = open_socket(ns, (NFNLGRP_NFTRACE,))
                sock.setblocking(False)
                self._socks[ns] = sock
        except BaseException:
            self.close()
            raise

    def __enter__(self) -> TraceListener:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close every socket."""
        for sock in self._socks.values():
            sock.close()
        self._socks.clear()

    def drain(self, wait: float = 0.0) -> dict[str | None, list[TraceEvent]]:
        """Every event queued so far, per namespace in the kernel's order; waits `wait` s first."""
        if wait > 0:
            select.select(list(self._socks.values()), [], [], wait)
        found: dict[str | None, list[TraceEvent]] = {ns: [] for ns in self._socks}
        for ns, sock in self._socks.items():
            while True:
                try:
                    data = sock.recv(1 << 16)
                except BlockingIOError:
                    break
                except OSError as e:  # ENOBUFS: events were lost; say so rather than guess
                    raise KernelError(f"trace events lost in {ns or 'this namespace'}: "
                                      f"{e.strerror}") from e
                for mtype, _flags, payload in messages(data):
                    if mtype == NFT_MSG_TRACE:
                        found[ns].append(parse_event(ns, payload))
        return found


def parse_event(netns: str | None, payload: bytes) -> TraceEvent:
    """A TraceEvent from one NFT_MSG_TRACE message (nfgenmsg, then attributes)."""
    family = FAMILIES.get(payload[0], str(payload[0]))
    a = attrs(payload[4:])
    verdict = attrs(a.get(A_VERDICT, b""))
    code = verdict.get(1)
    if A_POLICY in a:  # a chain's policy comes as its own attribute, not as a verdict
        code = a[A_POLICY]
    handle = a.get(A_HANDLE)
    return TraceEvent(
        netns=netns, family=family, table=text(a.get(A_TABLE)) or "",
        chain=text(a.get(A_CHAIN)) or "",
        kind=KINDS.get(be32(a.get(A_TYPE)) or 0, "?"),
        verdict=VERDICTS.get(struct.unpack("!i", code)[0], "?") if code else "?",
        target=text(verdict.get(2)),
        handle=struct.unpack("!Q", handle)[0] if handle else None,
        iif=be32(a.get(A_IIF)), oif=be32(a.get(A_OIF)),
        ll=a.get(A_LL, b"").hex(), network=a.get(A_NETWORK, b"").hex(),
        transport=a.get(A_TRANSPORT, b"").hex())
