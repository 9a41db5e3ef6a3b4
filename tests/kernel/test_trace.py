"""`cnilab trace` against the real kernel: delivered paths, every reason a packet dies, and the
trace's own tables gone afterwards (also after Ctrl-C, and after SIGKILL + teardown).

One lab (steps 1-9) is shared by the path and reason tests; each reason test breaks one thing
and puts it back, even when it fails.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers import Cnilab, prefixed_netns

from tests.conftest import remove_prefixed_netns

HOP_KEYS = {"netns", "dev", "direction", "src", "dst", "note"}
MASQ = ["POSTROUTING", "-s", "192.168.15.0/24", "!", "-o", "v-net-0", "-m", "comment",
        "--comment", "{mark}", "-j", "MASQUERADE"]  # the lab's own mark: names.Identity.mark


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cnilab]:
    """The whole lab, step 9 included, under a prefix of its own for this module."""
    prefix = f"ct{uuid.uuid4().hex[:6]}-"
    runner = Cnilab(prefix, tmp_path_factory.mktemp("trace") / "run")
    try:
        done = runner.run("run-all", "--yes", "--no-proof", "--to", "9")
        assert done.returncode == 0, done.stderr
        yield runner
    finally:
        runner.run("teardown")
        remove_prefixed_netns(prefix)


def trace(c: Cnilab, *args: str) -> dict[str, Any]:
    """`cnilab trace ... --json`, parsed (exit 0 delivered, 1 died)."""
    done = c.run("trace", *args, "--json")
    assert done.returncode in (0, 1), done.stderr
    data = json.loads(done.stdout)
    assert (done.returncode == 0) == (data["delivered"] and (
        data["reply"] is None or data["reply"]["delivered"]))
    return data


def sh(*argv: str) -> str:
    """Run a command; it must succeed."""
    return subprocess.run(argv, capture_output=True, text=True, check=True).stdout


def rulesets(c: Cnilab) -> dict[str, str]:
    """Every lab namespace's netfilter rules, without counters (a packet moves those)."""
    found = {}
    for ns in c.topo.namespaces():
        if ns in prefixed_netns(c.prefix):
            found[ns] = sh("ip", "netns", "exec", ns, "nft", "-s", "list", "ruleset")
            found[ns + " iptables"] = sh("ip", "netns", "exec", ns, "iptables-save")
    for key in list(found):
        if key.endswith("iptables"):  # the header and footer carry the time of the dump
            found[key] = "\n".join(ln for ln in found[key].splitlines()
                                   if ln and not ln.startswith("#"))
            # ":CHAIN POLICY [packets:bytes]": iptables 1.8.11 (Debian 13) counts base chains.
            found[key] = "\n".join(ln.split(" [")[0] for ln in found[key].splitlines())
    return found


def ns(c: Cnilab, role: str) -> str | None:
    """The namespace of a role under this lab's prefix."""
    t = c.topo
    return {"host": t.node, "internet": t.internet, "red": t.netns(t.containers[0]),
            "blue": t.netns(t.containers[1])}[role]


def test_red_to_blue_crosses_the_bridge_and_the_reply_comes_back(lab: Cnilab) -> None:
    before = rulesets(lab)
    data = trace(lab, "red", "192.168.15.2")
    assert set(data) >= {"delivered", "hops", "nat", "dropped", "reply"}
    assert data["delivered"] and data["dropped"] is None and data["nat"] == []
    assert all(set(h) == HOP_KEYS for h in data["hops"] + data["reply"]["hops"])
    path = [(h["netns"], h["dev"], h["direction"]) for h in data["hops"]]
    assert path == [(ns(lab, "red"), "veth-red", "out"), (ns(lab, "host"), "veth-red-br", "in"),
                    (ns(lab, "host"), "veth-blue-br", "out"), (ns(lab, "blue"), "veth-blue", "in")]
    assert all((h["src"], h["dst"]) == ("192.168.15.1", "192.168.15.2") for h in data["hops"])
    assert "FDB" in data["hops"][2]["note"] or "floods" in data["hops"][2]["note"]
    assert "route: 192.168.15.2 dev veth-red" in data["hops"][0]["note"]
    back = data["reply"]
    assert back["delivered"] and back["hops"][-1]["netns"] == ns(lab, "red")
    assert rulesets(lab) == before  # the trace's tables came and went
    assert "AddTraceTable" not in (lab.run_dir / f"{lab.topo.lab_id}.jsonl").read_text()


