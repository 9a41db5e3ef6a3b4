"""The eight steps against the real kernel, in isolated namespaces under a unique prefix."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from helpers import Cnilab, prefixed_netns, root_namespace_state

from cnilab.lab import proofs
from cnilab.lab.steps import build_steps


def test_run_all_builds_every_step_and_proves_it_with_packets(cnilab: Cnilab) -> None:
    summary = cnilab.json("run-all", "--yes")
    assert summary["ok"] is True
    assert [s["step"] for s in summary["steps"]] == list(range(1, 9))
    assert all(s["changed"] for s in summary["steps"])
    claims = {p["claim"]: p["ok"] for s in summary["steps"] for p in s["proofs"]}
    assert claims["red reaches blue (192.168.15.2)"]
    assert claims["blue reaches red (192.168.15.1)"]
    assert claims["red reaches the bridge (192.168.15.5)"]
    assert claims["before MASQUERADE: red's packet reaches the outside host (203.0.113.1) from "
                  "192.168.15.1, and the reply has no way back"]
    assert claims["red reaches the outside host (203.0.113.1)"]
    status = cnilab.json("status")
    assert status["steps"] == {**{str(n): True for n in range(1, 9)}, "9": False}


def test_step_8_shows_why_nat_is_needed_before_the_rule_then_the_node_address(
        cnilab: Cnilab) -> None:
    assert cnilab.run("run-all", "--yes", "--to", "7", "--no-proof").returncode == 0
    node = cnilab.topo.node
    assert node is not None
    # The node starts as a fresh machine, whatever this host's own ip_forward is.
    assert cnilab.observe().ns(node).sysctls["net.ipv4.ip_forward"] == "0"
    report = cnilab.json("step", "8")
    assert report["ok"]
    assert "sysctl -w net.ipv4.ip_forward=1" in report["commands"]
    before, *after = report["proofs"]
    assert before["ok"] and "192.168.15.1" in before["seen"] and "no reply" in before["seen"]
    assert report["commands"][-1].startswith("iptables -t nat -A POSTROUTING")  # then the rule
    seen = {p["claim"]: p["seen"] for p in after}
    assert seen["red reaches the outside host (203.0.113.1)"] == "reply received"
    assert "203.0.113.2" in seen["the outside host sees red as the node (203.0.113.2), not as "
                                 "192.168.15.1"]


def test_nat_hides_red_from_outside_but_not_from_blue(cnilab: Cnilab) -> None:
    assert cnilab.run("run-all", "--yes", "--no-proof").returncode == 0
    topo = cnilab.topo
    red, blue = (topo.netns(c) for c in topo.containers)
    outside_saw, _ = proofs.seen_source(red, topo.internet, "203.0.113.1")
    blue_saw, _ = proofs.seen_source(red, blue, "192.168.15.2")
    assert outside_saw == "203.0.113.2"
    assert blue_saw == "192.168.15.1"


def test_the_lecture_rule_without_bridge_exception_rewrites_red_to_blue(cnilab: Cnilab) -> None:
    """Why step 8 adds `! -o v-net-0`: with bridge netfilter on, the bare rule NATs red->blue."""
    assert cnilab.run("run-all", "--yes", "--no-proof").returncode == 0
    topo = cnilab.topo
    node = topo.node
    assert node is not None
    bridge_nf = subprocess.run(["ip", "netns", "exec", node, "cat",
                                "/proc/sys/net/bridge/bridge-nf-call-iptables"],
                               capture_output=True, text=True, check=False).stdout.strip()
    if bridge_nf != "1":
        pytest.skip("bridge netfilter is off in new namespaces on this kernel")
    subprocess.run(["ip", "netns", "exec", node, "iptables", "-t", "nat", "-I", "POSTROUTING",
                    "-s", "192.168.15.0/24", "-j", "MASQUERADE"], check=True)
    red, blue = (topo.netns(c) for c in topo.containers)
    blue_saw, _ = proofs.seen_source(red, blue, "192.168.15.2")
    assert blue_saw == "192.168.15.5"


def test_each_step_alone_then_again_changes_nothing(cnilab: Cnilab) -> None:
    for n in range(1, 9):
        first = cnilab.json("step", str(n))
        assert first["changed"] and first["ok"], first
        again = cnilab.run("step", str(n))
        assert again.returncode == 0
        assert "Already done" in again.stdout
    assert cnilab.json("step", "3")["changed"] is False


def test_a_step_before_its_prerequisites_names_the_missing_step(cnilab: Cnilab) -> None:
    done = cnilab.run("step", "5")
    assert done.returncode == 3
    assert "step 5 needs step 1" in done.stderr
    assert f"cnilab --prefix {cnilab.prefix} step 1" in done.stderr  # the hint reaches this lab
    assert len(done.stderr.strip().splitlines()) == 1
    assert prefixed_netns(cnilab.prefix) == []  # not even the stage was made
    assert cnilab.run("step", "1").returncode == 0
    assert cnilab.run("step", "2").returncode == 0
    done = cnilab.run("step", "4")
    assert done.returncode == 3 and "needs step 3" in done.stderr


def test_a_namespace_that_is_not_ours_stops_the_step_and_survives_teardown(
        cnilab: Cnilab) -> None:
    theirs = cnilab.prefix + "blue"
    subprocess.run(["ip", "netns", "add", theirs], check=True)
    done = cnilab.run("step", "1")
    assert done.returncode == 4
    assert f"namespace {theirs} already exists and was not made by cnilab" in done.stderr
    assert prefixed_netns(cnilab.prefix) == [theirs]  # nothing else was made
    done = cnilab.run("teardown")
    assert done.returncode == 0
    assert f"namespace {theirs} was not made by cnilab and stays" in done.stdout
    assert prefixed_netns(cnilab.prefix) == [theirs]


def test_a_link_that_is_not_ours_stops_the_step(cnilab: Cnilab) -> None:
    assert cnilab.run("step", "1").returncode == 0
    node = cnilab.topo.node
    assert node is not None
    subprocess.run(["ip", "-n", node, "link", "add", "v-net-0", "type", "bridge"], check=True)
    done = cnilab.run("step", "2")
    assert done.returncode == 4 and "link v-net-0" in done.stderr
    assert cnilab.run("teardown").returncode == 0


def test_an_address_already_in_use_stops_the_step(cnilab: Cnilab) -> None:
    assert cnilab.run("step", "1").returncode == 0
    node = cnilab.topo.node
    assert node is not None
    subprocess.run(["ip", "-n", node, "link", "add", "other0", "type", "bridge"], check=True)
    subprocess.run(["ip", "-n", node, "addr", "add", "192.168.15.5/24", "dev", "other0"],
                   check=True)
    done = cnilab.run("step", "2")
    assert done.returncode == 4 and "192.168.15.5/24 is already on other0" in done.stderr
    assert cnilab.observe().ns(node).link("v-net-0") is None  # type: ignore[union-attr]


def test_invalid_config_is_one_line_and_touches_nothing(cnilab: Cnilab, tmp_path: Path) -> None:
    bad = tmp_path / "lab.toml"
    bad.write_text('bridge = "bridge-name-too-long"\n')
    done = cnilab.run("--config", str(bad), "run-all", "--yes")
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "at most 15" in done.stderr
    assert "Traceback" not in done.stderr
    assert prefixed_netns(cnilab.prefix) == []


RED_BLUE = ('[[containers]]\nname = "red"\naddress = "192.168.15.1/24"\n{red}\n'
            '[[containers]]\nname = "blue"\naddress = "192.168.15.2/24"\n{blue}\n')


@pytest.mark.parametrize(("content", "message"), [
    (RED_BLUE.format(red='veth = "eth1"', blue='veth = "eth1"').encode(),
     "interface name 'eth1' is used twice"),
    (RED_BLUE.format(red="", blue='veth = "veth-red-br"').encode(),
     "interface name 'veth-red-br' is used twice"),
    (b'[[containers]]\nname = "r\\u0000d"\naddress = "192.168.15.1/24"\n', "control characters"),
    (b'node = "host\\u0000x"\n', "control characters"),
    (b'bridge = "br\xff"\n', "is not UTF-8 text"),
    (None, "is a directory"),
    (b"/proc/self/mem", "cannot be read"),
])
def test_a_bad_config_file_is_one_line_exit_2_and_touches_nothing(
        cnilab: Cnilab, tmp_path: Path, content: bytes | None, message: str) -> None:
    path = tmp_path / "lab.toml"
    if content is None:
        path.mkdir()
    elif content == b"/proc/self/mem":  # readable by no one: the read itself fails (EIO)
        path = Path("/proc/self/mem")
    else:
        path.write_bytes(content)
    done = cnilab.run("--config", str(path), "run-all", "--yes")
    assert done.returncode == 2, done.stderr
    assert done.stderr.count("\n") == 1 and message in done.stderr
    assert "Traceback" not in done.stderr and "\x00" not in done.stderr
    assert prefixed_netns(cnilab.prefix) == []


def test_teardown_leaves_the_machine_namespace_exactly_as_before(cnilab: Cnilab) -> None:
    before = root_namespace_state()
    assert cnilab.run("run-all", "--yes").returncode == 0
    assert len(prefixed_netns(cnilab.prefix)) == 4
    first = cnilab.run("teardown")
    assert first.returncode == 0 and "Teardown complete" in first.stdout
    assert prefixed_netns(cnilab.prefix) == []
    assert root_namespace_state() == before
    again = cnilab.run("teardown")
    assert again.returncode == 0 and "Nothing to remove" in again.stdout


def ledger_lines(cnilab: Cnilab) -> list[dict]:
    """The lab's ledger, one dict per line (none when there is no ledger)."""
    path = Path(cnilab.run_dir) / f"{cnilab.topo.lab_id}.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def killed_at(cnilab: Cnilab, where: str, *args: str) -> subprocess.CompletedProcess[str]:
    """Run cnilab with the test hook that makes it kill itself at a ledger write."""
    hooked = Cnilab(cnilab.prefix, cnilab.run_dir, {"CNILAB_TEST_KILL_AT": where})
    return hooked.run(*args)


