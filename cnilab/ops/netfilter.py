"""iptables rules, tagged with a comment naming cnilab (the kernel's mark of what is ours)."""

from __future__ import annotations

import shlex
from collections.abc import Sequence

from cnilab.compat import valueclass
from cnilab.errors import KernelError
from cnilab.names import TAG
from cnilab.ops.base import Evidence, KernelApi, Key, Op, ns_of
from cnilab.state import Snapshot

_IMPLIED = {("-m", "tcp"), ("-m", "udp")}  # `iptables -S` adds these after -p tcp / -p udp


def rule_tokens(rule: str | tuple[str, ...]) -> tuple[str, ...]:
    """A rule's tokens without comments or implied matches, to compare rules whoever made them."""
    tokens = shlex.split(rule) if isinstance(rule, str) else list(rule)
    out: list[str] = []
    i = 0
    while i < len(tokens):
        if tokens[i:i + 2] == ["-m", "comment"]:
            i += 4  # -m comment --comment TEXT
        elif tuple(tokens[i:i + 2]) in _IMPLIED:
            i += 2
        else:
            out.append(tokens[i])
            i += 1
    return tuple(out)


@valueclass(frozen=True)
class AddRule(Op):
    """iptables -t TABLE -A CHAIN SPEC... (tagged with a comment naming cnilab)"""

    table: str = "nat"
    chain: str = "POSTROUTING"
    spec: tuple[str, ...] = ()
    comment: str = TAG

    def rule(self) -> list[str]:
        """The rule's words after the chain, with cnilab's comment."""
        # The comment goes before the target, where `iptables -S` prints it.
        j = self.spec.index("-j") if "-j" in self.spec else len(self.spec)
        return [*self.spec[:j], "-m", "comment", "--comment", self.comment, *self.spec[j:]]

    def apply(self, kernel: KernelApi) -> None:
        kernel.iptables(self.netns, ["-t", self.table, "-A", self.chain, *self.rule()])

    def undo(self, kernel: KernelApi) -> None:
        kernel.iptables(self.netns, ["-t", self.table, "-D", self.chain, *self.rule()],
                        missing_ok=True)

    def owned(self, kernel: KernelApi, done: bool, proof: Evidence | None) -> bool:
        return True  # -D deletes only a rule carrying our comment: the kernel's mark is checked

    def satisfied(self, snap: Snapshot) -> bool:
        rules = ns_of(snap, self.netns).nat if self.table == "nat" else None
        want = rule_tokens(("-A", self.chain, *self.spec))
        return rules is not None and any(rule_tokens(r) == want for r in rules)

    def argv(self) -> list[str]:
        return ["iptables", "-t", self.table, "-A", self.chain, *self.rule()]

    def undo_argv(self) -> list[str] | None:
        return ["iptables", "-t", self.table, "-D", self.chain, *self.rule()]

    def highlights(self) -> tuple[Key, ...]:
        # The rule itself, as observed rules compare: step 9's rule is new, step 8's is not.
        return (("rule", self.netns or "", self.table,
                 *rule_tokens(("-A", self.chain, *self.spec))),)


def apply_rules(kernel: KernelApi, rules: Sequence[AddRule]) -> None:
    """Add rules of one namespace and table in one transaction (iptables-restore --noflush):
    one process however many rules, and none added if one is refused. Each rule is the text
    its AddRule applies, so its printed command and its undo stay the same."""
    if rules:
        kernel.iptables_restore(rules[0].netns, rules[0].table,
                                [["-A", r.chain, *r.rule()] for r in _one_table(rules)])


def undo_rules(kernel: KernelApi, rules: Sequence[AddRule]) -> bool:
    """Delete rules of one namespace and table in one transaction; False, and nothing deleted,
    when one of them is not there (the caller then finds what is left another way)."""
    if not rules:
        return True
    try:
        kernel.iptables_restore(rules[0].netns, rules[0].table,
                                [["-D", r.chain, *r.rule()] for r in _one_table(rules)])
    except KernelError:
        return False
    return True


def _one_table(rules: Sequence[AddRule]) -> Sequence[AddRule]:
    """The rules, checked to be one transaction's: one namespace, one table."""
    if len({(r.netns, r.table) for r in rules}) > 1:
        raise ValueError("rules of several namespaces or tables are not one transaction")
    return rules
