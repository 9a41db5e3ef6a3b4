"""`serve`'s scene from recorded kernel states, its server on loopback (methods, headers, the
stream), its shipped files (no other origin) and the trace file it picks up; no root needed."""

from __future__ import annotations

import http.client
import json
import os
import re
import stat
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cnilab.cluster.live import ClusterLive
from cnilab.kernel.events import Observed
from cnilab.render.web.cluster_scene import cluster_scene
from cnilab.render.web.scene import lab_scene
from cnilab.render.web.server import CSP, Hub, PageServer, asset
from cnilab.render.web.traces import TraceWatch, load_trace, save_trace, trace_path
from cnilab.state import Link, Route
from tests.unit.cold_start import HEAVY, run_cold
from tests.unit.test_cluster_watch import live_now
from tests.unit.test_trace import load
from tests.unit.test_watch import NODE, RED, TOPO, link_down, live_at, recorded

TITLES = {n: f"step {n}" for n in range(1, 9)}


def test_the_lab_is_drawn_containers_above_the_node_the_outside_below_with_its_cables() -> None:
    scene = lab_scene(live_at("after-step-8.json"), TOPO, TITLES, "en", set())
    (column,) = scene["columns"]
    assert [b["id"] for b in column["top"]] == ["rec-red", "rec-blue"]
    assert [b["id"] for b in column["middle"]] == [NODE]
    assert [b["id"] for b in scene["bottom"]] == ["rec-cnilab-internet"]
    pairs = {frozenset((c["a"], c["b"])) for c in scene["cables"]}
    assert pairs == {frozenset((f"{RED}/veth-red", f"{NODE}/veth-red-br")),
                     frozenset(("rec-blue/veth-blue", f"{NODE}/veth-blue-br")),
                     frozenset((f"{NODE}/eth0", "rec-cnilab-internet/eth0"))}
    node = column["middle"][0]
    ports = [ln["name"] for ln in node["links"] if ln["master"] == "v-net-0"]
    assert ports == ["veth-red-br", "veth-blue-br"]
    assert any("MASQUERADE" in r["text"] for r in node["nat"])
    assert [s["done"] for s in scene["steps"]] == [True] * 8
    assert scene["changes"] == [] and not scene["empty"]


def test_a_link_set_down_shows_on_its_cable_lit_and_in_the_changes_in_both_languages() -> None:
    live = live_at("after-step-8.json")
    live.update({RED: link_down(recorded("after-step-8.json"), RED, "veth-red")}, [], at=1.0)
    for lang, words in (("en", "~ link veth-red in rec-red: up UP → DOWN"),
                        ("ko", "~ rec-red의 링크 veth-red: up UP → DOWN")):
        scene = lab_scene(live, TOPO, TITLES, lang, live.lit(1.0))
        cable = next(c for c in scene["cables"] if c["a"] == f"{RED}/veth-red"
                     or c["b"] == f"{RED}/veth-red")
        assert cable["up"] is False and cable["lit"] is True
        assert words in scene["changes"][1]["text"] and scene["changes"][1]["lit"]
        assert [s["done"] for s in scene["steps"]][6] is False  # step 7: up, undone
    # Faded: the same scene, nothing lit any more.
    faded = lab_scene(live, TOPO, TITLES, "en", live.lit(10.0))
    assert not any(c["lit"] for c in faded["cables"] + faded["changes"])


def test_every_word_of_the_page_comes_in_english_and_korean() -> None:
    live = live_at("after-step-8.json")
    en = lab_scene(live, TOPO, TITLES, "en", set())
    ko = lab_scene(live, TOPO, TITLES, "ko", set())
    assert en["labels"].keys() == ko["labels"].keys()
    same = {k for k in en["labels"] if en["labels"][k] == ko["labels"][k]}
    assert same <= {"nat", "sysctls", "arp", "down"}  # as `ip` and iptables print them
    assert "{count}" in en["labels"]["ports_more"]  # the page fills these in itself
    assert en["title"] != ko["title"] and "실습" in ko["title"]


