"""cnilab-ipam's store: round-robin order walked without a list; modes; no symlink followed."""

from __future__ import annotations

import os
import stat
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path

import pytest

from cnilab.cni import ipam
from cnilab.cni.ipam_store import INDEX_PREFIX, Range, Store, round_robin
from cnilab.errors import CnilabError


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


def test_the_store_is_written_with_fixed_modes_whatever_the_umask(tmp_path: Path) -> None:
    """Folders 0755, lock and leases 0600, last_reserved_ip 0644: none writable by others."""
    conf = {"cniVersion": "1.1.0", "name": "n1", "type": "cnilab",
            "ipam": {"type": "cnilab-ipam", "dataDir": str(tmp_path / "data"),
                     "subnet": "10.5.0.0/24"}}
    old = os.umask(0)
    try:
        ipam.add(conf, "a", "eth0")
    finally:
        os.umask(old)
    store = tmp_path / "data" / "n1"
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in [store.parent, store,
                                                               *store.iterdir()]}
    index = next(name for name in modes if name.startswith(INDEX_PREFIX))
    assert modes == {"data": 0o755, "n1": 0o755, "lock": 0o600, "10.5.0.2": 0o600,
                     "last_reserved_ip.0": 0o644, index: 0o600}


def test_an_attachments_add_and_del_read_no_other_lease(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """The duplicate check and DEL go by the attachment's index: O(1) on a node of 1000 pods."""
    conf = {"cniVersion": "1.1.0", "name": "n1", "type": "cnilab",
            "ipam": {"type": "cnilab-ipam", "dataDir": str(tmp_path), "subnet": "10.5.0.0/24"}}
    ipam.add(conf, "other", "eth0")

    def every_lease(self: Store) -> None:
        raise AssertionError("every lease read")

    monkeypatch.setattr(Store, "_owners", every_lease)
    assert ipam.add(conf, "a", "eth0")["ips"][0]["address"] == "10.5.0.3/24"
    with pytest.raises(CnilabError):  # a duplicate is still found
        ipam.add(conf, "a", "eth0")
    ipam.delete(conf, "a", "eth0")
    assert sorted(p.name for p in (tmp_path / "n1").iterdir() if p.name[0].isdigit()) == [
        "10.5.0.2"]
    monkeypatch.undo()
    # Leases written without an index (host-local, an older cnilab) are still found by DEL.
    (tmp_path / "n1" / "10.5.0.9").write_bytes(b"old\r\neth0")
    ipam.delete(conf, "old", "eth0")
    ipam.delete(conf, "other", "eth0")
    assert sorted(p.name for p in (tmp_path / "n1").iterdir()) == ["last_reserved_ip.0", "lock"]


def test_a_planted_symlink_in_the_store_is_refused_not_followed(tmp_path: Path) -> None:
    conf = {"cniVersion": "1.1.0", "name": "n1", "type": "cnilab",
            "ipam": {"type": "cnilab-ipam", "dataDir": str(tmp_path), "subnet": "10.5.0.0/24"}}
    (tmp_path / "n1").mkdir()
    victim = tmp_path / "victim"
    victim.write_text("keep")
    (tmp_path / "n1" / "last_reserved_ip.0").symlink_to(victim)
    with pytest.raises(CnilabError):
        ipam.add(conf, "a", "eth0")
    assert victim.read_text() == "keep"
    assert not (tmp_path / "n1" / "10.5.0.2").exists()  # the failed ADD left no lease