# A full run-all writes 69 ledger lines (mode, then intent, [proof,] completion per op).
@pytest.mark.parametrize("where", [
    "ledger:1", "ledger:2", "ledger:3", "ledger-before:4", "ledger:5", "ledger-before:7",
    "ledger:22", "ledger-before:40", "ledger:55", "ledger-before:69"])
def test_sigkill_at_a_ledger_write_then_teardown_leaves_nothing_and_touches_nothing_else(
        cnilab: Cnilab, where: str) -> None:
    bystander = cnilab.prefix + "bystander"
    subprocess.run(["ip", "netns", "add", bystander], check=True)
    subprocess.run(["ip", "-n", bystander, "link", "add", "v-net-0", "type", "bridge"], check=True)
    before = root_namespace_state()
    done = killed_at(cnilab, where, "run-all", "--yes")
    assert done.returncode == -signal.SIGKILL, done.stderr  # the kill landed mid-run
    hook, number = where.split(":")
    assert len(ledger_lines(cnilab)) == int(number) - (hook == "ledger-before")
    torn = cnilab.run("teardown")
    assert torn.returncode == 0, torn.stderr
    assert prefixed_netns(cnilab.prefix) == [bystander]
    assert "v-net-0" in subprocess.run(["ip", "-n", bystander, "link"], capture_output=True,
                                       text=True, check=True).stdout
    assert root_namespace_state() == before
    assert ledger_lines(cnilab) == []


