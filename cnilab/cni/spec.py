"""The CNI protocol (SPEC.md 1.0.0 and 1.1.0): CNI_* environment, config on stdin, results, errors.

Pure data and validation: no kernel, no Typer, no Rich. Plugin executables import this first,
so it imports only the standard library.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from ipaddress import IPv4Address, IPv4Interface, ip_address, ip_interface
from typing import Any, Optional

from cnilab.compat import field, replace, valueclass
from cnilab.errors import CnilabError
from cnilab.names import IFNAME_MAX, ifname_problem

SUPPORTED_VERSIONS = ("1.0.0", "1.1.0")
LATEST = SUPPORTED_VERSIONS[-1]
COMMANDS = ("ADD", "DEL", "CHECK", "VERSION", "STATUS", "GC")
NEW_IN_1_1 = ("STATUS", "GC")

# The spec's well-known error codes; 100 and up are this plugin's own.
INCOMPATIBLE_VERSION = 1
UNSUPPORTED_FIELD = 2
UNKNOWN_CONTAINER = 3
INVALID_ENVIRONMENT = 4
IO_FAILURE = 5
DECODE_FAILURE = 6
INVALID_CONFIG = 7
TRY_AGAIN_LATER = 11
NOT_AVAILABLE = 50  # STATUS: the plugin cannot service ADD requests
LIMITED_CONNECTIVITY = 51  # STATUS: ... and existing containers may have limited connectivity
KERNEL_REFUSED = 100
INTERFACE_EXISTS = 101
CHECK_FAILED = 102
PLUGIN_NOT_FOUND = 103
RANGE_EXHAUSTED = 110
ADDRESS_UNAVAILABLE = 111

# SPEC.md: container IDs and network names; Linux: interface names (IFNAMSIZ 16, NUL included).
ID_RE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.\-]*$")
VERSION_RE = re.compile(r"^\d{1,3}\.\d{1,3}\.\d{1,3}$")

# What each command requires from the environment (SPEC.md, "Parameters").
REQUIRED_ENV = {
    "ADD": ("CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME", "CNI_PATH"),
    "CHECK": ("CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME", "CNI_PATH"),
    "DEL": ("CNI_CONTAINERID", "CNI_IFNAME", "CNI_PATH"),
    "VERSION": (),
    "STATUS": ("CNI_PATH",),
    "GC": ("CNI_PATH",),
}


class CniError(CnilabError):
    """A failure as the spec's error object: a code, a message, optional details."""

    exit_code = 1

    def __init__(self, code: int, msg: str, details: str = "") -> None:
        super().__init__(msg, hint=details or None)
        self.code, self.msg, self.details = code, msg, details

    def to_dict(self, cni_version: str = LATEST) -> dict[str, Any]:
        """The error object written on stdout."""
        out: dict[str, Any] = {"cniVersion": cni_version, "code": self.code, "msg": self.msg}
        if self.details:
            out["details"] = self.details
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CniError:
        """Rebuild an error a delegated plugin printed."""
        return cls(int(data.get("code", KERNEL_REFUSED)), str(data.get("msg", "unknown error")),
                   str(data.get("details", "")))


@valueclass(frozen=True)
class Environment:
    """The CNI_* variables of one call, checked."""

    command: str
    container_id: str = ""
    netns: str = ""
    ifname: str = ""
    args: dict[str, str] = field(default_factory=dict)
    path: tuple[str, ...] = ()

    @property
    def cni_args(self) -> str:
        """CNI_ARGS as a runtime sets it: K=V;K=V."""
        return format_cni_args(self.args.items())


def check_ifname(name: str, what: str = "CNI_IFNAME") -> str | None:
    """Why `name` cannot be a Linux interface name, or None when it can."""
    why = ifname_problem(name)
    return None if why is None else {
        "empty": f"{what} is empty",
        "chars": f"{what} {name!r} is '.'/'..' or contains '/', ':', whitespace or a control "
                 "character",
        "long": f"{what} {name!r} is longer than {IFNAME_MAX} bytes"}[why]


def format_cni_args(pairs: Iterable[tuple[str, str]]) -> str:
    """CNI_ARGS from (key, value) pairs: 'K1=V1;K2=V2'."""
    return ";".join(f"{k}={v}" for k, v in pairs)


def parse_cni_args(text: str) -> dict[str, str]:
    """CNI_ARGS 'K1=V1;K2=V2' as a dict; ValueError on a part that is not K=V."""
    out: dict[str, str] = {}
    for part in filter(None, text.split(";")):
        key, eq, value = part.partition("=")
        if not eq or not key:
            raise ValueError(part)
        out[key] = value
    return out


