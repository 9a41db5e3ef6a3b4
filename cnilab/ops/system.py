"""Ops on the namespace itself: a sysctl (restored on undo) and a process (step 9's server)."""

from __future__ import annotations

from typing import ClassVar

from cnilab.compat import valueclass
from cnilab.ops.base import Evidence, KernelApi, Key, Op, ns_of
from cnilab.state import Snapshot

FORWARDING = "net.ipv4.ip_forward"  # the sysctl that lets a node route between its interfaces


@valueclass(frozen=True)
class SetSysctl(Op):
    """sysctl -w KEY=VALUE (the previous value is kept to restore it)"""

    key: str = ""
    value: str = ""
    previous: str | None = None

    def prepare(self, kernel: KernelApi) -> Op:
        return SetSysctl(self.netns, self.key, self.value, kernel.read_sysctl(self.netns, self.key))

    def apply(self, kernel: KernelApi) -> None:
        kernel.write_sysctl(self.netns, self.key, self.value)

    def undo(self, kernel: KernelApi) -> None:
        if self.previous is not None:
            kernel.write_sysctl(self.netns, self.key, self.previous)

    def satisfied(self, snap: Snapshot) -> bool:
        return ns_of(snap, self.netns).sysctls.get(self.key) == self.value

    def argv(self) -> list[str]:
        return ["sysctl", "-w", f"{self.key}={self.value}"]

    def undo_argv(self) -> list[str] | None:
        return ["sysctl", "-w", f"{self.key}={self.previous or '0'}"]

    def highlights(self) -> tuple[Key, ...]:
        return (("sysctl", self.netns or "", self.key),)


@valueclass(frozen=True)
class StartServer(Op):
    """A web server process in a namespace (what `python3 -m http.server PORT &` does there)."""

    outlives_netns: ClassVar[bool] = True
    undo_first: ClassVar[bool] = True
    equivalent: ClassVar[str | None] = "equivalent_server"  # cnilab.kernel.webserver runs

    port: int = 80
    body: str = ""

    def apply(self, kernel: KernelApi) -> None:
        kernel.start_server(self.netns, self.port, self.body)

    def undo(self, kernel: KernelApi) -> None:
        kernel.stop_server(self.netns, self.port)

    def owned(self, kernel: KernelApi, done: bool, proof: Evidence | None) -> bool:
        return True  # stop_server signals only a process whose command line carries our mark

    def satisfied(self, snap: Snapshot) -> bool:
        return self.port in ns_of(snap, self.netns).listening

    def argv(self) -> list[str]:
        return ["python3", "-m", "http.server", str(self.port)]

    def command(self, here: str | None) -> str:
        return super().command(here) + " &"

    def highlights(self) -> tuple[Key, ...]:
        return (("server", self.netns or "", str(self.port)),)
