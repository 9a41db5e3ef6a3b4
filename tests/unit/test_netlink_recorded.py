"""Link and peer parsing (kernel.netlink._to_link, with_peer) from netlink messages the kernel
really sent: recorded once by tests/unit/recorded/record_netlink.py (see the file's "recorded")."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from pyroute2.netlink.rtnl.ifaddrmsg import ifaddrmsg
from pyroute2.netlink.rtnl.ifinfmsg import ifinfmsg

from cnilab.kernel.messages import RawLinks, with_peer
from cnilab.kernel.messages import to_link as _to_link
from cnilab.state import Link

RECORDED = json.loads((Path(__file__).parent / "recorded" / "netlink-after-step-5.json")
                      .read_text(encoding="utf-8"))
HOST, INET, RED, BLUE = (f"rec-{n}" for n in ("cnilab-host", "cnilab-internet", "red", "blue"))


def decode(cls: Any, hexed: str) -> Any:
    msg = cls(bytes.fromhex(hexed))
    msg.decode()
    return msg


def raw_links(space: dict[str, list[str]]) -> RawLinks:
    """What read_links_routes makes of one namespace's dumps (names, addresses, peer index)."""
    msgs = [decode(ifinfmsg, h) for h in space["links"]]
    names = {m["index"]: m.get("ifname") for m in msgs}
    addrs: dict[int, list[str]] = {}
    for a in (decode(ifaddrmsg, h) for h in space["addrs"]):
        addrs.setdefault(a["index"], []).append(f"{a.get('address')}/{a['prefixlen']}")
    return [(_to_link(m, names, addrs), m.get("link"), m.get("link_netnsid") is None)
            for m in msgs]


def observed(spaces: dict[str, Any]) -> dict[str, dict[str, Link]]:
    raw = {name: raw_links(space) for name, space in spaces.items()}
    return {name: {ln.name: with_peer(name, ln, peer, local, raw) for ln, peer, local in links}
            for name, links in raw.items()}


@pytest.fixture(scope="module")
def links() -> dict[str, dict[str, Link]]:
    return observed(RECORDED["spaces"])


def test_the_bridge_is_a_tagged_bridge_with_its_address(links: dict[str, dict[str, Link]]) -> None:
    bridge = links[HOST]["v-net-0"]
    assert (bridge.kind, bridge.alias, bridge.addresses) == ("bridge", "cnilab",
                                                            ("192.168.15.5/24",))
    assert not bridge.up and bridge.master is None and bridge.mac


def test_loopback_and_its_flags(links: dict[str, dict[str, Link]]) -> None:
    lo = links[HOST]["lo"]
    assert (lo.kind, lo.up, lo.peer, lo.alias) == ("loopback", True, None, None)
    assert links[RED]["lo"].up is False  # step 7 brings it up


def test_a_bridge_port_names_its_master_and_its_peer_in_another_namespace(
        links: dict[str, dict[str, Link]]) -> None:
    port = links[HOST]["veth-red-br"]
    assert (port.kind, port.master, port.alias) == ("veth", "v-net-0", "cnilab")
    assert port.peer == f"{RED}:veth-red"
    assert links[RED]["veth-red"].peer == f"{HOST}:veth-red-br"
    assert links[BLUE]["veth-blue"].peer == f"{HOST}:veth-blue-br"


def test_the_uplink_pair_is_two_links_named_eth0_in_two_namespaces(
        links: dict[str, dict[str, Link]]) -> None:
    assert links[HOST]["eth0"].peer == f"{INET}:eth0"
    assert links[INET]["eth0"].peer == f"{HOST}:eth0"
    assert links[HOST]["eth0"].addresses == ("203.0.113.2/24",) and links[HOST]["eth0"].up


def test_a_peer_in_a_namespace_not_observed_stays_unnamed() -> None:
    spaces = {k: v for k, v in RECORDED["spaces"].items() if k != INET}
    assert observed(spaces)[HOST]["eth0"].peer is None


def test_every_recorded_link_parses(links: dict[str, dict[str, Link]]) -> None:
    assert sorted(links[HOST]) == ["eth0", "lo", "v-net-0", "veth-blue-br", "veth-red-br"]
    assert sorted(links[RED]) == ["lo", "veth-red"]
