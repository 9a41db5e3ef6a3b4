"""Teaching commands against the real kernel: check, practice, script, step 9, exports."""

from __future__ import annotations

import subprocess
import xml.etree.ElementTree as ET
from dataclasses import replace
from pathlib import Path

from helpers import Cnilab, prefixed_netns

from cnilab.kernel.webserver import MARKER
from tests.kernel.test_equivalence import normalised


def typed_lab(p: str) -> None:
    """The whole lab typed by hand, as a student would (no cnilab involved)."""
    host, inet, red, blue = f"{p}cnilab-host", f"{p}cnilab-internet", f"{p}red", f"{p}blue"
    stage = f"""
ip netns add {host}
ip netns add {inet}
ip -n {inet} link add eth0 type veth peer name eth0 netns {host}
ip -n {inet} addr add 203.0.113.1/24 dev eth0
ip -n {host} addr add 203.0.113.2/24 dev eth0
ip -n {inet} link set lo up
ip -n {inet} link set eth0 up
ip -n {host} link set lo up
ip -n {host} link set eth0 up
"""
    on_node = f"""
ip netns add {red}
ip netns add {blue}
ip link add v-net-0 type bridge
ip addr add 192.168.15.5/24 dev v-net-0
ip link add veth-red type veth peer name veth-red-br
ip link add veth-blue type veth peer name veth-blue-br
ip link set veth-red netns {red}
ip link set veth-blue netns {blue}
ip link set veth-red-br master v-net-0
ip link set veth-blue-br master v-net-0
ip -n {red} addr add 192.168.15.1/24 dev veth-red
ip -n {blue} addr add 192.168.15.2/24 dev veth-blue
ip link set v-net-0 up
ip link set veth-red-br up
ip link set veth-blue-br up
ip -n {red} link set lo up
ip -n {red} link set veth-red up
ip -n {blue} link set lo up
ip -n {blue} link set veth-blue up
sysctl -qw net.ipv4.ip_forward=1
ip -n {red} route add default via 192.168.15.5
ip -n {blue} route add default via 192.168.15.5
iptables -t nat -A POSTROUTING -s 192.168.15.0/24 ! -o v-net-0 -j MASQUERADE
"""
    subprocess.run(["bash", "-euc", stage], check=True)
    subprocess.run(["nsenter", f"--net=/run/netns/{host}", "bash", "-euc", on_node], check=True)


def on_node(cnilab: Cnilab, command: str) -> None:
    """Type one command on the node."""
    subprocess.run(["nsenter", f"--net=/run/netns/{cnilab.topo.node}", "bash", "-euc",
                    command], check=True)


def test_check_passes_on_a_lab_typed_by_hand_and_hints_at_each_break(cnilab: Cnilab) -> None:
    typed_lab(cnilab.prefix)
    graded = cnilab.run("check")
    assert graded.returncode == 0, graded.stdout
    assert "All 23 checks passed" in graded.stdout
    p = cnilab.prefix
    breaks = [
        (f"ip -n {p}blue addr del 192.168.15.2/24 dev veth-blue",
         f"{p}blue has no address 192.168.15.2/24 on veth-blue",
         # Removing the address also took blue's default route with it: the kernel drops
         # routes whose gateway is no longer reachable.
         f"ip -n {p}blue addr add 192.168.15.2/24 dev veth-blue; "
         f"ip -n {p}blue route add default via 192.168.15.5"),
        ("ip link set veth-red-br down", "veth-red-br is down (or missing) in the node",
         "ip link set veth-red-br up"),
        ("ip link set veth-blue-br nomaster", "veth-blue-br is not attached to v-net-0",
         "ip link set veth-blue-br master v-net-0; ip link set veth-blue-br up"),
        ("iptables -t nat -F POSTROUTING", "the node lacks the nat rule: `POSTROUTING -s "
         "192.168.15.0/24 ! -o v-net-0 -j MASQUERADE`",
         "iptables -t nat -A POSTROUTING -s 192.168.15.0/24 ! -o v-net-0 -j MASQUERADE"),
    ]
    for breakage, message, repair in breaks:
        on_node(cnilab, breakage)
        graded = cnilab.run("check")
        assert graded.returncode == 1, breakage
        assert message in graded.stdout, graded.stdout
        assert "    hint: " in graded.stdout and "checks failed" in graded.stderr
        on_node(cnilab, repair)
        assert cnilab.run("check").returncode == 0, repair


def test_check_grades_one_step_and_korean_hints(cnilab: Cnilab) -> None:
    assert cnilab.run("run-all", "--yes", "--no-proof", "--to", "5").returncode == 0
    assert cnilab.run("check", "5").returncode == 0
    graded = cnilab.run("check", "6", "--lang", "ko")
    assert graded.returncode == 1
    assert f"{cnilab.prefix}red의 veth-red에 주소 192.168.15.1/24가 없습니다" in graded.stdout
    assert "힌트" in graded.stdout