def test_a_small_cluster_draws_every_pod_and_its_cable_to_cni0() -> None:
    scene = cluster_scene(live_now(), "en", set())
    assert [c["id"] for c in scene["columns"]] == ["recw-controlplane", "recw-node01"]
    for column in scene["columns"]:
        assert len(column["top"]) == 2 and "pods" not in column
        (node,) = column["middle"]
        assert [c["ok"] for c in node["checks"]] == [True] * 6
        for pod in column["top"]:
            assert any(f"{pod['id']}/eth0" in (c["a"], c["b"]) for c in scene["cables"])
    assert {b["role"] for b in scene["bottom"]} == {"lan", "outside"}


def big_cluster(nodes: int, pods: int) -> ClusterLive:
    """A cluster of `nodes` x `pods`, as readings (no kernel), under the prefix big-."""
    readings: dict[str | None, Observed] = {}
    for n in range(nodes):
        name = "big-controlplane" if n == 0 else f"big-node{n:02d}"
        links = [(Link("ens3", "veth", 2, True, addresses=(f"172.17.0.{10 + n}/16",),
                       carrier=True), None, True),
                 (Link("cni0", "bridge", 3, True, addresses=(f"10.244.{n}.1/24",),
                       carrier=True), None, True)]
        for p in range(pods):
            pod = f"{name}-pod{p + 1}"
            links.append((Link(f"veth{p}", "veth", 10 + p, True, master="cni0",
                               peer=f"{pod}:eth0", carrier=True), None, True))
            readings[pod] = Observed([(Link("eth0", "veth", 2, True, peer=f"{name}:veth{p}",
                                            addresses=(f"10.244.{n}.{p + 2}/24",),
                                            carrier=True), None, True)])
        readings[name] = Observed(links, (Route("default", "172.17.0.1", "ens3"),),
                                  sysctls={"net.ipv4.ip_forward": "1"})
    live = ClusterLive((), highlight_for=3.0, prefix="big-")
    live.start(readings)
    return live


def test_ten_nodes_of_a_hundred_pods_are_summarised_one_square_per_pod() -> None:
    scene = cluster_scene(big_cluster(10, 100), "en", set())
    assert len(scene["columns"]) == 10
    for column in scene["columns"]:
        assert column["top"] == [] and len(column["pods"]["pods"]) == 100
        assert column["pods"]["text"] == "100 of 100 pods ready"
        (node,) = column["middle"]
        assert [ln["name"] for ln in node["links"]] == ["ens3", "cni0"]  # ports counted
        assert node["hidden"] == {"cni0": 100}
    # Small enough to send at every change: no box, no cable per pod.
    assert len(json.dumps(scene)) < 300_000
    assert scene["cables"] == []


@pytest.fixture
def server() -> Iterator[PageServer]:
    """The page's server on loopback, a port of its own, a scene in each language."""
    hub = Hub()
    hub.publish("scene", {"en": {"title": "lab"}, "ko": {"title": "실습"}})
    srv = PageServer("127.0.0.1", 0, hub, "en")
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()


def request(srv: PageServer, method: str, path: str, host: str | None = None
            ) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", srv.server_address[1], timeout=10)
    headers = {"Host": host} if host else {}
    conn.request(method, path, headers=headers)
    answer = conn.getresponse()
    body = answer.read()
    conn.close()
    return answer.status, {k.lower(): v for k, v in answer.getheaders()}, body


