"""iptables, run as the program (an argument list, never a shell) inside a namespace.

pyroute2 does not speak to netfilter's rule tables the way iptables does; running the very
command the lesson prints keeps the printed and the applied rule the same.
"""

from __future__ import annotations

import contextlib
import os
import socket
import struct
import subprocess

from cnilab.errors import KernelError, MissingTool
from cnilab.kernel.netns import netns_path, run_in_netns
from cnilab.kernel.nfnetlink import NETLINK_NETFILTER, attrs, be32, messages
from cnilab.packages import install_command, which


def find() -> str | None:
    """The iptables binary's path on PATH, or None when it is not installed."""
    return which("iptables")


def require(binary: str | None) -> str:
    """The binary, or MissingTool saying how to install it."""
    if binary is None:
        raise MissingTool.of("no_iptables", install=install_command("iptables"))
    return binary


def run(binary: str | None, netns: str | None, args: list[str], missing_ok: bool = False) -> str:
    """Run iptables inside `netns`; returns stdout.

    missing_ok: a -D of a rule (or in a namespace) that is already gone is not an error.
    """
    if missing_ok and netns is not None and not os.path.exists(netns_path(netns)):
        return ""
    argv = [require(binary), *args]
    # Started by a thread inside the namespace, the process is born there: no nsenter between.
    done = run_in_netns(netns, lambda: subprocess.run(argv, capture_output=True, text=True,
                                                      check=False))
    if done.returncode == 1 and missing_ok:
        return ""
    if done.returncode != 0:
        detail = (done.stderr.strip().splitlines() or ["no message"])[0]
        raise KernelError(f"iptables {' '.join(args)} failed: {detail}")
    return done.stdout


def restore_binary(binary: str) -> str:
    """iptables-restore beside this iptables: the same backend (iptables-nft -> -nft-restore;
    iptables -> iptables-restore, which the same alternatives choose)."""
    return os.path.join(os.path.dirname(binary), os.path.basename(binary) + "-restore")


def _word(word: str) -> str:
    """One word of an iptables-restore line: quoted as its parser quotes (double quotes only)."""
    if word and not any(c in word for c in ' \t"\\\'#'):
        return word
    return '"' + word.replace("\\", "\\\\").replace('"', '\\"') + '"'


def restore(binary: str | None, netns: str | None, table: str, lines: list[list[str]]) -> None:
    """Apply rule commands ("-A CHAIN ...", "-D CHAIN ...") to `table` in one
    `iptables-restore --noflush`: one process and one transaction, on nft and legacy alike.

    All or nothing: a -D of a rule that is not there fails the whole transaction (KernelError).
    """
    text = "".join([f"*{table}\n", *(" ".join(map(_word, ln)) + "\n" for ln in lines),
                    "COMMIT\n"])
    program = restore_binary(require(binary))
    if not os.access(program, os.X_OK):  # iptables without its restore: how to install both
        raise MissingTool.of("no_iptables", install=install_command("iptables"))
    # -w: legacy iptables then waits for the xtables lock a parallel call holds (nft ignores it)
    argv = [program, "--noflush", "-w"]
    done = run_in_netns(netns, lambda: subprocess.run(argv, input=text, capture_output=True,
                                                      text=True, check=False))
    if done.returncode != 0:
        detail = (done.stderr.strip().splitlines() or ["no message"])[0]
        raise KernelError(f"iptables-restore --noflush (table {table}) failed: {detail}")


def nat_rules(binary: str | None, netns: str | None) -> tuple[str, ...]:
    """The rules of the nat table inside `netns`, as `iptables -t nat -S` prints them (-A only)."""
    out = run(binary, netns, ["-t", "nat", "-S"])
    return tuple(ln for ln in out.splitlines() if ln.startswith("-A "))


def is_nft(binary: str | None) -> bool:
    """Whether this iptables is iptables-nft (rules in nf_tables), known from where it links."""
    return binary is not None and "nft" in os.path.basename(os.path.realpath(binary))


# nf_tables counts every change of a namespace's ruleset: a generation number that one small
# netlink request reads (NFT_MSG_GETGEN). While it stays the same, rules read earlier hold.
NFNL_SUBSYS_NFTABLES, NFT_MSG_GETGEN, NFTA_GEN_ID = 10, 16, 1
GETGEN = struct.pack("=IHHIIBBH", 20, NFNL_SUBSYS_NFTABLES << 8 | NFT_MSG_GETGEN, 1, 0, 0,
                     socket.AF_UNSPEC, 0, 0)


def generation_socket() -> socket.socket | None:
    """A netfilter netlink socket in the calling thread's namespace (None: no nf_tables)."""
    try:
        sock = socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC,
                             NETLINK_NETFILTER)
    except OSError:
        return None
    sock.bind((0, 0))
    return sock


def generation(sock: socket.socket) -> int | None:
    """The ruleset's generation in the socket's namespace; None if the kernel does not say."""
    with contextlib.suppress(OSError, struct.error):
        sock.send(GETGEN)
        for kind, _, payload in messages(sock.recv(4096)):
            if kind >> 8 == NFNL_SUBSYS_NFTABLES:
                return be32(attrs(payload[4:]).get(NFTA_GEN_ID))  # after the nfgenmsg
    return None


def backend(binary: str | None) -> str | None:
    """'nf_tables' or 'legacy', from `iptables --version`; None when not installed."""
    if binary is None:
        return None
    out = subprocess.run([binary, "--version"], capture_output=True, text=True,
                         check=False).stdout
    return out[out.find("(") + 1:out.find(")")] if "(" in out else "legacy"
