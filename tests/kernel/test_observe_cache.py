"""What observe() keeps between calls, and when it must read again, against the real kernel."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator

import pytest

from cnilab.kernel import Kernel


def sh(*argv: str) -> str:
    return subprocess.run(argv, capture_output=True, text=True, check=True).stdout


@pytest.fixture
def kernel() -> Iterator[Kernel]:
    k = Kernel()
    yield k
    k.close()


def test_reuse_reads_again_only_what_our_own_changes_touched(prefix: str, kernel: Kernel) -> None:
    a, b = f"{prefix}a", f"{prefix}b"
    kernel.add_netns(a)
    kernel.add_netns(b)
    kernel.add_link(a, "br0", "bridge")
    kernel.observe([a, b])
    kernel.set_up(a, "br0")  # through the kernel object: `a` is read again
    sh("ip", "-n", b, "link", "set", "lo", "up")  # behind its back: `b` is not
    snap = kernel.observe([a, b], reuse=True)
    assert snap.ns(a).link("br0").up  # type: ignore[union-attr]
    assert not snap.ns(b).link("lo").up  # type: ignore[union-attr]
    assert kernel.observe([a, b]).ns(b).link("lo").up  # type: ignore[union-attr]


def test_a_veth_moved_away_is_read_again_on_both_sides(prefix: str, kernel: Kernel) -> None:
    a, b = f"{prefix}a", f"{prefix}b"
    for ns in (a, b):
        kernel.add_netns(ns)
    kernel.add_link(a, "v0", "veth", peer="v1")
    kernel.observe([a, b])
    kernel.move_link(a, "v1", b)
    snap = kernel.observe([a, b], reuse=True)
    assert snap.ns(a).link("v1") is None  # type: ignore[union-attr]
    assert snap.ns(b).link("v1").peer == f"{a}:v0"  # type: ignore[union-attr]


def test_nat_rules_are_read_again_when_the_ruleset_changes(prefix: str, kernel: Kernel) -> None:
    if not kernel.has_iptables:
        pytest.skip("iptables is not installed")
    ns = f"{prefix}a"
    kernel.add_netns(ns)
    assert kernel.nat_rules(ns) == ()
    # Added by someone else's iptables: nf_tables' generation moves, the rule shows.
    sh("ip", "netns", "exec", ns, "iptables", "-t", "nat", "-A", "POSTROUTING",
       "-s", "10.9.0.0/24", "-j", "MASQUERADE")
    assert kernel.nat_rules(ns) == ("-A POSTROUTING -s 10.9.0.0/24 -j MASQUERADE",)
    sh("ip", "netns", "exec", ns, "iptables", "-t", "nat", "-F")
    assert kernel.nat_rules(ns) == ()


def test_a_sysctl_written_through_a_kept_file_is_the_namespaces(prefix: str,
                                                                 kernel: Kernel) -> None:
    a, b = f"{prefix}a", f"{prefix}b"
    kernel.add_netns(a)
    kernel.add_netns(b)
    # A new namespace starts with the machine's own IPv4 settings (1 where Docker runs): read
    # what it inherited, never assume it, and write the other value.
    cat = ("cat", "/proc/sys/net/ipv4/ip_forward")
    inherited = sh("ip", "netns", "exec", a, *cat).strip()
    assert inherited in ("0", "1")
    assert kernel.read_sysctl(a, "net.ipv4.ip_forward") == inherited
    other = "0" if inherited == "1" else "1"
    kernel.write_sysctl(a, "net.ipv4.ip_forward", other)
    assert sh("ip", "netns", "exec", a, *cat).strip() == other
    assert sh("ip", "netns", "exec", b, *cat).strip() == inherited  # only that namespace's
    assert kernel.read_sysctl(a, "net.ipv4.ip_forward") == other


def test_removing_a_namespace_it_observed_lets_the_kernel_destroy_it(prefix: str,
                                                                     kernel: Kernel) -> None:
    a, b = f"{prefix}a", f"{prefix}b"
    kernel.add_netns(a)
    kernel.add_netns(b)
    kernel.add_link(a, "v0", "veth", peer="v1", peer_netns=b)
    kernel.observe([a, b], nat_in=[a], listen_in=[a])  # sockets and /proc files held inside
    kernel.remove_netns(a)
    # Destroyed (nothing of ours holds it), `a` takes v0 and with it v1, its peer in `b`.
    deadline = time.monotonic() + 20
    while "v1" in sh("ip", "-n", b, "-o", "link") and time.monotonic() < deadline:
        time.sleep(0.05)
    assert "v1" not in sh("ip", "-n", b, "-o", "link")