def test_red_to_the_outside_shows_masquerade_rewriting_the_source(lab: Cnilab) -> None:
    data = trace(lab, "red", "203.0.113.1")
    assert data["delivered"] and data["reply"]["delivered"]
    [nat] = data["nat"]
    assert nat["netns"] == ns(lab, "host") and "MASQUERADE" in nat["rule"]
    assert nat["before"] == {"src": "192.168.15.1", "dst": "203.0.113.1"}
    assert nat["after"] == {"src": "203.0.113.2", "dst": "203.0.113.1"}
    out = next(h for h in data["hops"] if h["dev"] == "eth0" and h["direction"] == "out")
    assert out["src"] == "203.0.113.2" and "MASQUERADE" in out["note"]
    arrived = data["hops"][-1]
    assert (arrived["netns"], arrived["src"]) == (ns(lab, "internet"), "203.0.113.2")
    assert data["reply"]["hops"][-1]["dst"] == "192.168.15.1"  # conntrack undid it


def test_outside_to_the_published_port_shows_the_dnat_to_blue(lab: Cnilab) -> None:
    data = trace(lab, "internet", "203.0.113.2", "--port", "8080")
    assert data["delivered"] and data["reply"]["delivered"] and data["proto"] == "tcp"
    [nat] = data["nat"]
    assert "DNAT --to-destination 192.168.15.2:80" in nat["rule"]
    assert nat["before"]["dst"] == "203.0.113.2:8080" and nat["after"]["dst"] == "192.168.15.2:80"
    arrived = data["hops"][-1]
    assert (arrived["netns"], arrived["dev"]) == (ns(lab, "blue"), "veth-blue")
    assert arrived["dst"] == "192.168.15.2:80"
    assert data["reply"]["hops"][-1]["src"] == "203.0.113.2:8080"


def test_the_rich_path_fits_80_columns_in_english_and_korean(lab: Cnilab) -> None:
    for lang in ("en", "ko"):
        done = lab.run("--lang", lang, "trace", "red", "203.0.113.1",
                       wrap=("env", "COLUMNS=80"))
        assert done.returncode == 0, done.stderr
        assert "MASQUERADE" in done.stdout and "192.168.15.1 → 203.0.113.1" in done.stdout
        assert ("delivered" if lang == "en" else "도착") in done.stdout
        assert max(len(ln.rstrip()) for ln in done.stdout.splitlines()) <= 80


def _in(c: Cnilab, role: str, *argv: str) -> tuple[str, ...]:
    where = ns(c, role)
    assert where is not None
    return ("ip", "netns", "exec", where, *argv)