def test_ctrl_c_at_a_ledger_write_is_one_line_and_teardown_leaves_nothing(
        cnilab: Cnilab) -> None:
    done = killed_at(cnilab, "ledger:12:SIGINT", "run-all", "--yes")
    assert done.returncode == 130 and "interrupted" in done.stderr
    assert f"--prefix {cnilab.prefix} teardown" in done.stderr  # the hint reaches this lab
    assert "Traceback" not in done.stderr and prefixed_netns(cnilab.prefix) != []
    assert cnilab.run("teardown").returncode == 0
    assert prefixed_netns(cnilab.prefix) == [] and ledger_lines(cnilab) == []


def test_killed_right_after_the_intent_for_red_teardown_leaves_someone_elses_red(
        cnilab: Cnilab, tmp_path: Path) -> None:
    # Where the intent for red is written, from a complete step 1 of another lab.
    ref = Cnilab(cnilab.prefix + "ref-", tmp_path / "ref")
    assert ref.run("step", "1").returncode == 0
    intent = next(i for i, e in enumerate(ledger_lines(ref), 1)
                  if e.get("op") == "AddNetns" and e["name"] == ref.prefix + "red")
    assert ref.run("teardown").returncode == 0
    red = cnilab.prefix + "red"
    assert killed_at(cnilab, f"ledger:{intent}", "step", "1").returncode == -signal.SIGKILL
    assert ledger_lines(cnilab)[-1] == {"seq": ledger_lines(cnilab)[-1]["seq"],
                                        "op": "AddNetns", "netns": None, "name": red}
    assert red not in prefixed_netns(cnilab.prefix)  # the intent is written, red not made
    subprocess.run(["ip", "netns", "add", red], check=True)  # someone else makes red
    done = cnilab.run("teardown")
    assert done.returncode == 0, done.stderr
    assert prefixed_netns(cnilab.prefix) == [red]
    assert f"namespace {red} was not made by cnilab and stays" in done.stdout


