"""A node namespace and pod namespaces under one prefix, to call any plugin with any
configuration, as a runtime would (tests, benchmarks). Its namespaces are ops in its own ledger.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from cnilab.cni.chain import reference_path
from cnilab.cni.exec import Call, invoke, require_reference
from cnilab.cni.install import install
from cnilab.errors import ConfigError
from cnilab.kernel import Kernel, netns_path
from cnilab.ledger import Ledger
from cnilab.ops import AddNetns, LinkUp


class Sandbox:
    """A node namespace plus pod namespaces under one prefix, to call any plugin with any
    configuration (tests, benchmarks). Its namespaces are ops in its own ledger (beside
    `bin_dir`); close() tears them down by the one teardown path.
    """

    def __init__(self, prefix: str, bin_dir: str | os.PathLike[str],
                 kernel: Kernel | None = None) -> None:
        if len(prefix) < 4:
            raise ConfigError.of("cni_short_prefix")
        self.prefix, self.bin = prefix, Path(bin_dir)
        self.kernel = kernel or Kernel()
        self.ledger = Ledger(f"{prefix}sandbox", str(self.bin.parent / "ledger"))
        install(self.bin)
        self.node = self._netns("node")

    def _netns(self, name: str) -> str:
        netns = self.prefix + name
        self.ledger.apply([AddNetns(None, netns), LinkUp(netns, "lo")], self.kernel)
        self.kernel.close_netns(netns)
        return netns

    def pod(self, name: str) -> str:
        """Make a pod namespace; its path, as CNI_NETNS wants it."""
        return netns_path(self._netns(name))

    def exe(self, plugin: str) -> str:
        """Our plugin from the sandbox's bin folder, or an installed reference plugin."""
        ours = self.bin / plugin
        if ours.exists():
            return str(ours)
        return require_reference(plugin)

    @property
    def cni_path(self) -> list[str]:
        """Our bin folder first, then the reference plugins' folders."""
        return list(reference_path([self.bin]))

    def call(self, plugin: str, command: str, config: dict[str, Any], container_id: str = "",
             netns: str = "", ifname: str = "eth0", args: str = "",
             stdin: bytes | None = None, cni_path: Sequence[str] | None = None) -> Call:
        """Run `plugin` inside the node, as a runtime would."""
        return invoke(self.exe(plugin), command, config, container_id=container_id,
                      netns=netns, ifname=ifname, args=args,
                      cni_path=self.cni_path if cni_path is None else cni_path,
                      node=self.node, stdin=stdin)

    def close(self) -> None:
        """Remove the sandbox's namespaces (the node's bridge, veths and rules go with them)."""
        self.kernel.close()
        self.ledger.undo(self.kernel)
