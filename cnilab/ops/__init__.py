"""Operations: typed, frozen, each one kernel change that can apply, undo, print and check itself.

base: the KernelApi protocol and Op; links: namespaces, links, addresses, routes; netfilter:
iptables rules; system: sysctls and processes. `from cnilab.ops import X` finds each of them.
"""

from __future__ import annotations

from cnilab.ops.base import (
    ENTRY_KEYS,
    BadEntry,
    Evidence,
    KernelApi,
    Key,
    Note,
    Op,
    Step,
    describe,
    has_control,
    ns_of,
    registry_of,
    same_netns,
    shell_join,
    tagged,
    teardown_plan,
)
from cnilab.ops.links import (
    AddAddress,
    AddBridge,
    AddNetns,
    AddRoute,
    AddVeth,
    LinkUp,
    MoveToNetns,
    SetMac,
    SetMaster,
)
from cnilab.ops.netfilter import AddRule, apply_rules, rule_tokens, undo_rules
from cnilab.ops.system import FORWARDING, SetSysctl, StartServer

__all__ = [
    "ENTRY_KEYS",
    "FORWARDING",
    "OPS",
    "AddAddress",
    "AddBridge",
    "AddNetns",
    "AddRoute",
    "AddRule",
    "AddVeth",
    "BadEntry",
    "Evidence",
    "KernelApi",
    "Key",
    "LinkUp",
    "MoveToNetns",
    "Note",
    "Op",
    "SetMac",
    "SetMaster",
    "SetSysctl",
    "StartServer",
    "Step",
    "apply_rules",
    "describe",
    "has_control",
    "ns_of",
    "registry_of",
    "rule_tokens",
    "same_netns",
    "shell_join",
    "tagged",
    "teardown_plan",
    "undo_rules",
]

# Every op of the engine, listed (not collected as a side effect of imports). A lesson with ops
# of its own passes a registry with them to its Ledger (e.g. cluster.CLUSTER_OPS).
OPS: dict[str, type[Op]] = registry_of(
    AddNetns, AddBridge, AddVeth, MoveToNetns, SetMaster, SetMac, AddAddress, LinkUp, AddRoute,
    SetSysctl, AddRule, StartServer)