REASONS = [  # (reason, break it, put it back, trace args, where it dies, at, in the reply)
    ("no_route", [("red", "ip", "route", "del", "default")],
     [("red", "ip", "route", "add", "default", "via", "192.168.15.5")],
     ("red", "203.0.113.1"), "red", None, False),
    ("forwarding_off", [("host", "sysctl", "-qw", "net.ipv4.ip_forward=0")],
     [("host", "sysctl", "-qw", "net.ipv4.ip_forward=1")],
     ("red", "203.0.113.1"), "host", "v-net-0", False),
    ("link_down", [("red", "ip", "link", "set", "veth-red", "down")],
     [("red", "ip", "link", "set", "veth-red", "up"),
      ("red", "ip", "route", "add", "default", "via", "192.168.15.5")],
     ("red", "192.168.15.2"), "red", "veth-red", False),
    ("no_carrier", [("host", "ip", "link", "set", "veth-red-br", "down")],
     [("host", "ip", "link", "set", "veth-red-br", "up")],
     ("red", "192.168.15.2"), "red", "veth-red", False),
    ("not_bridge_port", [("host", "ip", "link", "set", "veth-blue-br", "nomaster")],
     [("host", "ip", "link", "set", "veth-blue-br", "master", "v-net-0")],
     ("red", "192.168.15.2"), "host", "veth-blue-br", False),
    ("arp_unanswered", [], [], ("red", "192.168.15.9"), "red", "veth-red", False),
    ("rule_drop", [("host", "iptables", "-I", "FORWARD", "-d", "203.0.113.1", "-j", "DROP")],
     [("host", "iptables", "-D", "FORWARD", "-d", "203.0.113.1", "-j", "DROP")],
     ("red", "203.0.113.1"), "host", "v-net-0", False),
    ("policy_drop", [("host", "iptables", "-P", "FORWARD", "DROP")],
     [("host", "iptables", "-P", "FORWARD", "ACCEPT")],
     ("red", "203.0.113.1"), "host", "v-net-0", False),
    ("no_listener", [], [], ("red", "192.168.15.2", "--port", "81"), "blue", "veth-blue", False),
    ("no_listener", [], [], ("red", "192.168.15.2", "--port", "81", "--proto", "udp"),
     "blue", "veth-blue", False),
    ("no_way_back", [("host", "iptables", "-t", "nat", "-D", *MASQ)],
     [("host", "iptables", "-t", "nat", "-A", *MASQ)],
     ("red", "203.0.113.1"), "internet", None, True),
]


@pytest.mark.parametrize(("reason", "breaks", "fixes", "args", "where", "dev", "in_reply"),
                         REASONS, ids=[f"{r[0]}-{i}" for i, r in enumerate(REASONS)])
def test_each_reason_is_produced_and_named(
        lab: Cnilab, reason: str, breaks: list[tuple[str, ...]], fixes: list[tuple[str, ...]],
        args: tuple[str, ...], where: str, dev: str | None, in_reply: bool) -> None:
    mark = lab.topo.identity.mark
    try:
        for role, *argv in breaks:
            sh(*_in(lab, role, *(a.format(mark=mark) for a in argv)))
        data = trace(lab, *args)
    finally:
        for role, *argv in fixes:
            subprocess.run(_in(lab, role, *(a.format(mark=mark) for a in argv)),
                           capture_output=True, check=False)
    dropped = data["reply"]["dropped"] if in_reply else data["dropped"]
    assert dropped is not None, data
    assert dropped["reason"] == reason, dropped
    assert (dropped["netns"], dropped["dev"]) == (ns(lab, where), dev), dropped
    assert dropped["text"] and dropped["hint"]
    assert data["delivered"] == in_reply
    if reason == "rule_drop":
        assert "-A FORWARD -d 203.0.113.1/32 -j DROP" in dropped["text"]
    if reason == "no_way_back":
        assert "MASQUERADE" in dropped["hint"]
    if reason == "no_listener":
        assert data["reply"]["delivered"]  # the refusal itself came back to red


def test_bad_input_is_one_line_and_touches_nothing(lab: Cnilab) -> None:
    before = rulesets(lab)
    for args, words in ((("purple", "192.168.15.2"), "no 'purple'"),
                        (("red", "8.8.8.8"), "not an address of the lab"),
                        (("red", "banana"), "not an IPv4 address"),
                        (("red", "192.168.15.2", "--proto", "udp"), "needs a --port"),
                        (("red", "192.168.15.2", "--proto", "icmp", "--port", "80"), "--port"),
                        (("red", "192.168.15.2", "--port", "70000"), "65535")):
        done = lab.run("trace", *args)
        assert done.returncode == 2, (args, done.stderr)
        assert done.stderr.count("\n") == 1 and words in done.stderr, done.stderr
    assert rulesets(lab) == before


