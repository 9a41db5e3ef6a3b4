"""The live view's model and screen, replayed from recorded kernel states (recorded/README.md),
and the parsers of what the kernel sends (netlink headers, inotify events), from bytes built here.
"""

from __future__ import annotations

import io
import struct
from pathlib import Path

import pytest
from rich.cells import cell_len
from rich.console import Console

from cnilab.compat import replace
from cnilab.i18n import t
from cnilab.kernel.events import (
    LINKS,
    NAT,
    NEIGHBOURS,
    SYSCTLS,
    Observed,
    parse_inotify,
    parts_of,
)
from cnilab.lab import LAST_STEP
from cnilab.lab.steps import build_steps
from cnilab.lab.topology import default_topology
from cnilab.render.live import render_live
from cnilab.state import FdbEntry, Neighbour, Snapshot
from cnilab.watch import LiveLab

RECORDED = Path(__file__).parent / "recorded"
TOPO = default_topology(prefix="rec-")
RED, NODE = "rec-red", "rec-cnilab-host"


def recorded(name: str) -> dict[str | None, Observed]:
    """A recorded snapshot as the readings events.read() would give (peers already named)."""
    snap = Snapshot.from_json((RECORDED / name).read_text())
    return {ns: Observed([(ln, None, True) for ln in space.links], space.routes,
                         sysctls=space.sysctls, nat=space.nat)
            for ns, space in snap.spaces.items()}


def live_at(name: str) -> LiveLab:
    live = LiveLab(build_steps(TOPO)[:LAST_STEP], highlight_for=3.0)
    live.start(recorded(name))
    return live


def link_down(readings: dict[str | None, Observed], ns: str, name: str) -> Observed:
    seen = readings[ns]
    links = [(replace(ln, up=False) if ln.name == name else ln, peer, local)
             for ln, peer, local in seen.links]
    return replace(seen, links=links)


def nlmsg(kind: int, body: bytes = b"\0" * 16) -> bytes:
    size = 16 + len(body)
    return struct.pack("=IHHII", size, kind, 0, 0, 0) + body + b"\0" * (-size % 4)


def test_netlink_headers_say_which_parts_to_read_again() -> None:
    assert parts_of(nlmsg(16)) == {LINKS, NEIGHBOURS}  # a link: its routes may have gone too
    assert parts_of(nlmsg(20) + nlmsg(24)) == {LINKS}  # an address, a route
    assert parts_of(nlmsg(28, b"\x07" + b"\0" * 11)) == {NEIGHBOURS}  # FDB (AF_BRIDGE)
    # IPv6's own news (a new pod's router solicitations, DAD, MLD) is read as nothing to redo
    assert parts_of(nlmsg(28, b"\x0a" + b"\0" * 11) + nlmsg(16, b"\x0a" + b"\0" * 15)) == set()
    assert parts_of(nlmsg(80)) == {SYSCTLS}  # RTM_NEWNETCONF: ip_forward
    assert parts_of(nlmsg(20)[:10]) == set()  # a cut header is no message
    assert NAT not in parts_of(nlmsg(16) + nlmsg(29) + nlmsg(81))


def test_inotify_events_name_what_appeared_under_run_netns() -> None:
    def event(mask: int, name: bytes) -> bytes:
        padded = name + b"\0" * (16 - len(name))
        return struct.pack("=iIII", 1, mask, 0, len(padded)) + padded

    assert parse_inotify(event(0x100, b"red") + event(0x200, b"blue")) == [
        (0x100, "red"), (0x200, "blue")]


def test_the_state_at_start_counts_as_nothing_changed() -> None:
    live = live_at("after-step-8.json")
    assert live.done == tuple(range(1, 9))
    assert live.log == type(live.log)() and live.lit(0.0) == set()
    assert live.next_dim(0.0) is None  # nothing lit: the screen sleeps until the kernel speaks


def test_a_link_set_down_is_one_change_and_undoes_step_7() -> None:
    live = live_at("after-step-8.json")
    readings = recorded("after-step-8.json")
    changes = live.update({RED: link_down(readings, RED, "veth-red")}, [], at=10.0)
    link, steps = changes
    assert link.to_dict() == {"netns": RED, "kind": "link", "name": "veth-red",
                              "change": "changed", "old": {"up": True}, "new": {"up": False}}
    assert steps.to_dict()["netns"] is None
    assert steps.old == {"done": list(range(1, 9))} and 7 not in steps.new["done"]
    assert ("link", RED, "veth-red") in live.lit(12.9)
    assert ("step", "", "7") not in live.lit(12.9)  # undone, not newly done
    assert live.next_dim(11.0) == 2.0
    assert live.lit(13.0) == set() and live.next_dim(13.0) is None


def test_steps_6_to_8_arrive_as_one_change_per_object() -> None:
    live = live_at("after-step-3.json")
    after = recorded("after-step-8.json")
    changes = live.update(after, [], at=1.0)
    seen = [(c.netns, c.kind, c.name, c.change) for c in changes]
    assert len(seen) == len(set(seen))
    assert (RED, "address", "192.168.15.1/24", "added") in seen
    assert (RED, "route", "default", "added") in seen
    assert (NODE, "sysctl", "net.ipv4.ip_forward", "changed") in seen
    assert any(c.kind == "nat" and c.change == "added" for c in changes)
    assert changes[-1].new == {"done": list(range(1, 9))}
    assert {("step", "", str(n)) for n in (4, 5, 6, 7, 8)} <= live.lit(1.0)