def environment(command: str, container_id: str = "", netns: str = "", ifname: str = "",
                args: str = "", path: Sequence[str] | None = None) -> Environment:
    """The CNI_* values of one call, checked for the command; CniError 4 names every bad one.

    path None: a caller in this process, which names no CNI_PATH (cnilab-ipam needs none).
    """
    if command not in COMMANDS:
        raise CniError(INVALID_ENVIRONMENT, f"CNI_COMMAND {command!r} is not one of "
                       f"{', '.join(COMMANDS)}" if command else "CNI_COMMAND is not set")
    given = {"CNI_CONTAINERID": container_id, "CNI_NETNS": netns, "CNI_IFNAME": ifname,
             "CNI_PATH": "-" if path is None else ":".join(path)}
    missing = [v for v in REQUIRED_ENV[command] if not given[v]]
    if missing:
        raise CniError(INVALID_ENVIRONMENT, f"{command} needs {', '.join(missing)}, "
                       f"which {'is' if len(missing) == 1 else 'are'} not set")
    bad = []
    if container_id and not ID_RE.match(container_id):
        bad.append(f"CNI_CONTAINERID {container_id!r} has characters other than letters, "
                   "digits, _ . -")
    if ifname and (why := check_ifname(ifname)):
        bad.append(why)
    if netns and not netns.startswith("/"):
        bad.append(f"CNI_NETNS {netns!r} is not an absolute path")
    try:
        parsed = parse_cni_args(args)
    except ValueError as e:
        bad.append(f"CNI_ARGS part {e.args[0]!r} is not KEY=VALUE")
        parsed = {}
    if bad:
        raise CniError(INVALID_ENVIRONMENT, "; ".join(bad))
    return Environment(command, container_id, netns, ifname, parsed, tuple(path or ()))


def read_environment(environ: Mapping[str, str]) -> Environment:
    """The CNI_* variables of an executable's environment, checked (environment())."""
    return environment(environ.get("CNI_COMMAND", ""), environ.get("CNI_CONTAINERID", ""),
                       environ.get("CNI_NETNS", ""), environ.get("CNI_IFNAME", ""),
                       environ.get("CNI_ARGS", ""),
                       tuple(p for p in environ.get("CNI_PATH", "").split(":") if p))


@valueclass(frozen=True)
class Request:
    """One CNI call, parsed and checked once at the boundary: its environment and its config."""

    env: Environment
    config: dict[str, Any]

    @property
    def command(self) -> str:
        """CNI_COMMAND."""
        return self.env.command

    def as_command(self, command: str) -> Request:
        """The same call with another command (a failed ADD's DEL)."""
        return replace(self, env=replace(self.env, command=command))


def request(command: str, config: Mapping[str, Any], container_id: str = "", netns: str = "",
            ifname: str = "", args: str = "", path: Sequence[str] | None = None) -> Request:
    """A call made in this process, checked as the executable checks its environment and stdin."""
    env = environment(command, container_id, netns, ifname, args, path)
    return Request(env, check_config(dict(config), command))


def decode_config(text: str | bytes) -> dict[str, Any]:
    """The JSON object on stdin; CniError 6 when it is not one."""
    try:
        conf = json.loads(text)
    except RecursionError:  # 10,000 nested arrays: the reference bridge answers 6 too
        raise CniError(DECODE_FAILURE, "the network configuration on stdin is nested too "
                       "deeply") from None
    except (ValueError, UnicodeDecodeError) as e:
        raise CniError(DECODE_FAILURE, f"the network configuration on stdin is not JSON: {e}"
                       ) from None
    if not isinstance(conf, dict):
        raise CniError(DECODE_FAILURE, "the network configuration on stdin is not a JSON object")
    return conf


