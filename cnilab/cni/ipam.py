"""cnilab-ipam: a host-local compatible IPAM plugin (ranges, routes, dataDir, one file per address).

The store is host-local's: DATADIR/NETWORK/ holds one file per allocated address, named by
the address and containing "CONTAINERID\\r\\nIFNAME", a `last_reserved_ip.N` file per range set
and a `lock` file taken with flock, so cnilab-ipam and host-local can even share one network.
Files only: this module never touches the kernel.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network, ip_address, ip_network
from pathlib import Path
from typing import Any

from cnilab.cni import spec
from cnilab.cni.spec import CniError

DEFAULT_DATA_DIR = "/var/lib/cni/networks"
LINE_BREAK = "\r\n"  # host-local's separator between container ID and interface name
LOCK_TIMEOUT = 10.0  # seconds; then "try again later" (11)


@dataclass(frozen=True)
class Range:
    """One range of a range set: addresses rangeStart..rangeEnd of subnet, minus the gateway."""

    subnet: IPv4Network
    start: IPv4Address
    end: IPv4Address
    gateway: IPv4Address

    def __contains__(self, ip: IPv4Address) -> bool:
        return self.start <= ip <= self.end

    def addresses(self, first: int | None = None, stop: int | None = None
                  ) -> Iterator[IPv4Address]:
        """Every address this range may hand out, in order (from `first`, up to `stop`)."""
        begin = int(self.start) if first is None else max(first, int(self.start))
        end = int(self.end) if stop is None else min(stop, int(self.end))
        for n in range(begin, end + 1):
            ip = IPv4Address(n)
            if ip != self.gateway:
                yield ip

    def __str__(self) -> str:
        return f"{self.start}-{self.end}"


@dataclass(frozen=True)
class IpamConfig:
    """The ipam section, checked: range sets (one address each), routes, where leases live."""

    network: str
    range_sets: tuple[tuple[Range, ...], ...]
    routes: tuple[dict[str, str], ...]
    data_dir: Path
    dns: dict[str, Any]
    lock_timeout: float = LOCK_TIMEOUT

    @property
    def store(self) -> Path:
        """This network's folder of leases."""
        return self.data_dir / self.network


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
                      Path(ipam.get("dataDir") or DEFAULT_DATA_DIR),
                      dict(ipam.get("dns") or conf.get("dns") or {}), float(timeout))