def test_a_namespace_gone_is_one_change_not_one_per_object() -> None:
    live = live_at("after-step-8.json")
    changes = live.update({}, [RED], at=1.0)
    assert [(c.kind, c.name, c.change) for c in changes] == [
        ("netns", RED, "removed"), ("steps", "done", "changed")]


def test_learned_addresses_and_the_changes_show_on_screen_in_both_languages() -> None:
    live = live_at("after-step-8.json")
    readings = recorded("after-step-8.json")
    red = replace(readings[RED], neighbours=(Neighbour("192.168.15.2", "aa:bb:cc:00:00:02",
                                                       "veth-red", "REACHABLE"),))
    node = replace(readings[NODE], fdb=(FdbEntry("aa:bb:cc:00:00:02", "veth-blue-br",
                                                  "v-net-0"),))
    live.update({RED: link_down({RED: red}, RED, "veth-red"), NODE: node}, [], at=1.0)
    titles = {n: f"title {n}" for n in range(1, 9)}
    for lang, words in (("en", ("Last changes", "~ link veth-red in rec-red: up UP → DOWN",
                                "ARP 192.168.15.2 is at aa:bb:cc:00:00:02",
                                "bridge v-net-0 learned aa:bb:cc:00:00:02 behind port "
                                "veth-blue-br")),
                        ("ko", ("최근 변화", "~ rec-red의 링크 veth-red: up UP → DOWN"))):
        console = Console(width=200, record=True, color_system=None, file=io.StringIO())
        console.print(render_live(live, TOPO, titles, lang, live.lit(1.0), watched=4))
        text = console.export_text()
        for words_seen in words:
            assert words_seen in text, (lang, words_seen)


@pytest.mark.parametrize("lang", ["en", "ko"])
def test_at_80x24_the_screen_fits_and_keeps_the_last_change(lang: str) -> None:
    """A terminal too short for everything (the full view is ~45 lines) gets the steps on one
    line, fewer learned addresses and the compact diagram, never the change cut off."""
    live = live_at("after-step-8.json")
    readings = recorded("after-step-8.json")
    live.update({RED: link_down(readings, RED, "veth-red")}, [], at=1.0)
    titles = {n: f"title {n}" for n in range(1, 9)}
    view = render_live(live, TOPO, titles, lang, live.lit(1.0), watched=4)
    tall = Console(width=80, height=200, record=True, color_system=None, file=io.StringIO(),
                   force_terminal=True)
    tall.print(view)
    short = Console(width=80, height=24, record=True, color_system=None, file=io.StringIO(),
                    force_terminal=True)
    short.print(view)
    full, fitted = tall.export_text().splitlines(), short.export_text().splitlines()
    assert len(full) > 24 and len(fitted) <= 24
    change = "~ link veth-red in rec-red: up UP → DOWN" if lang == "en" else \
        "~ rec-red의 링크 veth-red: up UP → DOWN"
    assert change in fitted and any("veth-red" in line for line in fitted[:20])


@pytest.mark.parametrize("lang", ["en", "ko"])
def test_at_80x24_a_lab_full_of_learned_addresses_keeps_the_change_and_the_whole_footer(
        lang: str) -> None:
    # After pings every namespace has ARP entries and the bridge its FDB: at 24 rows a smaller
    # view; at 16 not even the smallest fits, so the lab is cut, never the latest change, nor
    # the footer and its legend for `+`.
    snap = Snapshot.from_json((RECORDED / "after-step-8-pinged.json").read_text())
    readings = {ns: Observed([(ln, None, True) for ln in space.links], space.routes,
                             neighbours=space.neigh, fdb=space.fdb, sysctls=space.sysctls,
                             nat=space.nat) for ns, space in snap.spaces.items()}
    live = LiveLab(build_steps(TOPO)[:LAST_STEP], highlight_for=3.0)
    live.start(readings)
    live.update({NODE: link_down(readings, NODE, "lo")}, [], at=1.0)
    titles = {n: f"title {n}" for n in range(1, 9)}
    for height in (24, 16):  # 16: even the smallest view is too tall; the lab gets cut
        short = Console(width=80, height=height, record=True, color_system=None,
                        file=io.StringIO(), force_terminal=True)
        short.print(render_live(live, TOPO, titles, lang, live.lit(1.0), watched=4))
        lines = short.export_text().rstrip("\n").splitlines()
        assert len(lines) <= height and all(cell_len(line) <= 80 for line in lines)
        _the_change_and_the_footer_are_whole(lines, lang)
    assert any(line.startswith("…") for line in lines)  # says the lab was cut


def _the_change_and_the_footer_are_whole(lines: list[str], lang: str) -> None:
    change = "~ link lo in rec-cnilab-host: up UP → DOWN" if lang == "en" else \
        "~ rec-cnilab-host의 링크 lo: up UP → DOWN"
    assert change in lines
    footer = t("watch.footer", lang, count=4)
    assert lines[-1].rstrip() == footer and footer.startswith("+ ")