def check_config(conf: dict[str, Any], command: str = "ADD") -> dict[str, Any]:
    """A decoded network configuration, checked: version (1), name and type (7), prevResult."""
    version = conf.get("cniVersion")
    if not isinstance(version, str) or not version:
        raise CniError(INVALID_CONFIG, "the network configuration has no cniVersion")
    if version not in SUPPORTED_VERSIONS:
        raise CniError(INCOMPATIBLE_VERSION, f"cniVersion {version} is not supported",
                       f"supported: {', '.join(SUPPORTED_VERSIONS)}")
    if command in NEW_IN_1_1 and version == "1.0.0":
        raise CniError(INCOMPATIBLE_VERSION, f"{command} needs cniVersion 1.1.0, "
                       "the configuration says 1.0.0")
    name = conf.get("name")
    if not isinstance(name, str) or not ID_RE.match(name):
        raise CniError(INVALID_CONFIG, f"network name {name!r} is missing or not made of "
                       "letters, digits, _ . -")
    if not isinstance(conf.get("type"), str) or not conf["type"]:
        raise CniError(INVALID_CONFIG, "the network configuration has no plugin type")
    if "prevResult" in conf and not isinstance(conf["prevResult"], dict):
        raise CniError(DECODE_FAILURE, "prevResult is not a JSON object")
    return conf


def valid_attachments(conf: Mapping[str, Any]) -> set[tuple[str, str]]:
    """GC's (containerID, ifname) pairs still in use (1.1.0 key, or the older draft's)."""
    raw = conf.get("cni.dev/valid-attachments", conf.get("cni.dev/attachments"))
    if raw is None:
        raise CniError(INVALID_CONFIG, "GC needs cni.dev/valid-attachments")
    if not isinstance(raw, list) or not all(isinstance(a, dict) for a in raw):
        raise CniError(DECODE_FAILURE, "cni.dev/valid-attachments is not a list of objects")
    return {(str(a.get("containerID", "")), str(a.get("ifname", ""))) for a in raw}


def version_result(conf: Mapping[str, Any]) -> dict[str, Any]:
    """VERSION's answer: the versions this plugin speaks."""
    version = conf.get("cniVersion") if conf.get("cniVersion") in SUPPORTED_VERSIONS else LATEST
    return {"cniVersion": version, "supportedVersions": list(SUPPORTED_VERSIONS)}


# -- results -------------------------------------------------------------------------------------

_FIELDS = {"1.0.0": {"top": {"cniVersion", "interfaces", "ips", "routes", "dns"},
                     "interface": {"name", "mac", "sandbox"},
                     "ip": {"address", "gateway", "interface"}, "route": {"dst", "gw"}}}
_FIELDS["1.1.0"] = {
    **_FIELDS["1.0.0"],
    "interface": _FIELDS["1.0.0"]["interface"] | {"mtu", "socketPath", "pciID"},
    "route": _FIELDS["1.0.0"]["route"] | {"mtu", "advmss", "priority", "table", "scope"},
}
_DNS = {"nameservers", "domain", "search", "options"}


def _is_ip(value: Any, cidr: bool = False) -> bool:
    try:
        (ip_interface if cidr else ip_address)(value)
    except ValueError:
        return False
    return isinstance(value, str) and (not cidr or "/" in value)


def validate_result(result: Any, version: str) -> list[str]:
    """Every way `result` breaks the spec's result format for `version` (empty: valid)."""
    if version not in _FIELDS:
        return [f"unknown version {version}"]
    f = _FIELDS[version]
    if not isinstance(result, dict):
        return ["the result is not a JSON object"]
    problems = [f"unknown field {k!r}" for k in result if k not in f["top"]]
    if result.get("cniVersion") != version:
        problems.append(f"cniVersion is {result.get('cniVersion')!r}, not {version!r}")
    ifaces = result.get("interfaces", [])
    if not isinstance(ifaces, list):
        problems.append("interfaces is not a list")
        ifaces = []
    for i, iface in enumerate(ifaces):
        where = f"interfaces[{i}]"
        if not isinstance(iface, dict) or not isinstance(iface.get("name"), str):
            problems.append(f"{where} has no name")
            continue
        problems += [f"{where}: unknown field {k!r}" for k in iface if k not in f["interface"]]
        if "mac" in iface and not re.fullmatch(r"([0-9a-f]{2}:){5}[0-9a-f]{2}", iface["mac"]):
            problems.append(f"{where}.mac {iface['mac']!r} is not a MAC address")
        if "sandbox" in iface and not isinstance(iface["sandbox"], str):
            problems.append(f"{where}.sandbox is not a string")
        if "mtu" in iface and not isinstance(iface["mtu"], int):
            problems.append(f"{where}.mtu is not an integer")
    for i, ipc in enumerate(result.get("ips", [])):
        where = f"ips[{i}]"
        if not isinstance(ipc, dict) or not _is_ip(ipc.get("address"), cidr=True):
            problems.append(f"{where}.address is missing or not an address/prefix")
            continue
        problems += [f"{where}: unknown field {k!r}" for k in ipc if k not in f["ip"]]
        if "gateway" in ipc and not _is_ip(ipc["gateway"]):
            problems.append(f"{where}.gateway is not an IP address")
        if "interface" in ipc and not (isinstance(ipc["interface"], int)
                                       and 0 <= ipc["interface"] < len(ifaces)):
            problems.append(f"{where}.interface is not an index into interfaces")
    for i, route in enumerate(result.get("routes", [])):
        where = f"routes[{i}]"
        if not isinstance(route, dict) or not _is_ip(route.get("dst"), cidr=True):
            problems.append(f"{where}.dst is missing or not an address/prefix")
            continue
        problems += [f"{where}: unknown field {k!r}" for k in route if k not in f["route"]]
        if "gw" in route and not _is_ip(route["gw"]):
            problems.append(f"{where}.gw is not an IP address")
    dns = result.get("dns", {})
    if not isinstance(dns, dict):
        problems.append("dns is not an object")
    else:
        problems += [f"dns: unknown field {k!r}" for k in dns if k not in _DNS]
    return problems