def test_practice_prepares_earlier_steps_and_check_passes_after_the_student(
        cnilab: Cnilab) -> None:
    shown = cnilab.run("practice", "6")
    assert shown.returncode == 0
    assert "ip -n" not in shown.stdout  # the goal, not the commands
    # The hint names this lab: the prefix it was made with, in one unbroken code span.
    assert f"`cnilab --prefix {cnilab.prefix} check 6`" in shown.stdout
    assert cnilab.json("status")["steps"] == {
        **{str(n): True for n in range(1, 6)}, **{str(n): False for n in range(6, 10)}}
    assert cnilab.run("check", "6").returncode == 1
    p = cnilab.prefix
    on_node(cnilab, f"ip -n {p}red addr add 192.168.15.1/24 dev veth-red; "
                    f"ip -n {p}blue addr add 192.168.15.2/24 dev veth-blue")
    assert cnilab.run("check", "6").returncode == 0
    assert cnilab.run("step", "7").returncode == 0  # cnilab carries on from the student's work


def test_practice_on_a_finished_lab_undoes_that_step_and_later_and_a_32_fails(
        cnilab: Cnilab) -> None:
    assert cnilab.run("run-all", "--yes", "--no-proof").returncode == 0
    shown = cnilab.run("practice", "6")
    assert shown.returncode == 0, shown.stderr
    assert "Steps 6 and later were done" in " ".join(shown.stdout.split())
    assert cnilab.json("status")["steps"] == {
        **{str(n): True for n in range(1, 6)}, **{str(n): False for n in range(6, 10)}}
    assert cnilab.run("check", "6").returncode == 1  # no work, no pass
    p = cnilab.prefix
    # /32 typed by mistake: an address, but no subnet (no connected route): not step 6.
    on_node(cnilab, f"ip -n {p}red addr add 192.168.15.1/32 dev veth-red; "
                    f"ip -n {p}blue addr add 192.168.15.2/32 dev veth-blue")
    assert cnilab.run("check", "6").returncode == 1
    on_node(cnilab, f"ip -n {p}red addr del 192.168.15.1/32 dev veth-red; "
                    f"ip -n {p}blue addr del 192.168.15.2/32 dev veth-blue; "
                    f"ip -n {p}red addr add 192.168.15.1/24 dev veth-red; "
                    f"ip -n {p}blue addr add 192.168.15.2/24 dev veth-blue")
    assert cnilab.run("check", "6").returncode == 0


def test_script_run_by_bash_gives_the_same_state_as_run_all(cnilab: Cnilab) -> None:
    assert cnilab.run("run-all", "--yes", "--no-proof").returncode == 0
    ours = normalised(cnilab.observe(), cnilab.prefix)
    other = replace(cnilab, prefix=cnilab.prefix + "s")
    script = other.run("script", "--lang", "ko").stdout
    teardown = other.run("script", "--teardown").stdout
    try:
        subprocess.run(["bash", "-c", script], check=True, capture_output=True)
        theirs = normalised(other.observe(), other.prefix)
    finally:
        subprocess.run(["bash", "-c", teardown], capture_output=True, check=False)
    assert theirs == ours
    assert prefixed_netns(other.prefix) == []  # the teardown script removed it all


def webservers() -> list[str]:
    """Command lines of running cnilab web servers."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if MARKER in cmdline:
            found.append(cmdline)
    return found


def test_step_9_forwards_a_real_http_request_and_teardown_stops_the_server(
        cnilab: Cnilab) -> None:
    before = webservers()
    summary = cnilab.json("run-all", "--yes", "--to", "9")
    assert summary["ok"]
    proof = summary["steps"][8]["proofs"][0]
    assert proof["ok"] and "Hello from blue" in proof["seen"]
    mine = [c for c in webservers() if c not in before]
    assert len(mine) == 1 and f"--netns {cnilab.prefix}blue" in mine[0]
    assert cnilab.json("step", "9")["changed"] is False
    assert cnilab.run("teardown").returncode == 0
    # Only this test's servers: other cnilab runs on the machine may start their own meanwhile.
    assert [c for c in webservers() if c not in before and cnilab.prefix in c] == []


def test_record_and_junit_exports(cnilab: Cnilab, tmp_path: Path) -> None:
    junit = tmp_path / "steps.xml"
    done = cnilab.run("run-all", "--yes", "--junit", str(junit), "--record",
                      str(tmp_path / "run.html"))
    assert done.returncode == 0
    suite = ET.parse(junit).getroot()
    assert suite.get("tests") == "16" and suite.get("failures") == "0"
    assert "v-net-0" in (tmp_path / "run.html").read_text()
    assert cnilab.run("status", "--record", str(tmp_path / "status.svg")).returncode == 0
    svg = (tmp_path / "status.svg").read_text()
    assert svg.startswith("<svg") and "cnilab-host" in svg
    bad = cnilab.run("status", "--record", str(tmp_path / "status.png"))
    assert bad.returncode == 2 and ".svg or .html" in bad.stderr


def test_doctor_as_a_normal_user_says_iptables_needs_root_not_that_it_is_missing(
        cnilab: Cnilab) -> None:
    # A normal user: no capabilities (root's bounding set emptied) and a PATH without sbin.
    import shutil

    iptables = shutil.which("iptables")
    assert iptables is not None and "sbin" in iptables
    done = subprocess.run(["setpriv", "--bounding-set=-all", "--inh-caps=-all", "--",
                           *cnilab.argv("doctor")], capture_output=True, text=True,
                          env={**cnilab.env(), "PATH": "/usr/bin:/bin"}, timeout=60,
                          check=False)
    assert done.returncode == 1
    line = next(ln for ln in done.stdout.splitlines() if " iptables " in ln)
    assert line.startswith("✔") and "running it needs root" in line, done.stdout
    assert "not installed" not in done.stdout
    assert "not root" in done.stdout