class Store:
    """The leases of one network, under its flock (hold it with `with store.locked():`)."""

    def __init__(self, cfg: IpamConfig) -> None:
        self.cfg = cfg
        self.dir = cfg.store

    @contextlib.contextmanager
    def locked(self, create: bool = True) -> Iterator[None]:
        """Hold the network's lock; after lockTimeout seconds: error 11, try again later."""
        try:
            if create:
                self.dir.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.dir / "lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError as e:
            raise CniError(spec.IO_FAILURE, f"cannot open the IPAM store {self.dir}: "
                           f"{e.strerror}") from None
        try:
            deadline = time.monotonic() + self.cfg.lock_timeout
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        raise CniError(spec.TRY_AGAIN_LATER, f"the IPAM store {self.dir} is "
                                       "locked by another call", "try again later") from None
                    time.sleep(0.005)
            yield
        finally:
            os.close(fd)

    def leases(self) -> dict[IPv4Address, tuple[str, str]]:
        """Every allocated address with its (container ID, interface name)."""
        out: dict[IPv4Address, tuple[str, str]] = {}
        for name, owner in self._owners():
            try:
                out[IPv4Address(name)] = owner
            except ValueError:
                continue
        return out

    def held_by(self, cid: str, ifname: str) -> list[IPv4Address]:
        """The addresses (cid, ifname) holds: the duplicate check of every ADD."""
        return [IPv4Address(name) for name, owner in self._owners() if owner == (cid, ifname)]

    def _owners(self) -> Iterator[tuple[str, tuple[str, str]]]:
        """(file name, owner) of every lease file, names unparsed.

        Every ADD reads every lease, as host-local does: plain os calls and no address parsed
        but the ones asked for (~4 µs a lease instead of ~20), so a node of 250 pods stays
        cheap. Bytes, not text mode: universal newlines would turn "\r\n" into "\n".
        """
        try:  # names looked up in the open folder: no walk of the whole path per lease
            folder = os.open(self.dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except FileNotFoundError:
            return
        try:
            for entry in os.scandir(folder):
                if not entry.name[:1].isdigit():
                    continue  # lock, last_reserved_ip.N
                try:
                    fd = os.open(entry.name, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW,
                                 dir_fd=folder)
                except OSError:
                    continue  # released meanwhile, or not a plain file
                try:
                    text = os.read(fd, 4096).decode("utf-8", errors="replace")
                finally:
                    os.close(fd)
                cid, _, ifname = text.partition(LINE_BREAK)
                yield entry.name, (cid.strip(), ifname.strip())
        finally:
            os.close(folder)

    def _write_new(self, ip: IPv4Address, owner: str) -> bool:
        try:
            fd = os.open(self.dir / str(ip), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            return False
        except OSError as e:
            raise CniError(spec.IO_FAILURE, f"cannot write {self.dir / str(ip)}: "
                           f"{e.strerror}") from None
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(owner)
        return True

    def _last(self, index: int) -> IPv4Address | None:
        with contextlib.suppress(FileNotFoundError, ValueError):
            ip = ip_address((self.dir / f"last_reserved_ip.{index}").read_text().strip())
            return ip if isinstance(ip, IPv4Address) else None
        return None

    def allocate(self, index: int, rset: tuple[Range, ...], cid: str, ifname: str,
                 requested: IPv4Address | None) -> tuple[IPv4Address, Range]:
        """Reserve one address of a range set: the requested one, or the next free after the
        last one handed out (host-local's round robin, so a freed address is not reused at once).
        """
        owner = f"{cid}{LINE_BREAK}{ifname}"
        if requested is not None:
            rng = next((r for r in rset if requested in r and requested != r.gateway), None)
            if rng is None:
                raise CniError(spec.ADDRESS_UNAVAILABLE, f"requested IP address {requested} is "
                               f"not in range set {', '.join(map(str, rset))}")
            if not self._write_new(requested, owner):
                raise CniError(spec.ADDRESS_UNAVAILABLE,
                               f"requested IP address {requested} is already allocated")
            self._remember(index, requested)
            return requested, rng
        for ip, rng in round_robin(rset, self._last(index)):
            if self._write_new(ip, owner):
                self._remember(index, ip)
                return ip, rng
        raise CniError(spec.RANGE_EXHAUSTED, "no IP addresses available in range set "
                       f"{', '.join(map(str, rset))}",
                       "delete pods (CNI DEL) or widen the range")

    def _remember(self, index: int, ip: IPv4Address) -> None:
        (self.dir / f"last_reserved_ip.{index}").write_text(str(ip), encoding="utf-8")

    def release(self, keep: set[tuple[str, str]] | None = None, cid: str = "",
                ifname: str = "") -> list[IPv4Address]:
        """Remove the leases of (cid, ifname), or with `keep`, every lease not in keep."""
        gone = []
        for ip, owner in self.leases().items():
            # A bare container ID (older host-local) matches any interface name.
            mine = owner[0] == cid and owner[1] in (ifname, "")
            if (keep is not None and owner not in keep and (owner[0], "") not in keep) or (
                    keep is None and mine):
                with contextlib.suppress(FileNotFoundError):
                    (self.dir / str(ip)).unlink()
                gone.append(ip)
        return gone


def round_robin(rset: tuple[Range, ...], last: IPv4Address | None
                 ) -> Iterator[tuple[IPv4Address, Range]]:
    """Every address of the range set once, from the one after `last` round to `last` itself.

    Made as it is walked: the first free address is usually the next one, and a /16 range would
    otherwise be 65,000 addresses built for every ADD.
    """
    k = next((i for i, r in enumerate(rset)
              if last is not None and last in r and last != r.gateway), None)
    if last is None or k is None:
        for r in rset:
            yield from ((ip, r) for ip in r.addresses())
        return
    here = rset[k]
    yield from ((ip, here) for ip in here.addresses(int(last) + 1))
    for r in rset[k + 1:] + rset[:k]:
        yield from ((ip, r) for ip in r.addresses())
    yield from ((ip, here) for ip in here.addresses(stop=int(last)))


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
    store = Store(cfg)
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
    if not cfg.store.is_dir():
        return
    store = Store(cfg)
    with store.locked(create=False):
        store.release(cid=container_id, ifname=ifname)


def check(conf: Mapping[str, Any], container_id: str, ifname: str) -> None:
    """Error unless the container still holds an address in every range set."""
    cfg = parse_ipam(conf)
    held = [ip for ip, owner in Store(cfg).leases().items() if owner[0] == container_id
            and owner[1] in (ifname, "")]
    for rset in cfg.range_sets:
        if not any(ip in r for ip in held for r in rset):
            raise CniError(spec.CHECK_FAILED, f"{container_id}/{ifname} holds no address in "
                           f"range set {', '.join(map(str, rset))}")


def gc(conf: Mapping[str, Any], keep: set[tuple[str, str]]) -> list[IPv4Address]:
    """Release every address whose attachment is not in `keep`."""
    cfg = parse_ipam(conf)
    if not cfg.store.is_dir():
        return []
    store = Store(cfg)
    with store.locked(create=False):
        return store.release(keep=keep)


def status(conf: Mapping[str, Any]) -> None:
    """Error 50 when an ADD could not get an address now (store unwritable or range full)."""
    cfg = parse_ipam(conf)
    probe = cfg.store if cfg.store.is_dir() else cfg.data_dir
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if not os.access(probe, os.W_OK):
        raise CniError(spec.NOT_AVAILABLE, f"the IPAM store {cfg.store} is not writable")
    held = set(Store(cfg).leases())
    for rset in cfg.range_sets:
        if all(ip in held for r in rset for ip in r.addresses()):
            raise CniError(spec.NOT_AVAILABLE, "no IP addresses available in range set "
                           f"{', '.join(map(str, rset))}")


def handle(env: spec.Environment, conf: dict[str, Any]) -> dict[str, Any] | None:
    """One CNI call to the IPAM plugin."""
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