def test_the_page_and_its_files_come_with_a_same_origin_policy(server: PageServer) -> None:
    status, headers, body = request(server, "GET", "/?lang=ko")
    assert status == 200 and headers["content-security-policy"] == CSP
    assert "default-src 'self'" in CSP and "http" not in CSP
    assert b'<html lang="ko">' in body and b"{{" not in body
    for path, kind in (("/app.js", "text/javascript"), ("/style.css", "text/css")):
        status, headers, body = request(server, "GET", path)
        assert status == 200 and headers["content-type"].startswith(kind) and body
        assert headers["x-content-type-options"] == "nosniff"
    status, _, body = request(server, "GET", "/state?lang=ko")
    assert status == 200 and json.loads(body)["scene"] == {"title": "실습"}
    for path in ("/", "/events"):
        status, _, body = request(server, "HEAD", path)
        assert status == 200 and body == b"", path
    for path in ("/../../etc/passwd", "/static/app.js", "/index.html", "/%2e%2e/etc/passwd"):
        assert request(server, "GET", path)[0] == 404, path


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE", "FOO"])
def test_every_method_but_get_and_head_is_refused(server: PageServer, method: str) -> None:
    status, headers, _ = request(server, method, "/")
    assert status == 405 and headers["allow"] == "GET, HEAD"


def test_on_loopback_a_request_naming_another_host_is_refused(server: PageServer) -> None:
    assert request(server, "GET", "/state", host="attacker.example")[0] == 421
    assert request(server, "GET", "/state", host="attacker.example:80")[0] == 421
    for host in ("localhost:1", "127.0.0.1:8765", "[::1]:8765", "[::1]", "localhost"):
        assert request(server, "GET", "/state", host=host)[0] == 200, host


def test_the_stream_sends_the_scene_then_each_new_one(server: PageServer) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", server.server_address[1], timeout=10)
    conn.request("GET", "/events?lang=en")
    stream = conn.getresponse()
    assert stream.getheader("Content-Type", "").startswith("text/event-stream")

    def event() -> dict[str, Any]:
        line = stream.fp.readline()
        assert line.startswith(b"data: "), line
        assert stream.fp.readline() == b"\n"
        return dict(json.loads(line[len(b"data: "):]))

    first = event()
    assert first["scene"] == {"title": "lab"}
    server.hub.publish("scene", {"en": {"title": "changed"}, "ko": {"title": "바뀜"}})
    second = event()
    assert second["scene"] == {"title": "changed"} and second["version"] > first["version"]
    conn.close()


def test_the_shipped_page_names_no_other_origin() -> None:
    svg_namespace = "http://www.w3.org/2000/svg"  # an XML name the DOM needs, never fetched
    for name in ("index.html", "app.js", "style.css"):
        text = asset(name).decode().replace(svg_namespace, "")
        assert not re.search(r"(https?:)?//[a-z0-9.-]+\.[a-z]{2,}", text, re.I), name
        assert "@import" not in text and "url(" not in text, name
    html = asset("index.html").decode()
    assert set(re.findall(r'(?:src|href)="([^"?]+)', html)) == {"/style.css", "/app.js"}
    js = asset("app.js").decode()
    assert "fetch(" not in js and "XMLHttpRequest" not in js and "innerHTML" not in js


def test_help_loads_neither_the_server_nor_pyroute2() -> None:
    _, loaded = run_cold(["--help"], ["cluster", "--help"],
                         heavy=(*HEAVY, "http.server", "cnilab.render.web"))
    assert loaded == []


def test_a_trace_is_left_root_only_and_picked_up_when_it_lands(run_dir: Path) -> None:
    path = trace_path("eight-steps@rec-")
    seen: list[dict[str, Any] | None] = []
    landed = threading.Event()

    def changed(data: dict[str, Any] | None) -> None:
        seen.append(data)
        if data is not None:
            landed.set()

    watch = TraceWatch(path, changed).start()  # the run folder does not exist yet
    try:
        save_trace(load("red-outside"), "eight-steps@rec-")
        assert landed.wait(15), "the trace was not picked up"
    finally:
        watch.stop()
    assert seen[0] is None  # no trace before
    data = seen[-1]
    assert data is not None and data == load_trace(path)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert data["en"]["ok"] is True and data["en"]["nat"]
    assert data["en"]["hops"][0]["netns"] == "rec-red"
    assert data["ko"]["verdict"] != data["en"]["verdict"]


def test_a_trace_file_planted_as_a_symlink_is_not_read(tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_text('{"en": {"title": "planted"}}')
    planted = tmp_path / "lab.trace.json"
    planted.symlink_to(secret)
    assert load_trace(planted) is None
