"""Config validation: every bad input is one clear ConfigError, before anything is touched."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from cnilab.errors import ConfigError
from cnilab.lab.topology import default_topology, from_dict, load, validate


def test_defaults_are_the_course_lab() -> None:
    topo = default_topology()
    assert topo.node == "cnilab-host" and topo.internet == "cnilab-internet"
    assert topo.bridge == "v-net-0" and str(topo.bridge_address) == "192.168.15.5/24"
    assert [(c.name, str(c.address), c.veth, c.peer) for c in topo.containers] == [
        ("red", "192.168.15.1/24", "veth-red", "veth-red-br"),
        ("blue", "192.168.15.2/24", "veth-blue", "veth-blue-br"),
    ]
    assert str(topo.uplink_address) == "203.0.113.2/24"
    assert str(topo.internet_address) == "203.0.113.1/24"


def test_in_place_has_no_node_or_outside_namespace() -> None:
    topo = default_topology(in_place=True)
    assert topo.node is None and topo.internet is None
    assert topo.namespaces() == ("red", "blue")


def test_prefix_goes_before_every_namespace_name() -> None:
    topo = default_topology(prefix="t1-")
    assert topo.namespaces() == ("t1-cnilab-host", "t1-cnilab-internet", "t1-red", "t1-blue")
    assert topo.lab_id == "eight-steps@t1-"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"bridge": "a-very-long-bridge"}, "at most 15"),
        ({"bridge": "v/net"}, "may not contain '/'"),
        ({"uplink": "eth 0"}, "may not contain '/', ':', spaces"),
        ({"bridge": "v-net\u0000x"}, "control characters"),
        ({"bridge": "v-net\u001b[31m"}, "control characters"),
        ({"bridge": "v:net"}, "':'"),
        ({"node": "host\u0000x"}, "control characters"),
        ({"prefix": "a\u0000"}, "invisible characters"),
        ({"prefix": "a\tb"}, "invisible characters"),
        ({"containers": [{"name": "red\u0000x", "address": "192.168.15.1/24"}]},
         "control characters"),
        ({"bridge": ""}, "is empty"),
        ({"bridge_address": "192.168.15.5"}, "not an address with a prefix"),
        ({"bridge_address": "192.168.300.5/24"}, "not a valid IPv4 CIDR"),
        ({"bridge_address": "192.168.15.0/24"}, "network or broadcast"),
        ({"bridge_address": "203.0.113.9/16"}, "outside the bridge's subnet"),
        ({"bridge_address": "203.0.113.5/24",
          "containers": [{"name": "red", "address": "203.0.113.7/24"}]}, "overlaps"),
        ({"containers": [{"name": "red", "address": "10.0.0.1/24"}]}, "outside the bridge"),
        ({"containers": [{"name": "red", "address": "192.168.15.5/24"}]}, "also bridge_address"),
        ({"containers": [{"name": "red", "address": "192.168.15.1/24"},
                         {"name": "red", "address": "192.168.15.2/24"}]}, "must all differ"),
        ({"containers": [{"name": "r", "address": "192.168.15.1/24", "veth": "x" * 16}]},
         "at most 15"),
        ({"containers": []}, "at least one container"),
        ({"containers": [{"name": "red"}]}, "needs a name and an address"),
        ({"internet_address": "198.51.100.1/24"}, "not in the uplink's subnet"),
        ({"internet_address": "203.0.113.2/24"}, "must differ"),
        ({"bridge": 5}, "must be a string"),
        ({"colour": "red"}, "unknown config key 'colour'"),
        ({"node": "my/node"}, "namespace name"),
    ],
)
def test_bad_config_is_one_clear_error(data: dict, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        validate(from_dict(data))
    assert message in info.value.message
    assert "\n" not in info.value.message and "\x00" not in info.value.message


def two(red: dict, blue: dict, **top: str) -> dict:
    return {**top, "containers": [{"name": "red", "address": "192.168.15.1/24", **red},
                                  {"name": "blue", "address": "192.168.15.2/24", **blue}]}


@pytest.mark.parametrize(("data", "name"), [
    (two({"veth": "eth1"}, {"veth": "eth1"}), "eth1"),  # two containers, one veth name
    (two({}, {"veth": "veth-red-br"}), "veth-red-br"),  # a veth equal to another's peer
    (two({"peer": "p"}, {"peer": "p"}), "p"),
    (two({"veth": "v-net-0"}, {}), "v-net-0"),  # a veth named as the bridge
    (two({"peer": "eth0"}, {}), "eth0"),  # a peer named as the uplink
    (two({"veth": "lo"}, {}), "lo"),  # every namespace has lo
    (two({}, {}, bridge="eth0"), "eth0"),  # the bridge named as the uplink
    (two({"veth": "x", "peer": "x"}, {}), "x"),
])
def test_every_interface_name_is_unique_across_the_whole_lab(data: dict, name: str) -> None:
    with pytest.raises(ConfigError, match=f"interface name '{name}' is used twice"):
        validate(from_dict(data))


def test_in_place_the_uplink_is_not_made_so_its_name_is_free() -> None:
    validate(from_dict(two({"veth": "eth0"}, {}), in_place=True))
    with pytest.raises(ConfigError, match="used twice"):
        validate(from_dict(two({"veth": "eth0"}, {})))


@pytest.mark.parametrize(("content", "message"), [
    (None, "is a directory"),
    (b'bridge = "br\xff"\n', "is not UTF-8 text (byte 13)"),
    (b'bridge = "a\x00"\n', "is not valid TOML"),
    (b"/proc/self/mem", "cannot be read: Input/output error"),  # a read that fails (EIO)
])
def test_a_config_file_that_cannot_be_read_is_one_clear_error(
        tmp_path: Path, content: bytes | None, message: str) -> None:
    path = tmp_path / "lab.toml"
    if content is None:
        path.mkdir()
    elif content == b"/proc/self/mem":
        path = Path("/proc/self/mem")
    else:
        path.write_bytes(content)
    with pytest.raises(ConfigError, match=re.escape(message)) as info:
        load(path)
    assert "\n" not in info.value.message and info.value.exit_code == 2


def test_toml_file_changes_names_and_addresses(tmp_path: Path) -> None:
    path = tmp_path / "lab.toml"
    path.write_text(
        'bridge = "br-lab"\nbridge_address = "10.10.0.254/24"\n'
        '[[containers]]\nname = "web"\naddress = "10.10.0.10/24"\n'
        '[[containers]]\nname = "db"\naddress = "10.10.0.20/24"\nveth = "db0"\npeer = "db0-br"\n')
    topo = load(path)
    assert topo.bridge == "br-lab"
    assert [(c.name, c.veth, c.peer) for c in topo.containers] == [
        ("web", "veth-web", "veth-web-br"), ("db", "db0", "db0-br")]


def test_missing_or_broken_toml_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load(tmp_path / "nope.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("bridge = \n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load(bad)
