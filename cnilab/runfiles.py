"""Files cnilab writes as root: explicit modes whatever the umask, opened with O_NOFOLLOW,
rewritten through a random temp name made with O_EXCL and renamed into place; never a symlink
followed, never a file or folder another user planted adopted. A line is appended whole or not
at all; a full, read-only or missing folder is one ConfigError (exit 2), never an OSError.

Root ignores file permissions, so each check is on ownership and kind, not on access: a file
cnilab trusts belongs to root or to the user running cnilab (tests run it unprivileged).
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from typing import TYPE_CHECKING

from cnilab.errors import CollisionError, ConfigError

if TYPE_CHECKING:
    from pathlib import Path

DIR_MODE = 0o755
FILE_MODE = 0o644
PRIVATE_MODE = 0o600
_OTHERS_WRITE = stat.S_IWGRP | stat.S_IWOTH


def trusted(st: os.stat_result) -> bool:
    """Whether a file belongs to root or to the user running cnilab."""
    return st.st_uid in (0, os.geteuid())


def _parents(path: str | os.PathLike[str]) -> list[str]:
    """The folders above `path`, the outermost first (what reversed(Path(path).parents) names:
    os.path's way, so that the CNI plugin's IPAM store never imports pathlib)."""
    out, here = [], os.fspath(path)
    while (up := os.path.dirname(here)) != here:
        out.append(up or ".")
        if not up:
            break
        here = up
    return out[::-1]


def check_parents(path: str | os.PathLike[str]) -> None:
    """Every folder above `path` that exists: trusted, and writable by others only if sticky
    (as /tmp is: there no one else can rename or remove what is ours)."""
    for parent in _parents(path):
        try:
            st = os.stat(parent)
        except FileNotFoundError:
            return
        link = os.lstat(parent)
        if stat.S_ISLNK(link.st_mode) and not trusted(link):
            raise CollisionError.of("unsafe_link", path=parent)
        if not trusted(st):
            raise CollisionError.of("unsafe_owner", path=parent, uid=st.st_uid)
        if st.st_mode & _OTHERS_WRITE and not st.st_mode & stat.S_ISVTX:
            raise CollisionError.of("unsafe_writable", path=parent)


def safe_dir(path: str | os.PathLike[str], mode: int = DIR_MODE) -> Path:
    """The folder `path`, made with `mode` if missing (parents too), else checked: a real
    folder (no symlink), trusted, writable by no one else. An existing folder's mode is never
    changed: it may be shared (CNILAB_RUN_DIR=/tmp), so one others can write is refused."""
    from pathlib import Path  # not at import: the CNI plugin's IPAM store calls ensure_dir

    return Path(ensure_dir(path, mode))


def ensure_dir(path: str | os.PathLike[str], mode: int = DIR_MODE) -> str:
    """safe_dir's work, on a str: the folder's absolute path."""
    path = os.path.abspath(path)
    check_parents(path)
    missing = []
    here = path
    while not os.path.lexists(here):
        missing.append(here)
        here = os.path.dirname(here)
    for folder in reversed(missing):
        # The umask may only take bits away: the mode is set below. Made meanwhile by another
        # process: checked below like any existing folder.
        try:
            os.mkdir(folder, 0o700)
        except FileExistsError:
            _check_dir(folder, None)
            continue
        except OSError as e:  # a read-only or full file system
            raise unwritable(folder, e) from None
        else:
            _check_dir(folder, mode)
    if not missing:
        _check_dir(path, None)
    return path


def new_dir(path: str | os.PathLike[str], mode: int = DIR_MODE) -> Path:
    """Make the folder `path` itself, with `mode` (its parents made or checked as safe_dir
    does); a CollisionError when it exists already: what someone else made is never adopted."""
    from pathlib import Path

    path = Path(os.path.abspath(path))
    safe_dir(path.parent)
    try:
        os.mkdir(path, 0o700)
    except FileExistsError:
        raise CollisionError.of("taken", what=f"folder {path}") from None
    _check_dir(path, mode)
    return path


def _check_dir(folder: str | os.PathLike[str], mode: int | None) -> None:
    """Refuse a symlink, a non-folder, an untrusted owner, a folder others may write; a folder
    just made gets `mode`."""
    try:
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as e:
        # With O_DIRECTORY, a symlink gives ENOTDIR rather than ELOOP.
        if e.errno == errno.ELOOP or stat.S_ISLNK(os.lstat(folder).st_mode):
            raise CollisionError.of("unsafe_link", path=folder) from None
        if e.errno == errno.ENOTDIR:
            raise CollisionError.of("unsafe_not_dir", path=folder) from None
        raise
    try:
        st = os.fstat(fd)
        if not trusted(st):
            raise CollisionError.of("unsafe_owner", path=folder, uid=st.st_uid)
        if mode is not None:
            os.fchmod(fd, mode)
        elif st.st_mode & _OTHERS_WRITE:
            raise CollisionError.of("unsafe_shared", path=folder)
    finally:
        os.close(fd)


def open_file(path: str | os.PathLike[str], flags: int, mode: int = FILE_MODE) -> int:
    """os.open with O_NOFOLLOW; refuses a symlink, a non-regular file or an untrusted owner,
    and gives a file opened for writing exactly `mode`. The caller closes the descriptor."""
    try:
        fd = os.open(path, flags | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, mode)
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise CollisionError.of("unsafe_link", path=path) from None
        raise
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_nlink > 1:
            raise CollisionError.of("unsafe_not_file", path=path)
        if not trusted(st):
            raise CollisionError.of("unsafe_owner", path=path, uid=st.st_uid)
        if flags & (os.O_WRONLY | os.O_RDWR) and stat.S_IMODE(st.st_mode) != mode:
            os.fchmod(fd, mode)
    except BaseException:
        os.close(fd)
        raise
    return fd


def read_small(path: str | os.PathLike[str], limit: int) -> bytes:
    """A file a user names (a config): a regular file (a FIFO would hang, /dev/zero never
    end) of at most `limit` bytes. OSError otherwise: EISDIR, ENODEV (not a plain file),
    EFBIG (too big), or what open() or read() said."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        mode = os.fstat(fd).st_mode
        if stat.S_ISDIR(mode):
            raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), str(path))
        if not stat.S_ISREG(mode):
            raise OSError(errno.ENODEV, "not a plain file", str(path))
        with os.fdopen(os.dup(fd), "rb") as f:
            data = f.read(limit + 1)
    finally:
        os.close(fd)
    if len(data) > limit:
        raise OSError(errno.EFBIG, f"larger than {limit} bytes", str(path))
    return data


