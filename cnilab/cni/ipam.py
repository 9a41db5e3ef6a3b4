"""cnilab-ipam: a host-local compatible IPAM plugin (ranges, routes, dataDir, one file per address).

The config and the CNI commands; the store (host-local's layout: one file per address) is in
ipam_store. Files only: this module never touches the kernel.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from ipaddress import IPv4Address, IPv4Network, ip_address, ip_network
from typing import Any

from cnilab.cni import spec
from cnilab.cni.ipam_store import LOCK_TIMEOUT, Range, Store
from cnilab.cni.spec import CniError
from cnilab.compat import valueclass

DEFAULT_DATA_DIR = "/var/lib/cni/networks"


@valueclass(frozen=True)
class IpamConfig:
    """The ipam section, checked: range sets (one address each), routes, where leases live."""

    network: str
    range_sets: tuple[tuple[Range, ...], ...]
    routes: tuple[dict[str, str], ...]
    data_dir: str  # os.path's, not pathlib's: the plugin path never imports pathlib
    dns: dict[str, Any]
    lock_timeout: float = LOCK_TIMEOUT

    @property
    def store(self) -> str:
        """This network's folder of leases."""
        return os.path.join(self.data_dir, self.network)

    def leases(self) -> Store:
        """This network's store of leases."""
        return Store(self.store, self.lock_timeout)


def _addr(raw: Any, what: str) -> IPv4Address:
    try:
        ip = ip_address(raw)
    except ValueError:
        raise CniError(spec.INVALID_CONFIG, f"ipam {what} {raw!r} is not an IP address") from None
    if not isinstance(ip, IPv4Address):
        raise CniError(spec.UNSUPPORTED_FIELD, f"unsupported field: ipam {what}={raw} "
                       "(cnilab-ipam is IPv4 only)")
    return ip


def _range(raw: Any, where: str) -> Range:
    if not isinstance(raw, dict) or "subnet" not in raw:
        raise CniError(spec.INVALID_CONFIG, f"ipam {where} has no subnet")
    try:
        subnet = ip_network(raw["subnet"], strict=False)
    except (ValueError, TypeError):
        raise CniError(spec.INVALID_CONFIG,
                       f"ipam {where}.subnet {raw['subnet']!r} is not a subnet") from None
    if not isinstance(subnet, IPv4Network):
        raise CniError(spec.UNSUPPORTED_FIELD, f"unsupported field: ipam {where}.subnet="
                       f"{raw['subnet']} (cnilab-ipam is IPv4 only)")
    if subnet.prefixlen > 30:
        raise CniError(spec.INVALID_CONFIG, f"ipam {where}.subnet {subnet} is too small")
    first, last = subnet.network_address + 1, subnet.broadcast_address - 1
    start = _addr(raw.get("rangeStart", str(first)), f"{where}.rangeStart")
    end = _addr(raw.get("rangeEnd", str(last)), f"{where}.rangeEnd")
    gateway = _addr(raw.get("gateway", str(first)), f"{where}.gateway")
    for what, ip in (("rangeStart", start), ("rangeEnd", end), ("gateway", gateway)):
        if not first <= ip <= last:
            raise CniError(spec.INVALID_CONFIG,
                           f"ipam {where}.{what} {ip} is not a usable address of {subnet}")
    if start > end:
        raise CniError(spec.INVALID_CONFIG, f"ipam {where}.rangeStart {start} is after "
                       f"rangeEnd {end}")
    return Range(subnet, start, end, gateway)


