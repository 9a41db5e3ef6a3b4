"""The leases of a host-local store, and the ranges they are handed out from.

DATADIR/NETWORK/ holds one file per allocated address, named by the address and containing
"CONTAINERID\\r\\nIFNAME", a `last_reserved_ip.N` file per range set and a `lock` file taken
with flock: host-local's layout, so cnilab-ipam and host-local can even share one network.
Beside them, one `attachment-<hash>` file per (container ID, interface name) names the addresses
it took, so that an ADD's duplicate check and a DEL find that attachment's leases without
reading every lease of the node (host-local reads them all; its walk skips these files, whose
names are no address). Written as root: folders 0755 and files 0644 (0600 the leases) whatever
the umask, no symlink followed.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from collections.abc import Iterator
from ipaddress import IPv4Address, IPv4Network, ip_address

from cnilab.cni import spec
from cnilab.cni.spec import CniError
from cnilab.compat import sha256, valueclass
from cnilab.errors import ConfigError
from cnilab.runfiles import PRIVATE_MODE, ensure_dir, open_file

LINE_BREAK = "\r\n"  # host-local's separator between container ID and interface name
LOCK_TIMEOUT = 10.0  # seconds; then "try again later" (11)
INDEX_PREFIX = "attachment-"  # no digit first: not a lease to host-local nor to _owners()


@valueclass(frozen=True)
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


class Store:
    """The leases of one network, under its flock (hold it with `with store.locked():`)."""

    def __init__(self, folder: str | os.PathLike[str], lock_timeout: float = LOCK_TIMEOUT
                 ) -> None:
        self.dir = os.fspath(folder)  # a str, joined by os.path: no pathlib on the plugin path
        self.lock_timeout = lock_timeout

    @contextlib.contextmanager
    def locked(self, create: bool = True) -> Iterator[None]:
        """Hold the network's lock; after lockTimeout seconds: error 11, try again later."""
        try:
            if create:
                ensure_dir(self.dir)  # 0755 whatever the umask; a planted symlink refused
            fd = open_file(self._path("lock"), os.O_RDWR | os.O_CREAT, PRIVATE_MODE)
        except (OSError, ConfigError) as e:  # ConfigError: runfiles' full or read-only folder
            reason = e.strerror if isinstance(e, OSError) else e.params.get("reason")
            raise CniError(spec.IO_FAILURE, f"cannot open the IPAM store {self.dir}: "
                           f"{reason}") from None
        try:
            deadline = time.monotonic() + self.lock_timeout
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
        """The addresses (cid, ifname) holds, as its index names them: the duplicate check of
        every ADD, without reading the other leases."""
        return [IPv4Address(n) for n in self._indexed(cid, ifname) or ()
                if self._owner_of(n) == (cid, ifname)]

    def _path(self, name: str) -> str:
        """A file of the store."""
        return os.path.join(self.dir, name)

    def _index(self, cid: str, ifname: str) -> str:
        """The name of the attachment's index file."""
        digest = sha256(f"{cid}\0{ifname}".encode()).hexdigest()[:16]
        return f"{INDEX_PREFIX}{digest}"

    def _indexed(self, cid: str, ifname: str) -> list[str] | None:
        """The addresses the attachment's index names (a superset of what it holds: each is
        noted before its lease is made); None when it has no index."""
        text = self._read(self._index(cid, ifname))
        if text is None:
            return None
        head, *names = text.split("\n")
        return [n for n in names if n] if head == f"{cid}\t{ifname}" else None

    def _note(self, cid: str, ifname: str, ip: IPv4Address) -> None:
        """Add an address to the attachment's index, before its lease is made: a crash in
        between leaves a name that holds nothing, never a lease no DEL would find."""
        fd = open_file(self._path(self._index(cid, ifname)),
                       os.O_WRONLY | os.O_CREAT | os.O_APPEND, PRIVATE_MODE)
        try:
            head = b"" if os.fstat(fd).st_size else f"{cid}\t{ifname}".encode()
            os.write(fd, head + f"\n{ip}".encode())
        finally:
            os.close(fd)

    def _read(self, name: str) -> str | None:
        """A file of the store (no symlink followed); None when it is not there."""
        try:
            fd = os.open(self._path(name), os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
        except OSError:
            return None
        try:
            return os.read(fd, 1 << 16).decode("utf-8", errors="replace")
        finally:
            os.close(fd)

    def _owner_of(self, name: str) -> tuple[str, str] | None:
        """Who holds one lease: (container ID, interface name); None when it is free."""
        text = self._read(name)
        return None if text is None else owner_in(text)

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
                yield entry.name, owner_in(text)
        finally:
            os.close(folder)

    def _write_new(self, ip: IPv4Address, owner: str) -> bool:
        try:
            fd = os.open(self._path(str(ip)), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            return False
        except OSError as e:
            raise CniError(spec.IO_FAILURE, f"cannot write {self._path(str(ip))}: "
                           f"{e.strerror}") from None
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(owner)
        return True

    def _last(self, index: int) -> IPv4Address | None:
        with contextlib.suppress(FileNotFoundError, ValueError):
            with open(self._path(f"last_reserved_ip.{index}"), encoding="utf-8") as f:
                ip = ip_address(f.read().strip())
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
            self._note(cid, ifname, requested)
            if not self._write_new(requested, owner):
                raise CniError(spec.ADDRESS_UNAVAILABLE,
                               f"requested IP address {requested} is already allocated")
            self._remember(index, requested)
            return requested, rng
        for ip, rng in round_robin(rset, self._last(index)):
            if os.path.lexists(self._path(str(ip))):
                continue  # taken: not worth a note
            self._note(cid, ifname, ip)
            if self._write_new(ip, owner):
                self._remember(index, ip)
                return ip, rng
        raise CniError(spec.RANGE_EXHAUSTED, "no IP addresses available in range set "
                       f"{', '.join(map(str, rset))}",
                       "delete pods (CNI DEL) or widen the range")

    def _remember(self, index: int, ip: IPv4Address) -> None:
        # Truncated only once open_file has checked whose file it is.
        fd = open_file(self._path(f"last_reserved_ip.{index}"), os.O_WRONLY | os.O_CREAT)
        try:
            os.ftruncate(fd, 0)
            os.write(fd, str(ip).encode())
        finally:
            os.close(fd)

    def release(self, keep: set[tuple[str, str]] | None = None, cid: str = "",
                ifname: str = "") -> list[IPv4Address]:
        """Remove the leases of (cid, ifname), found by its index (every lease read only when
        it has none: leases written without one); or, with `keep`, every lease not in keep and
        the indexes of the attachments not kept."""
        if keep is None and (names := self._indexed(cid, ifname)) is not None:
            gone = [IPv4Address(n) for n in names if self._owner_of(n) in ((cid, ifname),
                                                                           (cid, ""))]
            for ip in gone:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(self._path(str(ip)))
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self._path(self._index(cid, ifname)))
            return gone
        if keep is not None:
            self._drop_indexes(keep)
        gone = []
        for name, owner in self._owners():  # an address parsed only when it goes
            # A bare container ID (older host-local) matches any interface name.
            mine = owner[0] == cid and owner[1] in (ifname, "")
            if not ((keep is not None and owner not in keep and (owner[0], "") not in keep)
                    or (keep is None and mine)):
                continue
            try:
                ip = IPv4Address(name)
            except ValueError:
                continue
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self._path(name))
            gone.append(ip)
        return gone


    def _drop_indexes(self, keep: set[tuple[str, str]]) -> None:
        """Remove the index of every attachment not in `keep` (GC)."""
        with contextlib.suppress(FileNotFoundError):
            for entry in os.scandir(self.dir):
                if not entry.name.startswith(INDEX_PREFIX):
                    continue
                head = (self._read(entry.name) or "").split("\n")[0]
                owner = tuple(head.split("\t", 1))
                if owner not in keep and (owner[0], "") not in keep:
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(self._path(entry.name))


def owner_in(lease: str) -> tuple[str, str]:
    """(container ID, interface name) from a lease file's text "CONTAINERID\\r\\nIFNAME"."""
    cid, _, ifname = lease.partition(LINE_BREAK)
    return cid.strip(), ifname.strip()


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
