"""What the screens show at 80 columns: wrapped between words, never cut."""

from __future__ import annotations

import io
import json

from rich.console import Console

from cnilab.cni.exec import Call


def printed(*renderables: object, width: int = 80, terminal: bool = True) -> str:
    console = Console(width=width, record=True, color_system=None, file=io.StringIO(),
                      force_terminal=terminal)
    console.print(*renderables)
    return console.export_text()


def test_a_failed_checks_json_is_wrapped_never_cut() -> None:
    from cnilab.render.cni import call_lines

    msg = ("CHECK: the interface eth0 in /run/netns/pod-web has address 10.244.0.9/24, "
           "but the cached result says 10.244.0.2/24: the pod was changed behind the runtime")
    out = json.dumps({"cniVersion": "1.1.0", "code": 999, "msg": msg})
    call = Call("cnilab-cni", "CHECK", {"CNI_COMMAND": "CHECK"}, {"type": "cnilab-cni"}, 1, out)
    text = printed(*call_lines(call, "en"))
    assert all(len(line) <= 80 for line in text.splitlines())
    assert " ".join(text.split()).count("the pod was changed behind the runtime") == 1
    assert "the cached result says 10.244.0.2/24:" in " ".join(text.split())
