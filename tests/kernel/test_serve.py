"""`cnilab serve` as an instructor runs it, looked at by a real headless browser (chromium): the
lab's boxes, bridge and cables; a link set down by hand with `ip`; a trace run in a terminal.

The server listens on 127.0.0.1, on a port it picks (--port 0); chromium runs with a fresh
profile and is ended by its PID. Screenshots land in the test's tmp folder, or in
$CNILAB_SCREENSHOTS when set (to look at them).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from browser import Browser, chromium
from helpers import WAIT, Cnilab, cluster_up, goes_idle, ip

# The issue's own requirement: a change shows on the page within a second. Measured from just
# before `ip` runs to the moment the page has drawn it (both clocks are this machine's).
WITHIN = 1.0

pytestmark = pytest.mark.skipif(chromium() is None,
                                reason="chromium is not installed (apt-get install chromium; "
                                       "`make test` installs it)")


class Serving:
    """A running `cnilab serve --port 0` and the URL it printed."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.proc = proc
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert "http://127.0.0.1:" in line, line + (proc.stderr.read() if proc.stderr else "")
        self.url = line[line.index("http://"):].split()[0]

    def stop(self) -> int:
        """Ctrl-C, as the instructor ends it; the exit status."""
        self.proc.send_signal(signal.SIGINT)
        return self.proc.wait(timeout=WAIT)


