"""The plugin's raw rtnetlink messages, built and parsed without a kernel (the kernel tests run
every plugin call through them)."""

from __future__ import annotations

import socket
import struct

from cnilab.kernel.rtnl import (
    IFINFO,
    IFLA_IFNAME,
    IFLA_INFO_DATA,
    IFLA_INFO_KIND,
    IFLA_LINKINFO,
    NLA_F_NESTED,
    VETH_INFO_PEER,
    attr,
    nested,
    parse,
    text,
)


def test_attributes_are_padded_to_four_bytes_and_parse_back() -> None:
    data = attr(IFLA_IFNAME, text("eth0")) + attr(99, b"\x01")
    assert len(attr(IFLA_IFNAME, text("eth0"))) == 12  # 4 header + "eth0\0" + 3 padding
    assert parse(data) == {IFLA_IFNAME: b"eth0\0", 99: b"\x01"}


def test_a_veth_request_nests_its_peer_as_iproute2_does() -> None:
    peer = IFINFO.pack(0, 0, 0, 0, 0) + attr(IFLA_IFNAME, text("eth0"))
    info = nested(IFLA_LINKINFO, attr(IFLA_INFO_KIND, text("veth")),
                  nested(IFLA_INFO_DATA, attr(VETH_INFO_PEER, peer)))
    length, kind = struct.unpack_from("=HH", info)
    assert kind == IFLA_LINKINFO | NLA_F_NESTED and length == len(info)
    linkinfo = parse(parse(info)[IFLA_LINKINFO])
    assert linkinfo[IFLA_INFO_KIND] == b"veth\0"
    inner = parse(linkinfo[IFLA_INFO_DATA])[VETH_INFO_PEER]
    assert IFINFO.unpack_from(inner) == (socket.AF_UNSPEC, 0, 0, 0, 0)
    assert parse(inner[IFINFO.size:]) == {IFLA_IFNAME: b"eth0\0"}


def test_a_cut_attribute_stops_parsing_instead_of_looping() -> None:
    assert parse(b"\x02\x00\x01\x00") == {}
    assert parse(attr(1, b"ab")[:5]) == {}
