"""Executing a CNI plugin: the one way cnilab does it, for the runtime it plays and for delegation.

As libcni does: a process per call, the CNI_* variables in its environment, the network
configuration on stdin, a result or an error object on stdout. The runtime runs plugins inside
its node namespace (`node`); a delegating plugin runs its IPAM plugin where it runs itself.
Standard library only: the plugin executables import this module.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import os
import subprocess
import time
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from cnilab.cni import spec
from cnilab.cni.spec import CniError
from cnilab.compat import valueclass

# Where the reference plugins live: /opt/cni/bin (upstream tarballs, kubeadm), /usr/lib/cni
# (Debian, Ubuntu), /usr/libexec/cni (Fedora, RHEL). CNI_PATH, when set, goes first.
REFERENCE_DIRS = ("/opt/cni/bin", "/usr/lib/cni", "/usr/libexec/cni")
NETNS_DIR = "/run/netns"
NO_IFNAME = ("VERSION", "STATUS", "GC")  # commands that take no container or interface
# A line cnilab-cni writes on stderr for each IPAM call it makes (stderr is the plugin's log in
# the spec), so the runtime can show the lesson's step 2: plugin -> IPAM, its stdin, its answer.
DELEGATED = "cnilab-delegated: "
# Only when its caller sets this variable, as invoke() does: under Podman or containerd the
# plugin's stderr is the runtime's own (libcni passes it through), and in cnilab's process (the
# cluster's pods, attached in-process) it is the user's terminal.
REPORT_ENV = "CNILAB_REPORT_DELEGATION"


@valueclass
class Call:
    """One execution of a plugin, exactly as it was made: what went in, what came out."""

    plugin: str
    command: str
    env: dict[str, str]
    config: dict[str, Any]
    code: int = 0
    stdout: str = ""
    answer: dict[str, Any] | None = None
    seconds: float = 0.0
    stderr: str = ""

    @property
    def ok(self) -> bool:
        """Exit code 0."""
        return self.code == 0

    @property
    def delegations(self) -> list[dict[str, Any]]:
        """The IPAM calls the plugin reported making (plugin, command, config, answer)."""
        found = []
        for line in self.stderr.splitlines():
            if line.startswith(DELEGATED):
                with contextlib.suppress(ValueError):
                    found.append(json.loads(line[len(DELEGATED):]))
        return [d for d in found if isinstance(d, dict)]

    def log(self) -> str:
        """What the plugin wrote on stderr, without its reports of IPAM calls."""
        return "\n".join(ln for ln in self.stderr.splitlines() if not ln.startswith(DELEGATED))

    def error(self) -> CniError:
        """The plugin's error object as an exception (or one saying it printed none)."""
        if isinstance(self.answer, dict) and "code" in self.answer:
            return CniError.from_dict(self.answer)
        why = (self.log().strip() or self.stdout.strip() or "no output").splitlines()[-1]
        return CniError(spec.KERNEL_REFUSED, f"{os.path.basename(self.plugin)} {self.command} "
                        f"failed (exit {self.code}) without an error object: {why[:200]}")

    def result(self) -> dict[str, Any] | None:
        """The answer of a successful call; CniError for a failed call or one that is not JSON."""
        if not self.ok:
            raise self.error()
        if self.stdout.strip() and self.answer is None:
            raise CniError(spec.DECODE_FAILURE,
                           f"{os.path.basename(self.plugin)} printed no JSON object")
        return self.answer


# Calls made while a `traced()` block runs, for the runtime to show (env, config, answer, time).
_TRACE: contextvars.ContextVar[list[Call] | None] = contextvars.ContextVar("cni_trace",
                                                                          default=None)


@contextlib.contextmanager
def traced() -> Iterator[list[Call]]:
    """Collect every plugin call made inside the block, in order."""
    calls: list[Call] = []
    token = _TRACE.set(calls)
    try:
        yield calls
    finally:
        _TRACE.reset(token)


def reference_dirs(environ: Mapping[str, str] = os.environ) -> list[str]:
    """The folders searched for reference plugins: CNI_PATH's, then the usual places."""
    given = [d for d in environ.get("CNI_PATH", "").split(":") if d]
    return list(dict.fromkeys([*given, *REFERENCE_DIRS]))


def find_reference(name: str, dirs: Sequence[str] | None = None) -> str | None:
    """Where a reference plugin (containernetworking-plugins) is installed, if it is."""
    for folder in reference_dirs() if dirs is None else dirs:
        exe = os.path.join(folder, name)
        if os.access(exe, os.X_OK):
            return exe
    return None


def require_reference(name: str) -> str:
    """Where a reference plugin is installed; MissingTool (how to install it) when it is not."""
    exe = find_reference(name)
    if exe is None:
        from cnilab.errors import MissingTool
        from cnilab.packages import install_command

        raise MissingTool.of("cni_no_reference", plugin=name,
                             install=install_command("containernetworking-plugins"))
    return exe


