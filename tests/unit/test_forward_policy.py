"""The node's FORWARD policy as a Docker host leaves it, read from `iptables -S` (no root)."""

from __future__ import annotations

from typing import Any, cast

from cnilab.kernel import Kernel
from cnilab.lab.firewall import forward_drop, forward_notes
from cnilab.lab.topology import default_topology
from tests.unit.fake_kernel import FakeKernel

DOCKER = ["-P INPUT ACCEPT", "-P FORWARD DROP", "-P OUTPUT ACCEPT", "-N DOCKER-USER",
          "-A FORWARD -j DOCKER-USER", "-A DOCKER-USER -j RETURN"]


def kernel(rules: list[str], has_iptables: bool = True) -> Any:
    """A fake kernel whose namespace holds these filter rules."""
    fake = FakeKernel(has_iptables)
    fake.spaces[None].rules.extend(rules)
    return cast(Kernel, fake)


def test_a_docker_hosts_drop_policy_is_found_with_its_user_chain() -> None:
    topo = default_topology(in_place=True)
    found = forward_drop(kernel(DOCKER), topo)
    assert found is not None and (found.policy, found.chain) == ("DROP", "DOCKER-USER")
    params = found.params(topo)
    assert params["accept_from"] == "iptables -I DOCKER-USER -s 192.168.15.0/24 -j ACCEPT"
    assert params["accept_to"] == "iptables -I DOCKER-USER -d 192.168.15.0/24 -j ACCEPT"


def test_without_docker_user_the_rules_go_in_forward_itself() -> None:
    found = forward_drop(kernel(["-P FORWARD DROP"]), default_topology(in_place=True))
    assert found is not None and found.chain == "FORWARD"


def test_nothing_is_said_where_the_lab_gets_through() -> None:
    in_place = default_topology(in_place=True)
    accepted = [*DOCKER, "-A DOCKER-USER -s 192.168.15.0/24 -j ACCEPT",
                "-A DOCKER-USER -d 192.168.15.0/24 -j ACCEPT"]
    assert forward_drop(kernel(accepted), in_place) is None  # the advice was followed
    assert forward_drop(kernel(["-P FORWARD ACCEPT"]), in_place) is None
    assert forward_drop(kernel(DOCKER, has_iptables=False), in_place) is None
    assert forward_notes(kernel(DOCKER), default_topology()) == []  # a fresh node accepts
    assert [key for key, _ in forward_notes(kernel(DOCKER), in_place)] == ["ui.forward_drop"]
