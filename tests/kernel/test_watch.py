"""`cnilab watch --json-lines` as a user runs it, while `ip` (not cnilab) changes the kernel."""

from __future__ import annotations

import signal
import subprocess
from collections.abc import Iterator

import pytest
from helpers import WAIT, Cnilab, Watching, goes_idle, ip


@pytest.fixture
def watching(cnilab: Cnilab) -> Iterator[Watching]:
    """`cnilab watch --json-lines` under the test's prefix; stopped (SIGINT) afterwards."""
    proc = subprocess.Popen(cnilab.argv("watch", "--json-lines"), env=cnilab.env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    w = Watching(proc)
    try:
        yield w
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=WAIT)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def test_changes_typed_with_ip_each_arrive_as_one_event(cnilab: Cnilab) -> None:
    ns = f"{cnilab.prefix}red"
    ip("netns", "add", ns)
    for dev in ("lab0", "lab1", "lab2"):
        ip("-n", ns, "link", "add", dev, "type", "bridge")
    ip("-n", ns, "link", "set", "lab0", "up")
    ip("-n", ns, "addr", "add", "10.98.0.1/24", "dev", "lab2")
    ip("-n", ns, "link", "set", "lab2", "up")
    proc = subprocess.Popen(cnilab.argv("watch", "--json-lines"), env=cnilab.env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    w = Watching(proc)
    try:
        state = w.next_line()
        assert state["kind"] == "state"
        links = {ln["name"]: ln for ln in state["state"]["spaces"][ns]["links"]}
        assert links["lab0"]["up"] is True

        ip("-n", ns, "link", "set", "lab0", "down")
        down = w.until(lambda e: e["kind"] == "link" and e["name"] == "lab0")
        assert (down["netns"], down["change"]) == (ns, "changed")
        assert (down["old"]["up"], down["new"]["up"]) == (True, False)
        # Down also takes the carrier (IFF_LOWER_UP) with it, where the kernel had given one.
        assert set(down["old"]) == set(down["new"]) and set(down["new"]) <= {"up", "carrier"}
        assert down["new"].get("carrier") in (None, False)

        ip("-n", ns, "addr", "add", "10.99.0.1/24", "dev", "lab1")
        added = w.until(lambda e: e["kind"] == "address")
        assert (added["netns"], added["name"], added["change"]) == (ns, "10.99.0.1/24", "added")
        assert added["new"] == {"dev": "lab1"}

        ip("-n", ns, "route", "add", "10.97.0.0/24", "via", "10.98.0.2")
        route = w.until(lambda e: e["kind"] == "route" and e["name"] == "10.97.0.0/24")
        assert (route["netns"], route["change"]) == (ns, "added")
        assert route["new"] == {"gateway": "10.98.0.2", "dev": "lab2"}

        extra = f"{cnilab.prefix}extra"
        ip("netns", "add", extra)
        made = w.until(lambda e: e["kind"] == "netns")
        assert (made["name"], made["change"]) == (extra, "added")
        ip("netns", "del", extra)
        gone = w.until(lambda e: e["kind"] == "netns")
        assert (gone["name"], gone["change"]) == (extra, "removed")

        proc.send_signal(signal.SIGINT)  # Ctrl-C
        assert proc.wait(timeout=WAIT) == 0
        while w.lines.get(timeout=WAIT) is not None:  # whatever was still on its way
            pass
        assert proc.stderr is not None and proc.stderr.read() == ""
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    # Each change was one event: no repeats from the kernel's several messages per command.
    assert w.count(ns, "link", "lab0") == 1
    assert w.count(ns, "address", "10.99.0.1/24") == 1
    assert w.count(ns, "route", "10.97.0.0/24") == 1
    assert w.count(extra, "netns", extra) == 2  # made, removed


def test_steps_show_as_done_when_the_kernel_holds_them(cnilab: Cnilab,
                                                       watching: Watching) -> None:
    assert watching.next_line()["kind"] == "state"
    assert cnilab.run("step", "1").returncode == 0
    done = watching.until(lambda e: e["kind"] == "steps" and 1 in e["new"]["done"])
    assert done["netns"] is None
    # Undone by hand, behind cnilab's back: the view follows the kernel, not the ledger.
    ip("netns", "del", cnilab.topo.netns(cnilab.topo.containers[0]))
    undone = watching.until(lambda e: e["kind"] == "steps")
    assert 1 not in undone["new"]["done"]


def test_watching_an_idle_lab_uses_no_cpu(cnilab: Cnilab, watching: Watching) -> None:
    assert watching.next_line()["kind"] == "state"
    ip("netns", "add", f"{cnilab.prefix}red")
    watching.until(lambda e: e["kind"] == "netns")
    # Idle (no kernel change under this prefix): a polling loop would burn ticks every second.
    assert goes_idle(watching.proc.pid)


def test_watch_and_status_agree_on_the_steps_done_after_step_9(cnilab: Cnilab) -> None:
    # Step 9 starts a server: no kernel event says a socket listens, so watch reads the
    # server's namespace when it starts (and with its links); it must not say 1..8.
    assert cnilab.run("run-all", "--yes", "--no-proof", "--to", "9").returncode == 0
    status = cnilab.json("status")["steps"]
    assert status == {str(n): True for n in range(1, 10)}
    proc = subprocess.Popen(cnilab.argv("watch", "--json-lines"), env=cnilab.env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        state = Watching(proc).next_line()
        assert state["kind"] == "state" and state["steps"] == status
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=WAIT)