def find_plugin(name: str, cni_path: Sequence[str]) -> str:
    """The executable called `name` in the CNI_PATH folders (error 103 when there is none)."""
    if "/" in name or not name or name in (".", ".."):
        raise CniError(spec.INVALID_CONFIG, f"plugin type {name!r} is not a plain name")
    for folder in cni_path:
        exe = os.path.join(folder, name)
        if os.path.isfile(exe) and os.access(exe, os.X_OK):
            return exe
    raise CniError(spec.PLUGIN_NOT_FOUND, f"cannot find plugin {name!r} in CNI_PATH "
                   f"{':'.join(cni_path) or '(empty)'}")


def invoke(exe: str, command: str, config: Mapping[str, Any], *, container_id: str = "",
           netns: str = "", ifname: str = "", args: str = "", cni_path: Sequence[str] = (),
           node: str | None = None, stdin: bytes | None = None) -> Call:
    """Execute a plugin with the CNI environment and config; inside namespace `node` if given."""
    cni = {"CNI_COMMAND": command, "CNI_CONTAINERID": container_id, "CNI_NETNS": netns,
           "CNI_IFNAME": "" if command in NO_IFNAME else ifname, "CNI_ARGS": args,
           "CNI_PATH": ":".join(cni_path)}
    cni = {k: v for k, v in cni.items() if v}
    # As libcni: the caller's environment plus the call's variables; none of the caller's own
    # CNI_* (a delegating plugin has them) leaks into a call that does not set it.
    env = {k: v for k, v in os.environ.items() if not k.startswith("CNI_")}
    env.setdefault("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
    env[REPORT_ENV] = "1"  # the call's IPAM calls, on its stderr: Call.delegations reads them
    data = json.dumps(config).encode() if stdin is None else stdin
    argv = [exe]
    if node is not None:
        # nsenter --net only: the plugin needs the node's netlink, /proc/sys/net and iptables,
        # and the node's files (IPAM store, CNI_PATH) are the machine's.
        path = node if node.startswith("/") else os.path.join(NETNS_DIR, node)
        argv = ["nsenter", f"--net={path}", "--", exe]
    start = time.perf_counter()
    try:
        done = subprocess.run(argv, input=data, capture_output=True, check=False,
                              env={**env, **cni})
    except OSError as e:
        raise CniError(spec.IO_FAILURE, f"cannot run {exe}: {e.strerror}") from None
    seconds = time.perf_counter() - start
    out = done.stdout.decode(errors="replace")
    try:
        answer = json.loads(out) if out.strip() else None
    except ValueError:
        answer = None
    call = Call(exe, command, cni, dict(config), done.returncode, out,
                answer if isinstance(answer, dict) else None, seconds,
                done.stderr.decode(errors="replace"))
    trace = _TRACE.get()
    if trace is not None:
        trace.append(call)
    return call


def delegate(kind: str, req: spec.Request) -> dict[str, Any] | None:
    """Call the IPAM plugin `kind` with the plugin's own request, as the spec says; cnilab-ipam
    runs in this process.

    Executing cnilab-ipam would start a second Python for every call (~40 ms); any other IPAM
    plugin (host-local, dhcp, static) is executed from CNI_PATH.
    """
    if kind == "cnilab-ipam":
        from cnilab.cni import ipam as local

        return local.handle(req)
    env = req.env
    exe = find_plugin(kind, env.path)
    return invoke(exe, env.command, req.config, container_id=env.container_id,
                  netns=env.netns, ifname=env.ifname, args=env.cni_args,
                  cni_path=env.path).result()


def report_delegation(kind: str, command: str, conf: Mapping[str, Any],
                      answer: Mapping[str, Any] | None) -> None:
    """Write one DELEGATED line on stderr, when the caller asked (REPORT_ENV): the IPAM call
    just made and what it answered."""
    if os.environ.get(REPORT_ENV) != "1":
        return
    import sys

    line = json.dumps({"plugin": kind, "command": command, "config": dict(conf),
                       "answer": dict(answer) if answer is not None else None})
    print(DELEGATED + line, file=sys.stderr, flush=True)


def config_version(answer: Call) -> str:
    """The cniVersion to write for a reference plugin, from its VERSION answer: 1.0.0, or its
    newest when it is older (containernetworking-plugins 0.9, as in Debian 11 and Ubuntu 22.04,
    stops at 0.4.0 and refuses a 1.0.0 configuration, as a runtime's admin would find)."""
    known = (answer.answer or {}).get("supportedVersions") or []
    if "1.0.0" in known or not known:
        return "1.0.0"
    return max(known, key=lambda v: tuple(int(x) for x in v.split(".") if x.isdigit()))