def test_killed_after_red_was_made_before_its_completion_teardown_removes_red(
        cnilab: Cnilab, tmp_path: Path) -> None:
    ref = Cnilab(cnilab.prefix + "ref-", tmp_path / "ref")
    assert ref.run("step", "1").returncode == 0
    lines = ledger_lines(ref)
    seq = next(e["seq"] for e in lines if e.get("name") == ref.prefix + "red")
    completion = lines.index({"done": seq}) + 1
    assert ref.run("teardown").returncode == 0
    red = cnilab.prefix + "red"
    done = killed_at(cnilab, f"ledger-before:{completion}", "step", "1")
    assert done.returncode == -signal.SIGKILL
    assert red in prefixed_netns(cnilab.prefix)  # made, its completion never written
    assert {"done": seq} not in ledger_lines(cnilab)
    assert cnilab.run("teardown").returncode == 0
    assert prefixed_netns(cnilab.prefix) == []


def test_a_prefix_differing_only_in_its_last_character_is_another_lab(cnilab: Cnilab) -> None:
    assert cnilab.run("step", "1").returncode == 0
    made = prefixed_netns(cnilab.prefix)
    assert made
    for other in (cnilab.prefix[:-1] + "_", cnilab.prefix[:-1] + ".", cnilab.prefix[:-1]):
        done = Cnilab(other, cnilab.run_dir).run("teardown")
        assert done.returncode == 0 and "Nothing to remove" in done.stdout
        assert prefixed_netns(cnilab.prefix) == made


def test_teardown_skips_a_bad_ledger_line_with_one_warning_and_removes_the_rest(
        cnilab: Cnilab) -> None:
    theirs = cnilab.prefix + "theirs"
    subprocess.run(["ip", "netns", "add", theirs], check=True)
    assert cnilab.run("step", "1").returncode == 0
    ledger = Path(cnilab.run_dir) / f"{cnilab.topo.lab_id}.jsonl"
    bad = [{"op": "AddNetns", "netns": None, "name": theirs + "\u0000x"},
           {"op": "PlanCluster", "netns": None, "nodes": 2},
           ["not", "an", "object"]]
    with open(ledger, "a", encoding="utf-8") as f:
        f.writelines(json.dumps(line) + "\n" for line in bad)
    done = cnilab.run("teardown")
    assert done.returncode == 0, done.stderr
    warnings = done.stderr.strip().splitlines()
    assert len(warnings) == 3
    assert all(w.startswith("cnilab: warning: skipped line") for w in warnings)
    assert "Traceback" not in done.stderr
    assert prefixed_netns(cnilab.prefix) == [theirs]


