"""A machine where Docker runs (ip_forward=1, FORWARD policy DROP, a DOCKER-USER chain), built
inside a namespace of the test's own: the machine's own settings are never touched or assumed.
"""

from __future__ import annotations

import json
import subprocess
from typing import Any

from helpers import Cnilab

SUBNET = "192.168.15.0/24"
ADVICE = [f"iptables -I DOCKER-USER {way} {SUBNET} -j ACCEPT" for way in ("-s", "-d")]


def docker_host(cnilab: Cnilab) -> tuple[str, ...]:
    """A namespace set up as Docker leaves a machine; the command prefix that runs inside it."""
    node = cnilab.prefix + "node"
    subprocess.run(["ip", "netns", "add", node], check=True)
    inside = ("nsenter", f"--net=/run/netns/{node}")  # keeps the mount namespace: see shell
    for argv in (("sysctl", "-qw", "net.ipv4.ip_forward=1"), ("iptables", "-N", "DOCKER-USER"),
                 ("iptables", "-A", "FORWARD", "-j", "DOCKER-USER"),
                 ("iptables", "-P", "FORWARD", "DROP")):
        subprocess.run([*inside, *argv], check=True)
    return inside


def forward_check(cnilab: Cnilab, inside: tuple[str, ...]) -> dict[str, Any]:
    """doctor's check of the FORWARD policy, in place inside the namespace."""
    doctor = json.loads(cnilab.run("--in-place", "doctor", "--json", wrap=inside).stdout)
    return next(c for c in doctor["checks"] if c["name"] == "forward")


def test_in_place_on_a_docker_host_doctor_and_steps_7_and_8_say_why_packets_are_dropped(
        cnilab: Cnilab) -> None:
    inside = docker_host(cnilab)
    check = forward_check(cnilab, inside)
    assert not check["ok"] and "DROP" in check["detail"] and "Docker" in check["detail"]
    assert all(rule in check["hint"] for rule in ADVICE) and "Kubernetes" in check["hint"]
    done = cnilab.run("--in-place", "run-all", "--yes", "--json", wrap=inside)
    assert done.returncode == 9, done.stderr  # the proofs fail, and the steps say why
    steps = json.loads(done.stdout)["steps"]
    for n in (7, 8):
        said = " ".join(steps[n - 1]["notes"])
        assert "FORWARD chain's policy here is DROP" in said and all(r in said for r in ADVICE)
    assert not all(p["ok"] for p in steps[6]["proofs"])  # red and blue: dropped on the bridge
    assert "DOCKER-USER" not in " ".join(steps[5]["notes"])  # said where it matters only
    # What a Kubernetes node does: the two rules doctor printed. Then the lab works, and the
    # doctor is content, while the policy stays Docker's.
    for rule in ADVICE:
        subprocess.run([*inside, *rule.split()], check=True)
    assert forward_check(cnilab, inside)["ok"]
    assert cnilab.run("--in-place", "teardown", wrap=inside).returncode == 0
    done = cnilab.run("--in-place", "run-all", "--yes", "--json", wrap=inside)
    assert done.returncode == 0, done.stderr
    assert all(not s["notes"] or "FORWARD" not in " ".join(s["notes"])
               for s in json.loads(done.stdout)["steps"])
    assert cnilab.run("--in-place", "teardown", wrap=inside).returncode == 0
    policy = subprocess.run([*inside, "iptables", "-S", "FORWARD"], capture_output=True,
                            text=True, check=True).stdout
    assert "-P FORWARD DROP" in policy  # cnilab changed no rule of Docker's


def test_in_place_where_forward_accepts_doctor_says_so_and_steps_add_no_note(
        cnilab: Cnilab) -> None:
    node = cnilab.prefix + "node"
    subprocess.run(["ip", "netns", "add", node], check=True)
    inside = ("nsenter", f"--net=/run/netns/{node}")
    assert forward_check(cnilab, inside)["ok"]  # a fresh namespace's FORWARD accepts
