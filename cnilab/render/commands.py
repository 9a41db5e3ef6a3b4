"""The commands a person would type, and the proofs' outcomes, as Rich renderables."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from rich.cells import cell_len
from rich.console import Console, ConsoleOptions, Group, RenderableType, RenderResult
from rich.measure import Measurement
from rich.text import Text

from cnilab.compat import field, replace, valueclass
from cnilab.i18n import t
from cnilab.lessons import Lesson, StepText
from cnilab.ops import Op

if TYPE_CHECKING:  # probes reach the kernel; rendering a proof needs only its data
    from cnilab.lab.proofs import Proof


def command_lines(ops: Sequence[Op], here: str | None) -> list[str]:
    """Each op as the command typed in namespace `here` (the node)."""
    return [op.command(here) for op in ops]


def equivalent_note(op: Op, lang: str) -> str | None:
    """`# an equivalent: ...` under a command cnilab did not run itself (what ran instead)."""
    return f"# {t('ui.' + op.equivalent, lang)}" if op.equivalent else None


def annotated_lines(ops: Sequence[Op], here: str | None, lang: str) -> list[str]:
    """Each op's command, with a note under those that are an equivalent of what ran."""
    return [line for op in ops
            for line in (op.command(here), equivalent_note(op, lang)) if line is not None]


WORD = re.compile(r"""(?:'[^']*'|"[^"]*"|[^\s'"])+""")  # a shell word, quotes kept whole
INDENT = "    "
PROGRAMS = frozenset(("ip", "iptables", "nft", "sysctl", "nsenter", "bash", "sh", "ping",
                      "curl", "bridge", "cnilab", "mkdir", "rm", "echo"))


# Run on the node when the lab is isolated: typed on this machine they would act on its own.
NODE_PROGRAMS = frozenset(("ip", "iptables", "nft", "sysctl", "bridge", "conntrack", "tcpdump",
                           "ss", "ping", "curl", "netstat", "arp", "route"))
_NETNS_VERBS = frozenset(("add", "del", "delete", "exec", "list", "identify", "pids", "set",
                          "attach", "monitor"))
_CODE = re.compile(r"`([^`\n]+)`")


@valueclass(frozen=True)
class LabCommands:
    """The course's commands as typed for one lab: its namespaces' real names, bare commands run
    on its node when it is isolated, and cnilab called as it reaches this lab again (--prefix,
    --config), so that a command copied from the screen never acts on another lab or the host."""

    cnilab: str = "cnilab"  # e.g. `.venv/bin/cnilab --prefix demo-`
    prefix: str = ""
    names: Mapping[str, str] = field(default_factory=dict)  # course name -> this lab's namespace
    node: str | None = None  # where the lesson's bare commands run; None: right here
    paths: Mapping[str, str] = field(default_factory=dict)  # the course's folders -> this lab's

    def netns(self, name: str) -> str:
        """The namespace the course calls `name`, in this lab."""
        if name in self.names:
            return self.names[name]
        if not name or name.startswith(("/", "{", "$", "<")) or name.isupper() or "." in name:
            return name  # a path, a placeholder (PID, NODE, ...) or an elision
        return name if name.startswith(self.prefix) else self.prefix + name

    def command(self, line: str) -> str:
        """One command line (as the lesson writes it) for this lab."""
        words = WORD.findall(line)
        sudo = words[:1] == ["sudo"]
        body = words[1:] if sudo else words
        if not body:
            return line
        if body[0] == "cnilab":  # cnilab names the lab's parts itself: only its options change
            cnilab = self.cnilab.removeprefix("sudo ") if sudo else self.cnilab
            return " ".join(["sudo"] * sudo + [cnilab, *body[1:]])
        names_netns = body[0] == "ip" and any(w in ("-n", "-netns", "netns") for w in body[:3])
        for i in range(1, len(body)):
            prev = body[i - 1]
            if body[0] == "ip" and (prev in ("-n", "-netns") or (
                    prev == "netns" and body[i] not in _NETNS_VERBS) or (
                    prev in ("exec", "add", "del", "delete") and body[i - 2:i - 1] == ["netns"])):
                body[i] = self.netns(body[i])
            elif body[i].startswith("--net=/run/netns/"):
                body[i] = "--net=/run/netns/" + self.netns(body[i][len("--net=/run/netns/"):])
            for course, here in self.paths.items():
                if body[i].startswith(course):
                    body[i] = here + body[i][len(course):]
        if self.node and body[0] in NODE_PROGRAMS and not names_netns:
            body = ["ip", "netns", "exec", self.node, *body]
        return " ".join(["sudo"] * sudo + body)

    def step_text(self, text: StepText) -> StepText:
        """A lesson's section with every command in it written for this lab."""
        def prose(value: str | None) -> str | None:
            return None if value is None else self.text(value)

        return replace(text, what=self.text(text.what), why=self.text(text.why),
                       goal=self.text(text.goal), mistake=self.text(text.mistake),
                       inspect=tuple(self.command(c) for c in text.inspect),
                       course_note=prose(text.course_note), watch=prose(text.watch))

    def lesson(self, lesson: Lesson) -> Lesson:
        """A whole lesson's text written for this lab."""
        beyond = None if lesson.beyond is None else self.text(lesson.beyond)
        return replace(lesson, summary=self.text(lesson.summary), beyond=beyond,
                       steps=tuple(self.step_text(s) for s in lesson.steps))

    def text(self, prose: str) -> str:
        """Prose with every `command` in backquotes written for this lab."""
        def one(m: re.Match[str]) -> str:
            words = m.group(1).split()
            program = words[1] if words[:1] == ["sudo"] and len(words) > 1 else words[0]
            known = program in PROGRAMS or program in NODE_PROGRAMS
            return f"`{self.command(m.group(1))}`" if known else m.group(0)
        return _CODE.sub(one, prose)