def test_a_second_process_is_refused_while_the_lab_is_held(cnilab: Cnilab) -> None:
    from cnilab.ledger import Ledger

    held = Ledger(cnilab.topo.lab_id, str(cnilab.run_dir))
    with held.lock():
        done = cnilab.run("step", "1")
    assert done.returncode == 6
    assert f"another cnilab process (pid {os.getpid()})" in done.stderr
    assert prefixed_netns(cnilab.prefix) == []


def test_without_iptables_steps_1_to_7_work_and_step_8_says_how_to_install(
        cnilab: Cnilab) -> None:
    cnilab.extra_env = {"PATH": "/usr/bin:/bin"}  # iptables lives in /usr/sbin
    for n in range(1, 8):
        assert cnilab.run("step", str(n)).returncode == 0, n
    done = cnilab.run("step", "8")
    assert done.returncode == 7
    assert "iptables is not installed" in done.stderr and "apt-get install iptables" in done.stderr
    node = cnilab.topo.node
    snap = cnilab.observe()
    assert snap.ns(node).sysctls["net.ipv4.ip_forward"] == "0"  # type: ignore[union-attr]


def test_without_privileges_one_sentence_says_how_to_run_it(cnilab: Cnilab) -> None:
    # Every capability dropped (uid stays 0, so the venv under /root stays readable): exactly
    # "no CAP_NET_ADMIN", which is what an unprivileged user or a plain container has.
    no_caps = ("setpriv", "--bounding-set=-all", "--inh-caps=-all", "--")
    for command in (("step", "1"), ("run-all", "--yes"), ("status",), ("teardown",)):
        done = cnilab.run(*command, wrap=no_caps)
        assert done.returncode == 5, command
        assert done.stderr.count("\n") == 1 and "needs root" in done.stderr
        assert "sudo" in done.stderr and "Traceback" not in done.stderr
    assert prefixed_netns(cnilab.prefix) == []
    explained = cnilab.run("explain", "3", wrap=no_caps)  # teaching text needs no root
    assert explained.returncode == 0 and "veth" in explained.stdout


def test_in_place_mode_uses_the_namespace_it_runs_in_and_restores_ip_forward(
        cnilab: Cnilab) -> None:
    node = cnilab.prefix + "node"  # plays the lecture's machine; made here, not by cnilab
    subprocess.run(["ip", "netns", "add", node], check=True)
    inside = ("nsenter", f"--net=/run/netns/{node}")  # keeps the mount namespace: see shell
    # A new namespace copies ip_forward from the machine's: start from a known 0 in ours.
    subprocess.run([*inside, "sysctl", "-qw", "net.ipv4.ip_forward=0"], check=True)
    summary = json.loads(cnilab.run("--in-place", "run-all", "--yes", "--json",
                                    wrap=inside).stdout)
    assert summary["ok"] and len(summary["steps"]) == 8
    assert "iptables -t nat -A POSTROUTING" in summary["steps"][7]["commands"][-1]

    def node_sh(*argv: str) -> str:
        return subprocess.run([*inside, *argv], capture_output=True, text=True,
                              check=True).stdout

    assert node_sh("cat", "/proc/sys/net/ipv4/ip_forward").strip() == "1"
    assert "v-net-0" in node_sh("ip", "-o", "link")
    assert cnilab.run("--in-place", "teardown", wrap=inside).returncode == 0
    assert node_sh("cat", "/proc/sys/net/ipv4/ip_forward").strip() == "0"
    assert "v-net-0" not in node_sh("ip", "-o", "link")
    assert "veth" not in node_sh("ip", "-o", "link")
    assert "MASQUERADE" not in node_sh("iptables", "-t", "nat", "-S")
    assert prefixed_netns(cnilab.prefix) == [node]  # the node is not cnilab's: it stays


