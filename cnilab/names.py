"""A lab's names and identity: the rules every kernel name follows, and the name of each lab.

One place for what every lesson must agree on: which strings the kernel takes as an interface or
a namespace name, and how a lesson and its prefix become one lab's identity (its ledger, lock and
run files). The lessons build their object names on these rules; none has a rule of its own.
"""

from __future__ import annotations

import re
import unicodedata

from cnilab.compat import sha256, valueclass
from cnilab.errors import ConfigError

IFNAME_MAX = 15  # IFNAMSIZ - 1: the kernel's interface names hold 15 bytes
NETNS_MAX = 64  # a name under /run/netns that `ip netns` lists and types without trouble
# A prefix goes before every namespace a lab makes: the longest of them (cnilab-internet,
# controlplane-pod99) still fits in NETNS_MAX after it.
PREFIX_MAX = 40
TAG = "cnilab"  # the mark of the unprefixed labs, and of what the CNI plugin makes for runtimes
MARK_MAX = 100  # nft keeps 128 bytes of a table comment; iptables 256 of a rule's

_LESSON = r"[a-z][a-z0-9-]*\Z"  # compiled by re on first use: the CNI plugin never needs it
# Letters, digits, - and _ (string's constants: importing string compiles Template's pattern).
_KEPT = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_")
_MAX_ESCAPED = 120  # a file name has 255 bytes: longer escaped prefixes are hashed instead


def bad_name_char(ch: str) -> bool:
    """A character no kernel name may hold: '/', whitespace, a control character."""
    # A NUL would cut the name short in the kernel (and in /run/netns): "red\0x" acts on red.
    return ch == "/" or ch.isspace() or unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp")


def ifname_problem(name: str) -> str | None:
    """Why the kernel would refuse `name` as an interface name (dev_valid_name's rules): "empty",
    "chars" (also '.' and '..'), "long"; None when it would not."""
    if not name:
        return "empty"
    if any(bad_name_char(ch) or ch == ":" for ch in name) or name in (".", ".."):
        return "chars"
    return "long" if len(name.encode()) > IFNAME_MAX else None


def check_netns_name(name: str, what: str) -> None:
    """Refuse a namespace name that cannot be a file under /run/netns."""
    if not name or name in (".", "..") or any(bad_name_char(ch) for ch in name):
        raise ConfigError.of("cfg_bad_netns", what=what, name=name)
    if len(name) > NETNS_MAX:
        raise ConfigError.of("cfg_long_netns", what=what, name=name)


def check_prefix(prefix: str) -> str:
    """The prefix, if every lesson can put it before its namespace names; else a one-line error.

    The rule of `ip netns` names: a prefix with '/' or '..' would put namespaces outside
    /run/netns, where `ip netns list` never shows them and nobody removes them; whitespace,
    control and zero-width characters make names nobody can type back.
    """
    if "/" in prefix or ".." in prefix or any(bad_name_char(ch) for ch in prefix):
        raise ConfigError.of("cfg_bad_prefix", prefix=prefix)
    if len(prefix.encode("utf-8", "surrogatepass")) > PREFIX_MAX:
        raise ConfigError.of("cfg_long_prefix", prefix=prefix, limit=PREFIX_MAX)
    return prefix


@valueclass(frozen=True)
class Identity:
    """One lab: a lesson run under an exact prefix. Its ledger, lock and run files are named by
    `lab_id`, its namespaces by `netns()`, and what it makes in the kernel carries `mark`."""

    lesson: str
    prefix: str = ""

    def __post_init__(self) -> None:
        check_prefix(self.prefix)

    @property
    def lab_id(self) -> str:
        """The name of this lab's ledger and lock (see identity())."""
        return identity(self.lesson, self.prefix)

    @property
    def mark(self) -> str:
        """What this lab's objects carry in the kernel: a link's alias, a rule's or a table's
        comment. Ours only with this very mark, so that two labs sharing a namespace (two
        --in-place labs) never take each other's objects for their own.

        The unprefixed labs keep the word of the course's commands, "cnilab": two of them never
        share a namespace (their namespace names differ, and only the eight-step lab runs in
        place)."""
        if not self.prefix:
            return TAG
        mark = f"{TAG}:{self.lab_id}"
        if len(mark) > MARK_MAX:
            digest = sha256(self.prefix.encode("utf-8", "surrogatepass")).hexdigest()
            mark = f"{TAG}:{self.lesson}#{digest[:32]}"
        return mark

    def netns(self, name: str) -> str:
        """The namespace this lab calls `name`."""
        return self.prefix + name


def identity(lesson: str, prefix: str) -> str:
    """A lab's ledger name: the lesson and the exact prefix; two prefixes never share one.

    Letters, digits, `-` and `_` stay; any other byte becomes %XX (`.`, `%`, `@` too), so the
    escaped prefix names one prefix only. The unprefixed lab is the bare lesson name, which no
    prefixed one can be (those have an `@`); a prefix too long to escape is hashed after `#`,
    which an escaped prefix never contains.
    """
    if not re.match(_LESSON, lesson):
        raise ValueError(f"not a lesson name: {lesson!r}")
    if not prefix:
        return lesson
    data = prefix.encode("utf-8", "surrogatepass")
    escaped = "".join(chr(b) if chr(b) in _KEPT else f"%{b:02X}" for b in data)
    if len(escaped) > _MAX_ESCAPED:
        escaped = "#" + sha256(data).hexdigest()
    return f"{lesson}@{escaped}"
