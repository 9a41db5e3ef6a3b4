"""The CNI lesson's world as data: its network (a conflist: the main plugin, then tuning and
portmap chained as the lesson teaches), the node's outside world, and published ports. No kernel.
"""

from __future__ import annotations

import re
from typing import Any

from cnilab.cni.chain import NetworkList, parse_list
from cnilab.cni.exec import find_reference
from cnilab.compat import valueclass
from cnilab.errors import ConfigError
from cnilab.ops import AddAddress, AddNetns, AddVeth, LinkUp, Op

NETWORK = "cnilab-pods"
SUBNET = "10.244.1.0/24"
BRIDGE = "cni0"
IFNAME = "eth0"
# The lesson's network is 1.0.0: the newest version the reference plugins (1.1) speak, and
# every plugin of a chain gets the list's version. STATUS and GC (1.1.0) go to cnilab alone.
VERSION = "1.0.0"
CHAINED = ("tuning", "portmap")
SOMAXCONN = "512"  # what tuning sets in each pod, to see that it ran

# The outside world of the node: TEST-NET-3, as in the eight-step lab.
WORLD_IF, UPLINK = "eth0", "uplink0"
WORLD_ADDRESS, NODE_UPLINK = "203.0.113.1/24", "203.0.113.2/24"
PORT_RE = re.compile(r"^(?P<host>\d{1,5}):(?P<pod>\d{1,5})(/(?P<proto>tcp|udp))?$")


def network_config(plugin: str, data_dir: str, version: str = VERSION) -> dict[str, Any]:
    """The main plugin's part: one bridge, a /24 for pods, NAT out; for cnilab or the reference
    bridge (+ host-local, which keeps the same address files as cnilab-ipam)."""
    ours = plugin == "cnilab"
    return {
        "cniVersion": version,
        "name": NETWORK,
        "type": "cnilab" if ours else "bridge",
        "bridge": BRIDGE,
        "isGateway": True,
        "ipMasq": True,
        "capabilities": {"mac": True, "ips": True},
        "ipam": {"type": "cnilab-ipam" if ours else "host-local", "subnet": SUBNET,
                 "routes": [{"dst": "0.0.0.0/0"}], "dataDir": data_dir},
    }


def lesson_network(plugin: str, data_dir: str, version: str = VERSION) -> NetworkList:
    """The lesson's conflist: the main plugin, then tuning and portmap when installed.

    version: the newest the installed reference plugins speak (older ones, 0.9 in Debian 11 and
    Ubuntu 22.04, stop at 0.4.0): the reference bridge gets it; the chain needs 1.0.0.
    """
    main = {k: v for k, v in network_config(plugin, data_dir).items()
            if k not in ("name", "cniVersion")}
    plugins: list[dict[str, Any]] = [main]
    if version == VERSION and all(find_reference(p) for p in CHAINED):
        plugins += [{"type": "tuning", "sysctl": {"net.core.somaxconn": SOMAXCONN}},
                    {"type": "portmap", "capabilities": {"portMappings": True}, "snat": True}]
    conf_version = VERSION if plugin == "cnilab" else version
    return parse_list({"cniVersion": conf_version, "name": NETWORK, "plugins": plugins}, NETWORK)


def world_ops(node: str, world: str, mark: str) -> list[Op]:
    """The node's outside world: a namespace linked to the node by a veth uplink (`mark`: the
    lesson's, as its alias)."""
    return [AddNetns(None, world), LinkUp(world, "lo"),
            AddVeth(world, WORLD_IF, UPLINK, node, mark=mark),
            AddAddress(world, WORLD_IF, WORLD_ADDRESS), AddAddress(node, UPLINK, NODE_UPLINK),
            LinkUp(world, WORLD_IF), LinkUp(node, UPLINK)]


@valueclass(frozen=True)
class PortMapping:
    """One published port (the `portMappings` capability; Kubernetes' hostPort)."""

    host: int
    pod: int
    protocol: str = "tcp"

    def to_dict(self) -> dict[str, Any]:
        """As runtimeConfig.portMappings holds it."""
        return {"hostPort": self.host, "containerPort": self.pod, "protocol": self.protocol}


def parse_port(text: str) -> PortMapping:
    """HOST:POD[/tcp|udp], e.g. 8080:80; ConfigError for anything else."""
    m = PORT_RE.match(text.strip())
    if not m or not all(1 <= int(m[k]) <= 65535 for k in ("host", "pod")):
        raise ConfigError.of("cni_bad_port", text=text)
    return PortMapping(int(m["host"]), int(m["pod"]), m["proto"] or "tcp")