def parse_ipam(conf: Mapping[str, Any]) -> IpamConfig:
    """host-local's ipam section: `ranges` (list of range sets) or the older flat `subnet`."""
    ipam = conf.get("ipam")
    if not isinstance(ipam, dict):
        raise CniError(spec.INVALID_CONFIG, "the network configuration has no ipam section")
    if "ranges" in ipam:
        sets = ipam["ranges"]
        if not isinstance(sets, list) or not sets or not all(
                isinstance(s, list) and s for s in sets):
            raise CniError(spec.INVALID_CONFIG, "ipam ranges must be a non-empty list of "
                           "non-empty lists of ranges")
        range_sets = tuple(tuple(_range(r, f"ranges[{i}][{j}]") for j, r in enumerate(s))
                           for i, s in enumerate(sets))
    elif "subnet" in ipam:
        range_sets = ((_range(ipam, "subnet"),),)
    else:
        raise CniError(spec.INVALID_CONFIG, "ipam needs ranges (or subnet)")
    for rs in range_sets:
        for i, a in enumerate(rs):
            for b in rs[i + 1:]:
                if a.start <= b.end and b.start <= a.end:
                    raise CniError(spec.INVALID_CONFIG, f"ipam ranges {a} and {b} overlap")
    routes = ipam.get("routes", [])
    if not isinstance(routes, list) or not all(
            isinstance(r, dict) and spec._is_ip(r.get("dst"), cidr=True) for r in routes):
        raise CniError(spec.INVALID_CONFIG, "ipam routes must be objects with a dst like "
                       "0.0.0.0/0")
    timeout = ipam.get("lockTimeout", LOCK_TIMEOUT)
    if not isinstance(timeout, (int, float)) or timeout < 0:
        raise CniError(spec.INVALID_CONFIG, f"ipam lockTimeout {timeout!r} is not seconds")
    return IpamConfig(conf["name"], range_sets, tuple(routes),
                      os.fspath(ipam.get("dataDir") or DEFAULT_DATA_DIR),
                      dict(ipam.get("dns") or conf.get("dns") or {}), float(timeout))


def _result(cfg: IpamConfig, version: str, got: list[tuple[IPv4Address, Range]]
            ) -> dict[str, Any]:
    return {
        "cniVersion": version,
        "ips": [{"address": f"{ip}/{r.subnet.prefixlen}", "gateway": str(r.gateway)}
                for ip, r in got],
        "routes": [dict(r) for r in cfg.routes],
        "dns": cfg.dns,
    }