def test_mixing_modes_on_one_lab_is_refused(cnilab: Cnilab) -> None:
    assert cnilab.run("step", "1").returncode == 0
    node = cnilab.prefix + "node"
    subprocess.run(["ip", "netns", "add", node], check=True)
    done = cnilab.run("--in-place", "step", "2", wrap=("nsenter", f"--net=/run/netns/{node}"))
    assert done.returncode == 2 and "already up in isolated mode" in done.stderr


def test_status_checks_the_kernel_not_a_memory(cnilab: Cnilab) -> None:
    assert cnilab.run("run-all", "--yes", "--no-proof").returncode == 0
    node = cnilab.topo.node
    assert node is not None
    subprocess.run(["ip", "-n", node, "link", "set", "veth-red-br", "nomaster"], check=True)
    steps = cnilab.json("status")["steps"]
    assert steps["5"] is False and steps["4"] is True
    assert build_steps(cnilab.topo)[4].number == 5


def test_in_a_terminal_run_all_explains_pauses_and_stops_on_q(cnilab: Cnilab) -> None:
    import fcntl
    import pty
    import select
    import struct
    import termios

    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))  # 80x24
    proc = subprocess.Popen(cnilab.argv("run-all"), env=cnilab.env(), stdin=follower,
                            stdout=follower, stderr=follower, close_fds=True)
    os.close(follower)
    seen = b""

    def read_until(marker: bytes, timeout: float = 30, start: int = 0) -> None:
        nonlocal seen
        deadline = time.monotonic() + timeout
        while marker not in seen[start:] and time.monotonic() < deadline:
            ready, _, _ = select.select([leader], [], [], 0.2)
            if ready:
                try:
                    seen += os.read(leader, 65536)
                except OSError:
                    break
        assert marker in seen[start:], seen.decode(errors="replace")[-2000:]

    try:
        read_until(b"Enter runs it, q stops: ")
        assert b"Next: step 1" in seen and b"What it does" in seen
        os.write(leader, b"\n")
        # Step 1's result, paged to the 24 lines; its diagram right above the last prompt.
        for _ in range(10):
            before = len(seen)
            read_until(b"q stops: ", start=before)
            if b"on to step 2" in seen[before:]:
                break
            assert b"Enter: more" in seen[before:]
            os.write(leader, b"\n")
        tail = seen[seen.rindex(b"Commands"):]
        assert tail.rindex(b"container: ") < tail.rindex(b"on to step 2")
        os.write(leader, b"\n")
        read_until(b"Next: step 2")
        os.write(leader, b"q\n")
        assert proc.wait(timeout=30) == 0
        read_until(b"run-all --from 2")
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(leader)
    steps = cnilab.json("status")["steps"]
    assert steps["1"] is True and steps["2"] is False


def test_doctor_checks_the_machine_for_real_and_sees_leftovers(cnilab: Cnilab) -> None:
    first = cnilab.run("doctor")
    assert first.returncode == 0, first.stdout
    for name in ("privileges", "iptables", "netns", "bridge", "veth", "nf_nat", "names"):
        assert f"✔ {name}" in first.stdout, name
    assert prefixed_netns(cnilab.prefix) == []  # its probe namespace is gone again
    assert cnilab.run("step", "1").returncode == 0
    second = cnilab.run("doctor")
    assert second.returncode == 1 and "✘ leftovers" in second.stdout


def test_every_probe_from_or_to_a_namespace_that_is_gone_fails_with_a_reason(
        prefix: str) -> None:
    """A student may remove a namespace: the probes say so, they never raise."""
    gone, here = prefix + "gone", prefix + "here"
    subprocess.run(["ip", "netns", "add", here], check=True)
    subprocess.run(["ip", "-n", here, "link", "set", "lo", "up"], check=True)
    assert proofs.ping(gone, "192.168.15.2")
    assert proofs.seen_source(gone, here, "127.0.0.1")[0] is None  # the client's is gone
    assert proofs.seen_source(here, gone, "127.0.0.1")[0] is None  # the listener's is gone
    seen, why = proofs.ping_seen_by(here, gone, "127.0.0.1", 4242)
    assert seen is None and why
    body, why = proofs.http_get(gone, "192.168.15.2", 80)
    assert body is None and why