def _killed_trace(c: Cnilab, sig: signal.Signals, *wrap: str) -> int:
    """Start a trace whose probe waits for a second, send `sig` while its tables exist."""
    proc = subprocess.Popen(c.argv(*(["--in-place"] if wrap else []), "trace", "red",
                                   "192.168.15.9", wrap=wrap), env=c.env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    where = (*wrap, "nft", "list", "tables") if wrap else (
        "ip", "netns", "exec", c.topo.node or "", "nft", "list", "tables")
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and proc.poll() is None:
            if "cnilab_trace" in subprocess.run(where, capture_output=True, text=True,
                                                check=False).stdout:
                break
            time.sleep(0.005)
        os.kill(proc.pid, sig)
    finally:
        code = proc.wait()
    return code


def _trace_tables(*where: str) -> str:
    return subprocess.run([*where, "nft", "list", "tables"], capture_output=True, text=True,
                          check=False).stdout


def test_ctrl_c_during_a_trace_removes_its_tables(cnilab: Cnilab) -> None:
    assert cnilab.run("run-all", "--yes", "--no-proof").returncode == 0
    before = rulesets(cnilab)
    assert _killed_trace(cnilab, signal.SIGINT) == 130
    assert rulesets(cnilab) == before
    for space in prefixed_netns(cnilab.prefix):
        assert "cnilab_trace" not in _trace_tables("ip", "netns", "exec", space)
    assert "AddTraceTable" not in (cnilab.run_dir / f"{cnilab.topo.lab_id}.jsonl").read_text()


def test_a_killed_trace_is_cleaned_by_the_next_trace_and_by_teardown(cnilab: Cnilab) -> None:
    assert cnilab.run("run-all", "--yes", "--no-proof").returncode == 0
    before = rulesets(cnilab)
    assert _killed_trace(cnilab, signal.SIGKILL) == -signal.SIGKILL
    ledger = cnilab.run_dir / f"{cnilab.topo.lab_id}.jsonl"
    assert "AddTraceTable" in ledger.read_text()  # recorded before it was made
    assert rulesets(cnilab) != before  # the table is still there
    assert trace(cnilab, "red", "192.168.15.2")["delivered"]
    assert rulesets(cnilab) == before and "AddTraceTable" not in ledger.read_text()
    left_for_serve = cnilab.run_dir / f"{cnilab.topo.lab_id}.trace.json"
    assert left_for_serve.exists()
    assert _killed_trace(cnilab, signal.SIGKILL) == -signal.SIGKILL
    assert cnilab.run("teardown").returncode == 0
    assert prefixed_netns(cnilab.prefix) == [] and not ledger.exists()
    assert not left_for_serve.exists()  # the page shows no trace of a lab that is gone


def test_in_place_a_killed_trace_is_removed_by_teardown_from_the_node(cnilab: Cnilab) -> None:
    node = cnilab.prefix + "node"  # plays the machine; made here, not by cnilab: it stays
    subprocess.run(["ip", "netns", "add", node], check=True)
    inside = ("nsenter", f"--net=/run/netns/{node}")
    assert cnilab.run("--in-place", "run-all", "--yes", "--no-proof",
                      wrap=inside).returncode == 0
    # In place the node is "this namespace" (None): the walk goes through it, not stops there.
    done = cnilab.run("--in-place", "trace", "red", "192.168.15.2", "--json", wrap=inside)
    seen = json.loads(done.stdout)
    assert done.returncode == 0 and seen["delivered"], done.stdout
    assert list(dict.fromkeys(h["netns"] for h in seen["hops"])) == [
        cnilab.prefix + "red", None, cnilab.prefix + "blue"], seen["hops"]
    assert _killed_trace(cnilab, signal.SIGKILL, *inside) == -signal.SIGKILL
    assert "cnilab_trace" in _trace_tables(*inside)
    assert cnilab.run("--in-place", "teardown", wrap=inside).returncode == 0
    assert "cnilab_trace" not in _trace_tables(*inside)
    assert "MASQUERADE" not in sh(*inside, "iptables", "-t", "nat", "-S")
    assert prefixed_netns(cnilab.prefix) == [node]


@pytest.mark.parametrize("where", ["ledger:1", "ledger-before:2"])
def test_in_place_a_trace_killed_around_its_nft_leaves_only_what_is_provably_ours(
        cnilab: Cnilab, where: str) -> None:
    """Killed after the node's intent (before nft ran: someone else then takes the name) or
    after nft made the tables but before the completion line (they carry our comment)."""
    node = cnilab.prefix + "node"
    subprocess.run(["ip", "netns", "add", node], check=True)
    inside = ("nsenter", f"--net=/run/netns/{node}")
    assert cnilab.run("--in-place", "run-all", "--yes", "--no-proof",
                      wrap=inside).returncode == 0
    hooked = Cnilab(cnilab.prefix, cnilab.run_dir, {"CNILAB_TEST_KILL_AT": where})
    done = hooked.run("--in-place", "trace", "red", "192.168.15.2", wrap=inside)
    assert done.returncode == -signal.SIGKILL, done.stderr
    ledger = (cnilab.run_dir / f"{cnilab.topo.lab_id}.jsonl").read_text()
    assert '"op": "AddTraceTable", "netns": null' in ledger and '"done"' not in ledger[
        ledger.index("AddTraceTable"):]
    made = "cnilab_trace" in _trace_tables(*inside)
    assert made == (where == "ledger-before:2")
    if not made:  # someone else's table of that name, after the kill; its chain says "cnilab"
        sh(*inside, "nft", 'create table inet cnilab_trace; add chain inet cnilab_trace mine '
                           '{ comment "cnilab"; }')
        again = cnilab.run("--in-place", "trace", "red", "192.168.15.2", wrap=inside)
        assert again.returncode == 4 and "cnilab_trace already exists" in again.stderr
        assert "chain mine" in sh(*inside, "nft", "list", "table", "inet", "cnilab_trace")
    torn = cnilab.run("--in-place", "teardown", wrap=inside)
    assert torn.returncode == 0, torn.stderr
    left = _trace_tables(*inside)
    assert ("table inet cnilab_trace" in left) == (not made), left
    assert "MASQUERADE" not in sh(*inside, "iptables", "-t", "nat", "-S")
    assert prefixed_netns(cnilab.prefix) == [node]


def test_the_trace_takes_its_probe_from_the_source_namespace_only(cnilab: Cnilab) -> None:
    """Nothing of a trace touches the machine's own namespace."""
    from helpers import root_namespace_state

    assert cnilab.run("run-all", "--yes", "--no-proof").returncode == 0
    state = root_namespace_state()
    tables = _trace_tables()
    assert trace(cnilab, "red", "203.0.113.1")["delivered"]
    assert root_namespace_state() == state and _trace_tables() == tables
    assert Path("/proc/sys/net/ipv4/ip_forward").read_text() == state["ip_forward"]


def test_a_trace_table_that_is_not_ours_stops_the_trace_and_stays(lab: Cnilab) -> None:
    red = _in(lab, "red")
    sh(*red, "nft", "create table inet cnilab_trace; add chain inet cnilab_trace mine")
    try:
        done = lab.run("trace", "red", "192.168.15.2")
        assert done.returncode == 4, done.stderr
        assert "cnilab_trace already exists" in done.stderr and done.stderr.count("\n") == 1
        assert "chain mine" in sh(*red, "nft", "list", "table", "inet", "cnilab_trace")
        host = _in(lab, "host")
        assert "cnilab_trace" not in _trace_tables(*host)  # what it had made is gone again
    finally:
        subprocess.run([*red, "nft", "delete table inet cnilab_trace"], check=False)