def same_file(fd: int, path: str | os.PathLike[str]) -> bool:
    """Whether `path` (not followed) is the very file open as `fd`."""
    try:
        there = os.lstat(path)
    except FileNotFoundError:
        return False
    here = os.fstat(fd)
    return (here.st_dev, here.st_ino) == (there.st_dev, there.st_ino)


def read_file(path: str | os.PathLike[str]) -> bytes | None:
    """A trusted regular file's bytes; None when there is no such file."""
    try:
        fd = open_file(path, os.O_RDONLY)
    except FileNotFoundError:
        return None
    with os.fdopen(fd, "rb") as f:
        return f.read()


def unwritable(path: str | os.PathLike[str], e: OSError) -> ConfigError:
    """The one-line error for a file cnilab cannot write (a full, read-only or missing folder)."""
    return ConfigError.of("cannot_write", path=path, reason=e.strerror or e)


def append_file(path: str | os.PathLike[str], data: bytes, mode: int = FILE_MODE) -> None:
    """Append `data` whole or not at all, with one write (never interleaved nor cut by a
    signal): a short write (a full disk) is cut back off. Fails with ConfigError."""
    try:
        fd = open_file(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, mode)
    except OSError as e:
        raise unwritable(path, e) from None
    try:
        size = os.fstat(fd).st_size
        written = os.write(fd, data)
        if written != len(data):  # tmpfs fills page by page: a line cut at 4096 bytes
            os.ftruncate(fd, size)
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    except OSError as e:
        raise unwritable(path, e) from None
    finally:
        os.close(fd)


def write_atomic(path: str | os.PathLike[str], data: bytes, mode: int = FILE_MODE) -> None:
    """Replace `path` with `data`: a random temp name made with O_EXCL|O_NOFOLLOW beside it,
    its mode set on the open file, then renamed over the old one (never half a file).
    Fails with ConfigError when the folder is full, read-only or missing."""
    out = Output(path, mode)
    out.commit(data)


class Output:
    """A file written whole at the end, begun now: its temp file (random name, O_EXCL,
    O_NOFOLLOW, exactly `mode`) is made at once, so a path that cannot be written fails before
    anything else is done; commit() fills it and renames it over `path` (a symlink there is
    replaced, never followed)."""

    def __init__(self, path: str | os.PathLike[str], mode: int = FILE_MODE) -> None:
        from pathlib import Path

        self.path = Path(path)
        if os.path.isdir(self.path) and not os.path.islink(self.path):
            raise unwritable(self.path, IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR)))
        name = f".{self.path.name}.{os.urandom(8).hex()}.tmp"  # secrets.token_hex's way
        self.tmp: Path | None = self.path.with_name(name)
        try:
            self.fd = os.open(self.tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
                              | os.O_CLOEXEC, PRIVATE_MODE)
        except OSError as e:
            raise unwritable(self.path, e) from None
        try:
            os.fchmod(self.fd, mode)
        except BaseException:
            self.discard()
            raise

    def commit(self, data: bytes) -> None:
        """Write `data` and rename the file into place (or remove it and raise ConfigError)."""
        assert self.tmp is not None, "committed twice"
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(self.fd, view):]
            os.fsync(self.fd)
            fd, self.fd = self.fd, -1
            os.close(fd)
            os.replace(self.tmp, self.path)
            self.tmp = None
        except OSError as e:
            raise unwritable(self.path, e) from None
        finally:
            self.discard()

    def discard(self) -> None:
        """Remove the temp file, unwritten (nothing when already committed)."""
        if self.tmp is None:
            return
        tmp, self.tmp = self.tmp, None
        if self.fd >= 0:
            fd, self.fd = self.fd, -1
            with contextlib.suppress(OSError):
                os.close(fd)
        tmp.unlink(missing_ok=True)
