"""Where a trace runs: the lab's namespaces by role, and the addresses it may send to.

The eight-step lab and the cluster lesson each describe themselves as a Site; the trace itself
knows neither of them.
"""

from __future__ import annotations

from ipaddress import IPv4Network

from cnilab.compat import field, valueclass

LOOPBACK = IPv4Network("127.0.0.0/8")


@valueclass(frozen=True)
class Site:
    """The namespaces a trace watches, by the role a student knows them by, routers first."""

    roles: dict[str | None, str]  # namespace -> role (red, host, node01, node01-pod1, ...)
    networks: tuple[IPv4Network, ...]  # a trace sends only to these: the lab's own subnets
    outside: str | None = None  # the outside world's namespace
    private: tuple[IPv4Network, ...] = field(default=())  # the outside cannot answer these

    def netns(self, role: str) -> str | None:
        """The namespace of a role; KeyError when there is none."""
        for ns, name in self.roles.items():
            if name == role:
                return ns
        raise KeyError(role)

