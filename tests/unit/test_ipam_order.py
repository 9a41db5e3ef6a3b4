"""cnilab-ipam hands out addresses in host-local's round-robin order, walked without a list."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Network

import pytest

from cnilab.cni.ipam import Range, round_robin


def rng(subnet: str, start: str, end: str, gateway: str) -> Range:
    return Range(IPv4Network(subnet), IPv4Address(start), IPv4Address(end), IPv4Address(gateway))


SETS = [
    (rng("10.0.0.0/29", "10.0.0.1", "10.0.0.6", "10.0.0.1"),),
    (rng("10.0.0.0/29", "10.0.0.2", "10.0.0.6", "10.0.0.4"),
     rng("10.0.1.0/29", "10.0.1.1", "10.0.1.3", "10.0.1.9")),
]


def listed(rset: tuple[Range, ...], last: IPv4Address | None) -> list[tuple[IPv4Address, Range]]:
    """The order as a list: the whole pool, rotated to start after `last` (host-local's)."""
    pool = [(ip, r) for r in rset for ip in r.addresses()]
    begin = next((i + 1 for i, (ip, _) in enumerate(pool) if ip == last), 0)
    return pool[begin:] + pool[:begin]


@pytest.mark.parametrize("rset", SETS)
@pytest.mark.parametrize("last", [None, "10.0.0.1", "10.0.0.2", "10.0.0.4", "10.0.0.6",
                                  "10.0.1.2", "10.0.1.3", "192.0.2.1"])
def test_the_walk_is_the_rotated_pool(rset: tuple[Range, ...], last: str | None) -> None:
    after = None if last is None else IPv4Address(last)
    assert list(round_robin(rset, after)) == listed(rset, after)
