"""The runtime's ops: its own folder of files, and a pod's attachment to a network (CNI ADD,
undone by CNI DEL). Recorded in the ledger before they run, like every other op, so a runtime
killed at any point is torn down by the one teardown path.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
from pathlib import Path
from typing import Any, ClassVar

from cnilab.cni.chain import Attachment, NetworkList, Runner, parse_list
from cnilab.compat import replace, valueclass
from cnilab.errors import CollisionError
from cnilab.ops import Evidence, KernelApi, Key, Op
from cnilab.runfiles import new_dir, trusted
from cnilab.state import Snapshot


@valueclass(frozen=True)
class StateDir(Op):
    """mkdir -m 700 PATH: the runtime's files (plugins, leases, cached results); undo removes it."""

    path: str = ""

    def apply(self, kernel: KernelApi) -> None:
        # Made here, 0700 whatever the umask: a folder that is already there (someone else's,
        # or a symlink planted in its place) is refused, so teardown never removes it.
        try:
            new_dir(self.path, 0o700)
        except CollisionError:
            raise CollisionError.of("taken", what=f"folder {self.path}") from None

    def undo(self, kernel: KernelApi) -> None:
        if os.path.isdir(self.path) and not os.path.islink(self.path):
            shutil.rmtree(self.path, ignore_errors=True)

    def owned(self, kernel: KernelApi, done: bool, proof: Evidence | None) -> bool:
        # Killed before the completion line: the folder is ours if it is a real folder of
        # root's (runfiles.trusted), never a planted symlink.
        try:
            st = os.lstat(self.path)
        except OSError:
            return done
        return stat.S_ISDIR(st.st_mode) and trusted(st)

    def satisfied(self, snap: Snapshot) -> bool:
        return os.path.isdir(self.path)

    def argv(self) -> list[str]:
        return ["mkdir", "-m", "700", "-p", self.path]

    def undo_argv(self) -> list[str] | None:
        return ["rm", "-r", self.path]


@valueclass(frozen=True)
class AttachNetwork(Op):
    """CNI ADD of a network (its plugins chained, as libcni) to a sandbox; undo is CNI DEL.

    `netns` is the node, where the plugins run; `sandbox` is CNI_NETNS (a path). Plain strings
    only: the ledger keeps plain data.
    """

    # DEL releases the address (a file) and the node's rules: due even when namespaces go.
    outlives_netns: ClassVar[bool] = True
    equivalent: ClassVar[str | None] = "equivalent_cnitool"  # the runtime runs the plugins itself

    pod: str = ""
    sandbox: str = ""
    container_id: str = ""
    ifname: str = "eth0"
    network: str = ""  # the conflist, JSON
    cni_path: str = ""  # CNI_PATH, folders joined by ':'
    args: str = ""  # CNI_ARGS
    capability_args: str = "{}"  # runtimeConfig, JSON
    cache_dir: str = ""
    sandbox_id: str = ""  # "dev:inode" of the sandbox when attached: the kernel's mark

    @staticmethod
    def identify(path: str) -> str:
        """A namespace's identity: its nsfs device and inode ("" when it cannot be opened)."""
        try:
            st = os.stat(path)
        except OSError:
            return ""
        return f"{st.st_dev}:{st.st_ino}"

    def net(self) -> NetworkList:
        """The network this attachment is to."""
        return parse_list(json.loads(self.network), "ledger")

    def attachment(self) -> Attachment:
        """libcni's RuntimeConf of this attachment."""
        args = tuple((k, v) for k, _, v in (p.partition("=") for p in self.args.split(";") if p))
        caps: dict[str, Any] = json.loads(self.capability_args or "{}")
        return Attachment(self.container_id, self.sandbox, self.ifname, args, caps)

    def runner(self) -> Runner:
        """Where the plugins are, where they run, where results are cached."""
        return Runner(tuple(p for p in self.cni_path.split(":") if p), Path(self.cache_dir),
                      self.netns)

    def result(self) -> dict[str, Any] | None:
        """The result ADD cached, if it got that far."""
        return self.runner().cached_result(self.net(), self.attachment())

    def apply(self, kernel: KernelApi) -> None:
        self.runner().add(self.net(), self.attachment())

    def owned(self, kernel: KernelApi, done: bool, proof: Evidence | None) -> bool:
        # DEL touches only what carries this attachment's container ID: a random 256-bit ID
        # only this runtime used (its lease files, the veth named by its hash, the rules tagged
        # with it), in a sandbox checked against its inode below. So an ADD killed before its
        # completion line (maybe mid-plugin) is still DELeted: the plugin may have made it all.
        return True

    def undo(self, kernel: KernelApi) -> None:
        if self.netns is not None and not os.path.exists(_path(self.netns)):
            return  # the node is gone, and its bridge, veth ends and rules with it
        att = self.attachment()
        if self.sandbox_id and self.identify(self.sandbox) != self.sandbox_id:
            # /proc/PID/ns/net of a process that has gone: the PID may be someone else's now.
            # DEL without CNI_NETNS (the spec allows it) cleans the node's side only.
            att = replace(att, netns="")
        self.runner().delete(self.net(), att)

    def satisfied(self, snap: Snapshot) -> bool:
        ns = snap.ns(self.sandbox)
        link = ns.link(self.ifname) if ns else None
        return link is not None and bool(link.addresses)

    def argv(self) -> list[str]:
        return ["cnitool", "add", self.net().name, self.sandbox]

    def undo_argv(self) -> list[str] | None:
        return ["cnitool", "del", self.net().name, self.sandbox]

    def highlights(self) -> tuple[Key, ...]:
        return (("link", self.sandbox, self.ifname),)


def _path(netns: str) -> str:
    return netns if netns.startswith("/") else os.path.join("/run/netns", netns)