@pytest.fixture
def serving(cnilab: Cnilab) -> Iterator[Serving]:
    """The lab built (all eight steps), then `serve` on it; stopped by its PID afterwards."""
    assert cnilab.run("run-all", "--yes", "--no-proof").returncode == 0
    proc = subprocess.Popen(cnilab.argv("serve", "--port", "0"), env=cnilab.env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        yield Serving(proc)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.fixture
def shots(tmp_path: Path) -> Path:
    """Where screenshots go."""
    folder = Path(os.environ.get("CNILAB_SCREENSHOTS") or tmp_path / "shots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def open_page(url: str, width: int, height: int, tmp_path: Path) -> Browser:
    """Chromium on `url` at width x height, once the page has drawn its first scene."""
    profile = tmp_path / f"chromium-{width}x{height}"
    browser = Browser(url, width, height, profile)
    try:
        browser.until("document.body.dataset.version")
    except BaseException:
        browser.close()
        raise
    return browser


# Where a cable crosses a box's words (a title, a bridge's line, a route, a link, a port), which
# is painted on top, as the browser stacks them (elementsFromPoint, every 2 px of each cable):
# [points where the words are, [words under a cable]].
CROSSINGS = """(() => {
  const svg = document.getElementById('cables');
  const words = [...document.querySelectorAll(
      '.box h3, .switch > .link, .lines h4, .lines li, ul.links li, .port')];
  const frame = svg.getBoundingClientRect();
  svg.style.pointerEvents = 'auto';
  let under = 0;
  const over = new Set();
  for (const path of svg.querySelectorAll('path')) {
    path.style.pointerEvents = 'stroke';
    for (let d = 6; d < path.getTotalLength() - 6; d += 2) {
      const pt = path.getPointAtLength(d);
      const stack = document.elementsFromPoint(frame.left + pt.x, frame.top + pt.y);
      const at = stack.indexOf(path);
      const word = stack.findIndex(e => words.some(w => w === e || w.contains(e)));
      if (at < 0 || word < 0) continue;
      if (word < at) under += 1; else over.add(stack[word].textContent.slice(0, 40));
    }
    path.style.pointerEvents = '';
  }
  svg.style.pointerEvents = '';
  return [under, [...over]];
})()"""


def test_the_page_draws_the_lab_follows_ip_within_a_second_and_shows_a_trace(
        cnilab: Cnilab, serving: Serving, tmp_path: Path, shots: Path) -> None:
    p, node = cnilab.prefix, cnilab.topo.node
    browser = open_page(serving.url, 1280, 720, tmp_path)
    try:
        boxes = browser.evaluate("[...document.querySelectorAll('.box')].map(b => b.dataset.ns)")
        assert sorted(boxes) == sorted([f"{p}red", f"{p}blue", f"{p}cnilab-host",
                                        f"{p}cnilab-internet"])
        ports = browser.evaluate("[...document.querySelectorAll('.switch .port')]"
                                 ".map(e => e.dataset.end)")
        assert ports == [f"{node}/veth-red-br", f"{node}/veth-blue-br"]
        cables = browser.evaluate("[...document.querySelectorAll('path.cable')]"
                                  ".map(c => [c.dataset.a, c.dataset.b, c.getAttribute('class'),"
                                  " c.getTotalLength()])")
        assert {frozenset(c[:2]) for c in cables} == {
            frozenset((f"{p}red/veth-red", f"{node}/veth-red-br")),
            frozenset((f"{p}blue/veth-blue", f"{node}/veth-blue-br")),
            frozenset((f"{node}/eth0", f"{p}cnilab-internet/eth0"))}
        assert all("up" in c[2].split() and c[3] > 10 for c in cables)  # drawn, not dots
        under, over = browser.evaluate(CROSSINGS)
        assert under > 0 and over == []  # the red cable passes under the node's title
        browser.screenshot(shots / "serve-1280x720.png")

        # A link set down by hand: its port turns DOWN and its cable dashed, within a second.
        seen = browser.send("Runtime.evaluate", awaitPromise=True, returnByValue=True,
                            expression=f"""new Promise(resolve => {{
              const look = () => {{
                const port = document.querySelector('[data-end="{node}/veth-red-br"]');
                const cable = document.querySelector('path.cable.down');
                if (port && port.classList.contains('down') && cable) resolve(Date.now());
                else requestAnimationFrame(look);
              }};
              look();
            }})""")
        before = time.time()
        ip("-n", node, "link", "set", "veth-red-br", "down")
        drawn = browser.result(seen, WAIT)["result"]["value"] / 1000
        assert drawn - before < WITHIN, f"drawn {drawn - before:.3f} s after `ip`"
        assert browser.evaluate("document.querySelector('.port.lit') !== null")  # highlighted
        ip("-n", node, "link", "set", "veth-red-br", "up")
        browser.until(f"""!document.querySelector('[data-end="{node}/veth-red-br"]')
                          .classList.contains('down')""")

        # A trace run in a terminal: its hops along the cables, the NAT rewrite, the verdict.
        done = cnilab.run("trace", "red", "203.0.113.1")
        assert done.returncode == 0, done.stdout + done.stderr
        hops = browser.until("document.querySelectorAll('ol.hops > li').length >= 4 && "
                             "[...document.querySelectorAll('.hop-badge')]"
                             ".map(b => b.parentElement.dataset.end)")
        assert hops[0] == f"{p}red/veth-red" and hops[-1] == f"{p}cnilab-internet/eth0"
        assert browser.evaluate("document.querySelectorAll('path.cable.traced').length") >= 2
        nat = browser.evaluate("document.querySelector('.nat-rewrite').textContent")
        assert "192.168.15.1" in nat and "203.0.113.2" in nat
        assert browser.evaluate("document.querySelector('.verdict.ok') !== null")
        browser.until("!document.querySelector('.lit')", timeout=WAIT)  # the highlights fade
        browser.screenshot(shots / "serve-trace-1280x720.png")

        # A trace that dies: where (a red mark on blue's port) and why, in words.
        ip("-n", node, "link", "set", "veth-blue-br", "down")
        died = cnilab.run("trace", "red", "192.168.15.2")
        assert died.returncode == 1, died.stdout + died.stderr
        dead = browser.until("document.querySelector('.verdict.bad') && "
                             "document.querySelector('.hop-badge.dead')"
                             ".parentElement.dataset.end")
        assert dead == f"{node}/veth-blue-br"
        assert "veth-blue-br" in browser.evaluate("document.querySelector('.verdict').textContent")
        ip("-n", node, "link", "set", "veth-blue-br", "up")
    finally:
        browser.close()

    small = open_page(serving.url + "?lang=ko", 800, 600, tmp_path)
    try:
        assert "실습" in small.evaluate("document.getElementById('title').textContent")
        assert small.evaluate("document.documentElement.lang") == "ko"
        assert small.evaluate("document.querySelectorAll('ol.hops > li').length") >= 1
        # Readable at 800x600: nothing wider than the window but the page's own scroll.
        assert small.evaluate("document.documentElement.scrollWidth") <= 800
        small.screenshot(shots / "serve-ko-800x600.png")
    finally:
        small.close()

    assert serving.stop() == 0  # Ctrl-C: at once, exit 0
    assert serving.proc.stderr is not None and serving.proc.stderr.read() == ""


def test_serving_an_idle_lab_uses_no_cpu_and_sigterm_ends_it_cleanly(serving: Serving) -> None:
    # No polling of the kernel: asleep until the kernel (or a trace file) says something.
    assert goes_idle(serving.proc.pid)
    serving.proc.terminate()
    assert serving.proc.wait(timeout=WAIT) == 0
    assert serving.proc.stderr is not None and serving.proc.stderr.read() == ""


def test_serve_refuses_a_busy_port_and_a_bad_address_in_one_line(cnilab: Cnilab) -> None:
    with socket_on_loopback() as port:
        done = cnilab.run("serve", "--port", str(port))
    assert done.returncode == 1 and f"port {port} is already in use" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    bad = cnilab.run("serve", "--listen", "not-an-address")
    assert bad.returncode == 2 and "not an IP address" in bad.stderr


@contextmanager
def socket_on_loopback() -> Iterator[int]:
    """A TCP port on 127.0.0.1 held open by the test."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield int(sock.getsockname()[1])


def test_listening_beyond_loopback_warns_and_anyone_who_can_reach_it_sees_the_lab(
        cnilab: Cnilab) -> None:
    # Beyond loopback, but only inside the test's own lab: serve runs in the node and listens on
    # its bridge address; red, a container of the lab, is who reaches it.
    assert cnilab.run("run-all", "--yes", "--no-proof").returncode == 0
    node, red = cnilab.topo.node or "", f"{cnilab.prefix}red"
    proc = subprocess.Popen(cnilab.argv("serve", "--port", "0", "--listen", "192.168.15.5",
                                        wrap=("ip", "netns", "exec", node)),
                            env=cnilab.env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        assert proc.stdout is not None and proc.stderr is not None
        line = proc.stdout.readline()
        assert "http://192.168.15.5:" in line, line + proc.stderr.read()
        url = line[line.index("http://"):].split()[0]
        warning = proc.stderr.readline()
        assert "warning" in warning and "anyone who can reach this port sees the lab" in warning

        def curl(*args: str) -> str:
            return subprocess.run(["ip", "netns", "exec", red, "curl", "-s", "-o", "/dev/null",
                                   "-w", "%{http_code}", *args], capture_output=True, text=True,
                                  check=False, timeout=WAIT).stdout

        assert curl(url + "state") == "200"
        assert curl("-X", "POST", url) == "405"
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=WAIT) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_cluster_serve_draws_nodes_pods_and_cables_and_a_cluster_trace(
        run_dir: Path, tmp_path: Path, shots: Path) -> None:
    env = {**os.environ, "CNILAB_RUN_DIR": str(run_dir), "LANG": "C.UTF-8"}
    with cluster_up(run_dir) as c:
        p = c.plan.prefix
        cnilab = [sys.executable, "-m", "cnilab", "cluster", "--prefix", p]
        proc = subprocess.Popen([*cnilab, "serve", "--port", "0"], env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        serving = Serving(proc)
        browser = None
        try:
            browser = open_page(serving.url, 1280, 720, tmp_path)
            columns = browser.evaluate("[...document.querySelectorAll('.column')]"
                                       ".map(c => c.dataset.column)")
            assert columns == [f"{p}controlplane", f"{p}node01"]
            pods = browser.evaluate("[...document.querySelectorAll('.box.role-pod')]"
                                    ".map(b => b.dataset.ns)")
            assert pods == [f"{p}controlplane-pod1", f"{p}node01-pod1"]
            ends = browser.evaluate("[...document.querySelectorAll('path.cable')]"
                                    ".flatMap(c => [c.dataset.a, c.dataset.b])")
            for pod in pods:  # each pod is cabled to a port of its node's cni0
                assert f"{pod}/eth0" in ends
            assert browser.evaluate(CROSSINGS)[1] == []  # no cable over a node's words
            done = subprocess.run([*cnilab, "trace", "controlplane-pod1", "10.244.1.2"],
                                  env=env, capture_output=True, text=True, check=False)
            assert done.returncode == 0, done.stdout + done.stderr
            hops = browser.until("[...document.querySelectorAll('.hop-badge')]"
                                 ".map(b => b.parentElement.dataset.end)")
            assert hops[0] == f"{p}controlplane-pod1/eth0"
            assert f"{p}node01-pod1/eth0" in hops
            browser.screenshot(shots / "cluster-serve-1280x720.png")
        finally:
            if browser is not None:
                browser.close()
            if proc.poll() is None:
                assert serving.stop() == 0
