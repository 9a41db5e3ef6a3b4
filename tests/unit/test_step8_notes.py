"""Step 8 in place on a forwarding host: say that forwarding was already on, and who did it."""

from __future__ import annotations

from pathlib import Path

import pytest

from cnilab.lab import lab
from cnilab.lab.lab import forwarding_notes
from cnilab.lab.topology import default_topology
from cnilab.render.report import note_text
from cnilab.state import Link, Namespace, Snapshot

IN_PLACE = default_topology(in_place=True)


def snap(forwarding: str, *links: str) -> Snapshot:
    ns = Namespace(None, tuple(Link(n, "bridge", i + 2) for i, n in enumerate(links)),
                   sysctls={"net.ipv4.ip_forward": forwarding})
    return Snapshot(frozenset(), {None: ns})


def test_forwarding_already_on_is_said_plainly_with_who_turned_it_on(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(lab, "SYSCTL_FILES", ())
    notes = forwarding_notes(snap("1", "docker0"), IN_PLACE)
    assert len(notes) == 1
    for lang in ("en", "ko"):
        text = note_text(*notes[0], lang)
        assert "docker0" in text and "`sysctl -w net.ipv4.ip_forward=1`" in text
    assert "already 1" in note_text(*notes[0], "en")


def test_no_note_when_step_8_really_turns_forwarding_on() -> None:
    assert forwarding_notes(snap("0", "docker0"), IN_PLACE) == []


def test_a_sysctl_file_that_turns_forwarding_on_is_named(monkeypatch: pytest.MonkeyPatch,
                                                          tmp_path: Path) -> None:
    (tmp_path / "10-other.conf").write_text("vm.swappiness = 10\n")
    (tmp_path / "99-docker.conf").write_text("# Docker\nnet.ipv4.ip_forward = 1\n")
    monkeypatch.setattr(lab, "SYSCTL_FILES", (str(tmp_path),))
    notes = forwarding_notes(snap("1"), IN_PLACE)
    assert str(tmp_path / "99-docker.conf") in note_text(*notes[0], "en")