def convert_result(result: Mapping[str, Any], version: str) -> dict[str, Any]:
    """The same result in `version`'s format (1.0.0 drops the fields 1.1.0 added)."""
    f = _FIELDS[version]
    out: dict[str, Any] = {"cniVersion": version}
    for key in ("interfaces", "ips", "routes"):
        kind = {"interfaces": "interface", "ips": "ip", "routes": "route"}[key]
        if key in result:
            out[key] = [{k: v for k, v in item.items() if k in f[kind]} for item in result[key]]
    out["dns"] = dict(result.get("dns") or {})
    return out


def gateway_of(result: Mapping[str, Any], address: IPv4Interface) -> IPv4Address | None:
    """The gateway an IPAM result gives for one of its addresses."""
    for ipc in result.get("ips", []):
        if ipc.get("address") == str(address) and ipc.get("gateway"):
            return IPv4Address(ipc["gateway"])
    return None


# -- running as an executable ----------------------------------------------------------------------

Handler = Callable[[Request], Optional[dict[str, Any]]]


def reply_version(conf: Mapping[str, Any]) -> str:
    """The cniVersion every answer (errors too) carries: the config's, if it is one; else LATEST."""
    version = conf.get("cniVersion")
    return version if isinstance(version, str) and VERSION_RE.match(version) else LATEST


def run(handler: Handler, environ: Mapping[str, str], stdin: bytes) -> tuple[str, int]:
    """Run one CNI call: stdout text and exit code; every failure becomes an error object.

    stdin is decoded once, here: the handler gets one checked Request.
    """
    try:
        conf, undecodable = decode_config(stdin), None
    except CniError as e:
        conf, undecodable = {}, e
    version = reply_version(conf)
    if environ.get("CNI_COMMAND") == "VERSION":
        # VERSION needs nothing else: libcni probes with placeholders in the other variables.
        return json.dumps(version_result(conf)), 0
    try:
        env = read_environment(environ)
        if undecodable is not None:
            raise undecodable
        answer = handler(Request(env, check_config(conf, env.command)))
        return ("" if answer is None else json.dumps(answer, indent=4)), 0
    except CniError as e:
        return json.dumps(e.to_dict(version), indent=4), 1
    except OSError as e:  # files (the IPAM store) or a plugin that could not be run
        err = CniError(IO_FAILURE, f"I/O failure: {e}")
        return json.dumps(err.to_dict(version), indent=4), 1
    except CnilabError as e:  # e.g. the kernel refused an operation
        err = CniError(KERNEL_REFUSED, e.message, e.hint or "")
        return json.dumps(err.to_dict(version), indent=4), 1
    except Exception as e:  # a bug: still answer with an error object, keep the stack on stderr
        import traceback

        traceback.print_exc(file=sys.stderr)
        return json.dumps(CniError(KERNEL_REFUSED, f"internal error: {e!r}").to_dict(version)), 1


def main(handler: Handler) -> int:
    """Entry point of a plugin executable: environment and stdin in, JSON on stdout."""
    import os

    # Runtimes may call plugins with a bare environment; iptables and friends live in sbin.
    os.environ.setdefault("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
    try:
        stdin = sys.stdin.buffer.read()
    except OSError as e:
        print(json.dumps(CniError(IO_FAILURE, f"cannot read stdin: {e}").to_dict()))
        return 1
    text, code = run(handler, os.environ, stdin)
    if text:
        sys.stdout.write(text + "\n")
    return code
