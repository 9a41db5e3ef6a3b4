"""A lab's names and identity: the rules every kernel name follows, and the name of each lab.

One place for what every lesson must agree on: which strings the kernel takes as an interface or
a namespace name, and how a lesson and its prefix become one lab's identity (its ledger, lock and
run files). The lessons build their object names on these rules; none has a rule of its own.
"""

from __future__ import annotations

import re
import string
import unicodedata

from cnilab.errors import ConfigError

IFNAME_MAX = 15  # IFNAMSIZ - 1: the kernel's interface names hold 15 bytes
NETNS_MAX = 64  # a name under /run/netns that `ip netns` lists and types without trouble

_LESSON = re.compile(r"[a-z][a-z0-9-]*\Z")
_KEPT = frozenset(string.ascii_letters + string.digits + "-_")
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


def identity(lesson: str, prefix: str) -> str:
    """A lab's ledger name: the lesson and the exact prefix; two prefixes never share one.

    Letters, digits, `-` and `_` stay; any other byte becomes %XX (`.`, `%`, `@` too), so the
    escaped prefix names one prefix only. The unprefixed lab is the bare lesson name, which no
    prefixed one can be (those have an `@`); a prefix too long to escape is hashed after `#`,
    which an escaped prefix never contains.
    """
    if not _LESSON.match(lesson):
        raise ValueError(f"not a lesson name: {lesson!r}")
    if not prefix:
        return lesson
    data = prefix.encode("utf-8", "surrogatepass")
    escaped = "".join(chr(b) if chr(b) in _KEPT else f"%{b:02X}" for b in data)
    if len(escaped) > _MAX_ESCAPED:
        import hashlib  # OpenSSL's, ~4 ms: only for a name that needs escaping

        escaped = "#" + hashlib.sha256(data).hexdigest()
    return f"{lesson}@{escaped}"