def add(conf: Mapping[str, Any], container_id: str, ifname: str,
        args: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Allocate one address per range set; CNI_ARGS IP= asks for a given address."""
    cfg = parse_ipam(conf)
    requested = _requested(args or {}, conf, len(cfg.range_sets))
    store = cfg.leases()
    got: list[tuple[IPv4Address, Range]] = []
    with store.locked():
        taken = store.held_by(container_id, ifname)
        if taken:
            raise CniError(spec.ADDRESS_UNAVAILABLE, f"{taken[0]} has been allocated to "
                           f"{container_id}, duplicate allocation is not allowed")
        try:
            for i, rset in enumerate(cfg.range_sets):
                want = next((ip for ip in requested if any(ip in r for r in rset)), None)
                if requested and want is None and i == 0 and len(cfg.range_sets) == 1:
                    want = requested[0]  # let allocate() say why it is not in the range
                got.append(store.allocate(i, rset, container_id, ifname, want))
        except BaseException:
            store.release(cid=container_id, ifname=ifname)  # a failed ADD leaves nothing
            raise
    return _result(cfg, conf["cniVersion"], got)


def _requested(args: Mapping[str, str], conf: Mapping[str, Any], sets: int
               ) -> list[IPv4Address]:
    """The addresses the runtime asks for, as host-local gathers them: CNI_ARGS IP=,
    args.cni.ips, runtimeConfig.ips (the `ips` capability); "10.0.0.5" or "10.0.0.5/24"."""
    asked: list[tuple[str, str, int]] = []
    raw = args.get("IP", "")
    asked += [("CNI_ARGS IP", p.strip(), spec.INVALID_ENVIRONMENT)
              for p in raw.split(",") if p.strip()]
    for where, holder in (("args.cni.ips", (conf.get("args") or {}).get("cni")),
                          ("runtimeConfig.ips", conf.get("runtimeConfig"))):
        ips = holder.get("ips") if isinstance(holder, dict) else None
        if ips is None:
            continue
        if not isinstance(ips, list) or not all(isinstance(i, str) for i in ips):
            raise CniError(spec.INVALID_CONFIG, f"{where} is not a list of addresses")
        asked += [(where, i, spec.INVALID_CONFIG) for i in ips]
    out: list[IPv4Address] = []
    for where, text, code in asked:
        try:
            ip = ip_address(text.split("/")[0])
        except ValueError:
            raise CniError(code, f"{where}={text!r} is not an IP address") from None
        if not isinstance(ip, IPv4Address):
            raise CniError(spec.UNSUPPORTED_FIELD, f"unsupported field: {where}={text}")
        if ip not in out:
            out.append(ip)
    if len(out) > sets:
        raise CniError(spec.INVALID_ENVIRONMENT, f"{', '.join(map(str, out))} asks for more "
                       f"addresses than there are range sets ({sets})")
    return out


def delete(conf: Mapping[str, Any], container_id: str, ifname: str) -> None:
    """Release the container's addresses; already released (or never allocated) is fine."""
    cfg = parse_ipam(conf)
    if not os.path.isdir(cfg.store):
        return
    store = cfg.leases()
    with store.locked(create=False):
        store.release(cid=container_id, ifname=ifname)


def check(conf: Mapping[str, Any], container_id: str, ifname: str) -> None:
    """Error unless the container still holds an address in every range set."""
    cfg = parse_ipam(conf)
    held = [ip for ip, owner in cfg.leases().leases().items() if owner[0] == container_id
            and owner[1] in (ifname, "")]
    for rset in cfg.range_sets:
        if not any(ip in r for ip in held for r in rset):
            raise CniError(spec.CHECK_FAILED, f"{container_id}/{ifname} holds no address in "
                           f"range set {', '.join(map(str, rset))}")


def gc(conf: Mapping[str, Any], keep: set[tuple[str, str]]) -> list[IPv4Address]:
    """Release every address whose attachment is not in `keep`."""
    cfg = parse_ipam(conf)
    if not os.path.isdir(cfg.store):
        return []
    store = cfg.leases()
    with store.locked(create=False):
        return store.release(keep=keep)


def status(conf: Mapping[str, Any]) -> None:
    """Error 50 when an ADD could not get an address now (store unwritable or range full)."""
    cfg = parse_ipam(conf)
    probe = os.path.abspath(cfg.store if os.path.isdir(cfg.store) else cfg.data_dir)
    while not os.path.exists(probe) and probe != os.path.dirname(probe):
        probe = os.path.dirname(probe)
    if not os.access(probe, os.W_OK):
        raise CniError(spec.NOT_AVAILABLE, f"the IPAM store {cfg.store} is not writable")
    held = set(cfg.leases().leases())
    for rset in cfg.range_sets:
        if all(ip in held for r in rset for ip in r.addresses()):
            raise CniError(spec.NOT_AVAILABLE, "no IP addresses available in range set "
                           f"{', '.join(map(str, rset))}")


def handle(req: spec.Request) -> dict[str, Any] | None:
    """One CNI call to the IPAM plugin (its executable's, or a plugin's in this process)."""
    env, conf = req.env, req.config
    if env.command == "ADD":
        return add(conf, env.container_id, env.ifname, env.args)
    if env.command == "DEL":
        delete(conf, env.container_id, env.ifname)
    elif env.command == "CHECK":
        check(conf, env.container_id, env.ifname)
    elif env.command == "GC":
        gc(conf, spec.valid_attachments(conf))
    elif env.command == "STATUS":
        status(conf)
    return None


def main() -> int:
    """Entry point of the cnilab-ipam executable."""
    return spec.main(handle)
