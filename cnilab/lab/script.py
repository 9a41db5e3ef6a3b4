"""A standalone, commented bash script of the lab (or of its teardown), from the same ops."""

from __future__ import annotations

import textwrap

from cnilab.i18n import t
from cnilab.lab import LAST_STEP
from cnilab.lab.steps import build_steps, setup_ops
from cnilab.lab.topology import Topology
from cnilab.lessons import Lesson
from cnilab.ops import Op, teardown_plan


def _comment(text: str, width: int = 96) -> list[str]:
    return ["# " + line for line in textwrap.wrap(text, width - 2)]


def lab_script(topo: Topology, lesson: Lesson, lang: str, last: int = LAST_STEP) -> str:
    """Steps 1..last as bash: the stage on this machine, then the steps typed on the node."""
    head = ["#!/usr/bin/env bash", f"# cnilab · {lesson.title}", *_comment(lesson.summary),
            "# sudo bash THIS-FILE", "set -euo pipefail", ""]
    body: list[str] = []
    for step in build_steps(topo)[:last]:
        text = lesson.step(step.number)
        body += ["", f"# {t('ui.step', lang, number=step.number)} · {text.title}",
                 *_comment(text.what)]
        body += [op.command(topo.node) for op in step.ops]
    stage = setup_ops(topo)
    if not stage:
        return "\n".join(head + body) + "\n"
    node = topo.node
    lines = [*head, f"# {t('ui.stage', lang)}", *(op.command(None) for op in stage), ""]
    lines += ["on_node() {", *("  " + ln if ln else ln for ln in body), "}", "",
              *_comment(t("ui.script_nsenter", lang)),
              f'nsenter --net=/run/netns/{node} bash -euo pipefail -c "$(declare -f on_node); '
              'on_node"']
    return "\n".join(lines) + "\n"


def teardown_script(topo: Topology, lang: str, last: int = LAST_STEP) -> str:
    """The commands that remove what lab_script made, newest first."""
    ops: list[Op] = [*setup_ops(topo), *(op for s in build_steps(topo)[:last] for op in s.ops)]
    lines = ["#!/usr/bin/env bash", f"# cnilab · {t('ui.teardown_script', lang)}",
             "set -uo pipefail", ""]
    # What is left to type once namespaces take their contents with them: in isolated mode,
    # only `ip netns del`; in place, the node's own objects too.
    lines += [cmd for op in teardown_plan(ops) if (cmd := op.undo_command(topo.node))]
    return "\n".join(lines) + "\n"