def highlight(line: str) -> Text:
    """One line of a listing coloured word by word: programs, options, numbers, quotes.

    All that a bash lexer does for these commands (no pipes nor nesting), without loading
    pygments (~40 ms a run) to do it.
    """
    if line.lstrip().startswith("#"):
        return Text(line, style="dim")
    text = Text()
    end = 0
    for i, word in enumerate(WORD.finditer(line)):
        text.append(line[end:word.start()])
        end, value = word.end(), word.group()
        if "=" in value and i == 0:
            style = "yellow"  # VAR=value before the program
        elif value in PROGRAMS or (i == 0 and not line.startswith(" ")):
            style = "bold"
        elif value.startswith("-") or value == "!":
            style = "cyan"
        elif value[:1] in "'\"":
            style = "yellow"
        elif value[:1].isdigit():
            style = "green"
        else:
            style = ""
        text.append(value, style=style)
    text.append(line[end:])
    return text


def fold(command: str, width: int) -> list[str]:
    """One command as lines of at most `width` cells, cut between words with ` \\`.

    bash joins the lines back into the same command: copied whole, it still runs. A word wider
    than the terminal keeps a line of its own (the terminal folds it; nothing better exists).
    """
    if cell_len(command) <= width:
        return [command]
    if command.startswith("#"):  # a comment goes on as comments: `\` would not continue it
        return _fold_comment(command, width)
    lines: list[str] = []
    line = ""
    for word in WORD.findall(command):
        prefix = INDENT if lines else ""
        candidate = f"{line} {word}" if line else prefix + word
        if line and cell_len(candidate) + 2 > width:
            lines.append(line + " \\")
            line = INDENT + word
        else:
            line = candidate
    return [*lines, line]


def _fold_comment(comment: str, width: int) -> list[str]:
    """A `# ...` line as lines of at most `width` cells, each a comment of its own."""
    lines: list[str] = []
    line = "#"
    for word in comment[1:].split():
        if line != "#" and cell_len(f"{line} {word}") > width:
            lines.append(line)
            line = "#"
        line = f"{line} {word}"
    return [*lines, line]


class Listing:
    """Commands to copy: in a terminal, folded between words with ` \\`; elsewhere one a line.

    Rich would cut a long line anywhere, even inside a word, and a command cut in two is two
    wrong commands. Piped or captured output keeps each command on one line, for grep and diff.
    """

    soft_wrap = True  # console.out: never crop a line the terminal is narrower than

    def __init__(self, lines: list[str]) -> None:
        self.lines = lines

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        width = options.max_width
        folded = [part for line in self.lines
                  for part in (fold(line, width) if console.is_terminal else [line])]
        text = Text("\n").join(highlight(line) for line in folded)
        text.no_wrap, text.overflow = True, "ignore"
        yield text

    def __rich_measure__(self, console: Console, options: ConsoleOptions) -> Measurement:
        widest = max((cell_len(ln) for ln in self.lines), default=0)
        return Measurement(min(widest, options.max_width), min(widest, options.max_width))


def render_commands(ops: Sequence[Op], here: str | None, lang: str = "en") -> RenderableType:
    """The ops as a highlighted bash listing."""
    return Listing(annotated_lines(ops, here, lang) or ["# " + t("ui.nothing_to_do", lang)])


def render_plan(steps: Sequence[tuple[int, str, Sequence[Op]]], here: str | None, lang: str,
                stage: Sequence[Op] = ()) -> list[RenderableType]:
    """A dry run: the stage (made on this machine first), then each step's commands under its
    `# step N: title` line (exactly: scripts split a plan there, the equivalence test too)."""
    def heading(text: str) -> Text:
        return Text("# " + text, style="dim")

    parts: list[RenderableType] = []
    if stage:
        parts += [heading(t("ui.stage", lang)), render_commands(stage, None, lang)]
    for number, title, ops in steps:
        parts += [heading(f"{t('ui.plan_step', lang, number=number)}: {title}"),
                  render_commands(ops, here, lang)]
    return parts


def render_proofs(proofs: Sequence[Proof], lang: str = "en") -> RenderableType:
    """One line per proof: passed or failed, the claim, and what was seen."""
    lines = []
    for p in proofs:
        line = Text(t("ui.proved" if p.ok else "ui.failed", lang) + " ",
                    style="bold green" if p.ok else "bold red")
        line.append(p.claim(lang))
        line.append(f"  ({p.observed(lang)})", style="dim")
        lines.append(line)
    return Group(*lines)
