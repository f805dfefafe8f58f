"""Opening a file that someone else may have put there: only a regular file, never through a
symbolic link below a trusted root, and never more than a limit.

Every file ipysession reads lives in a directory others can plant things in (a shared home, a
synced folder, a restored backup), and plain ``open()`` trusts too much: a FIFO named
``lease.json`` blocks the opening kernel for ever, ``/dev/zero`` is read for ever, a sparse file of
3 GiB costs 3 GiB of memory, and a symbolic link as ``blobs/`` or ``master.key`` leads reads,
writes and quarantine moves out of the store. So the rule for every file opened here is:

* It is looked at (``lstat``) before it is opened, and anything but a regular file (a FIFO, a
  device, a socket, a directory, a symbolic link) is refused without being opened: opening a device
  can have effects of its own.
* It is opened non-blocking (``O_NONBLOCK``: opening a FIFO swapped in meanwhile does not wait for
  a writer), without following a link in its last component (``O_NOFOLLOW``), and the descriptor is
  checked again (``fstat``) before a byte is read.
* With ``root``, every directory between ``root`` and the file is opened relative to the one above
  it (``dir_fd``) without following a link, so a link anywhere below ``root`` is refused and cannot
  be swapped in between a check and the open. ``root`` itself, and what lies above it, may be a
  link: a user who points ``$IPYSESSION_DIR`` at another disk through a link means it.
* A file larger than ``limit`` is refused by its size; at most its size (never more than
  ``limit``) is read.

Windows has neither ``O_NOFOLLOW``, ``O_NONBLOCK`` nor ``dir_fd``: there the same checks are made
with ``lstat`` on each part of the path before opening, which leaves a window between check and
open but the same rule. A refusal is an :class:`~ipysession.errors.UnsafeFile` naming the file (or
the directory on the way) and saying what to do; callers turn it into their own error where a
damaged file means something more (the store quarantines a session file that is not one).
"""

from __future__ import annotations

import contextlib
import errno
import io
import os
import stat
from collections.abc import Callable, Iterator
from pathlib import Path

from ipysession.errors import UnsafeFile
from ipysession.paths import PRIVATE_DIR_MODE

__all__ = ["check_directory", "ensure_directory", "open_regular", "read_regular", "refuse_special"]

_READ_FLAGS = (
    os.O_RDONLY
    | getattr(os, "O_BINARY", 0)
    | getattr(os, "O_CLOEXEC", 0)
    | getattr(os, "O_NOCTTY", 0)
    | getattr(os, "O_NOFOLLOW", 0)
    | getattr(os, "O_NONBLOCK", 0)
)
_DIR_FLAGS = (
    os.O_RDONLY
    | getattr(os, "O_CLOEXEC", 0)
    | getattr(os, "O_DIRECTORY", 0)
    | getattr(os, "O_NOFOLLOW", 0)
)
#: Walk directories by descriptor where the platform can (Linux, macOS, the BSDs).
_BY_DESCRIPTOR = (
    hasattr(os, "O_NOFOLLOW")
    and hasattr(os, "O_DIRECTORY")
    and os.open in os.supports_dir_fd
    and os.stat in os.supports_dir_fd
    and os.stat in os.supports_follow_symlinks
)
#: What ``open(O_NOFOLLOW)`` of a symbolic link fails with (FreeBSD says EMLINK, others ELOOP).
_LINK_ERRNOS = {errno.ELOOP, errno.EMLINK}

_KINDS = (
    (stat.S_ISLNK, "a symbolic link"),
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISDIR, "a directory"),
)


# --- refusals -------------------------------------------------------------------------------------


def _kind(mode: int) -> str:
    return next((word for test, word in _KINDS if test(mode)), "not a regular file")


def _not_regular(path: Path, mode: int) -> UnsafeFile:
    kind = _kind(mode)
    why = " (reading one could block for ever)" if stat.S_ISFIFO(mode) or stat.S_ISCHR(mode) else ""
    return UnsafeFile(
        f"{path.name} is {kind}, not a regular file, so ipysession did not open it{why}",
        path=path,
        hint="Move it away or remove it; ipysession only ever writes regular files there",
    )


def _link_on_the_way(path: Path, root: Path) -> UnsafeFile:
    return UnsafeFile(
        f"{path.name} is a symbolic link inside {root}, and ipysession never follows links "
        "below its own directory (one could lead its reads, writes and quarantine elsewhere)",
        path=path,
        hint="Replace the link with the real directory (move the target into its place), or "
        "remove the link",
    )


def _too_large(path: Path, size: int, limit: int) -> UnsafeFile:
    return UnsafeFile(
        f"{path.name} is {size:,} bytes, more than the {limit:,} bytes such a file may have, so "
        "it was not read",
        path=path,
        hint="Move it away or remove it if you did not put it there",
    )


def _below(root: Path, path: Path) -> tuple[str, ...]:
    """The parts of ``path`` below ``root``; ``..`` is refused, as it could climb out."""
    try:
        parts = path.relative_to(root).parts
    except ValueError:
        msg = f"{path} is not inside {root}"
        raise ValueError(msg) from None
    if ".." in parts:
        msg = f"{path} climbs out of {root} with '..'"
        raise ValueError(msg)
    return parts


# --- directories ----------------------------------------------------------------------------------


def _refuse_link(path: Path, st: os.stat_result, root: Path) -> None:
    if stat.S_ISLNK(st.st_mode) or _is_junction(st):
        raise _link_on_the_way(path, root)


def _is_junction(st: os.stat_result) -> bool:
    # A Windows junction is a directory link that lstat does not call a link.
    reparse = getattr(stat, "FILE_ATTRIBUTE_REPARSE_POINT", 0)
    return bool(getattr(st, "st_file_attributes", 0) & reparse)


def check_directory(path: Path, *, root: Path) -> bool:
    """Whether ``path`` is a real directory at or below ``root``: ``False`` if it, or a directory
    on the way, is missing or not a directory; :class:`UnsafeFile` if one on the way below
    ``root`` is a symbolic link."""
    current = root
    for part in _below(root, path):
        current = current / part
        try:
            st = os.lstat(current)
        except (FileNotFoundError, NotADirectoryError):
            return False
        _refuse_link(current, st, root)
        if not stat.S_ISDIR(st.st_mode):
            return False
    return root.is_dir()


def ensure_directory(path: Path, *, root: Path) -> Path:
    """Create ``path`` and the directories on the way below ``root``, each made 0700 (POSIX),
    refusing a symbolic link on the way (:class:`UnsafeFile`); a file in the way is a
    ``NotADirectoryError``. ``root`` must exist."""
    current = root
    for part in _below(root, path):
        current = current / part
        with contextlib.suppress(FileExistsError):  # there already, or another process made it
            current.mkdir(mode=PRIVATE_DIR_MODE)
        st = os.lstat(current)
        _refuse_link(current, st, root)
        if not stat.S_ISDIR(st.st_mode):
            raise NotADirectoryError(errno.ENOTDIR, "a file is in the way", str(current))
        if os.name == "posix" and stat.S_IMODE(st.st_mode) != PRIVATE_DIR_MODE:
            with contextlib.suppress(PermissionError):  # someone else's directory: leave it
                current.chmod(PRIVATE_DIR_MODE)
    return path


def refuse_special(path: Path) -> None:
    """:class:`UnsafeFile` if something other than a regular file (a link, a FIFO, a device) is
    at ``path``; nothing there is fine. For files opened by others' code (a lock file opened by
    ``filelock`` with ``O_TRUNC`` would truncate the target of a planted link)."""
    try:
        st = os.lstat(path)
    except (FileNotFoundError, NotADirectoryError):
        return
    _check_file_stat(path, st)


# --- files ----------------------------------------------------------------------------------------


def _open_by_descriptor(path: Path, root: Path) -> int:
    """``path`` opened by walking from ``root`` one directory descriptor at a time."""
    *dirs, name = _below(root, path)
    fd = os.open(root, _DIR_FLAGS & ~getattr(os, "O_NOFOLLOW", 0))  # the root may be a link
    try:
        current = root
        for part in dirs:
            current = current / part
            try:
                next_fd = os.open(part, _DIR_FLAGS, dir_fd=fd)
            except OSError as exc:
                # O_DIRECTORY | O_NOFOLLOW on a link says ENOTDIR on Linux, ELOOP elsewhere.
                if exc.errno in (*_LINK_ERRNOS, errno.ENOTDIR):
                    _refuse_link(current, os.stat(part, dir_fd=fd, follow_symlinks=False), root)
                raise
            os.close(fd)
            fd = next_fd
        _check_file_stat(path, os.stat(name, dir_fd=fd, follow_symlinks=False))
        return _open_file(path, lambda: os.open(name, _READ_FLAGS, dir_fd=fd))
    finally:
        os.close(fd)


def _open_by_path(path: Path, root: Path | None) -> int:
    if root is not None:
        check_directory(path.parent, root=root)
    _check_file_stat(path, os.lstat(path))
    return _open_file(path, lambda: os.open(path, _READ_FLAGS))


def _check_file_stat(path: Path, st: os.stat_result) -> None:
    if not stat.S_ISREG(st.st_mode) or _is_junction(st):
        raise _not_regular(path, st.st_mode)


def _open_file(path: Path, opener: Callable[[], int]) -> int:
    try:
        return opener()
    except OSError as exc:
        # Replaced by a link (ELOOP) or a socket (ENXIO) since it was looked at.
        if exc.errno in _LINK_ERRNOS:
            raise _not_regular(path, stat.S_IFLNK) from None
        if exc.errno == errno.ENXIO:
            raise _not_regular(path, stat.S_IFSOCK) from None
        raise


@contextlib.contextmanager
def open_regular(
    path: Path, *, limit: int, root: Path | None = None
) -> Iterator[tuple[os.stat_result, io.BufferedReader]]:
    """``path`` open for reading, and its ``fstat``, if it is a regular file of at most ``limit``
    bytes reached without a symbolic link below ``root`` (see the module's docstring).

    Raises :class:`UnsafeFile` for anything else, ``FileNotFoundError`` if it is not there, and
    ``ValueError`` if ``path`` is not below ``root``.
    """
    fd = _open_by_descriptor(path, root) if root is not None and _BY_DESCRIPTOR else None
    if fd is None:
        fd = _open_by_path(path, root)
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):  # swapped between the look and the open
            raise _not_regular(path, st.st_mode)
        if st.st_size > limit:
            raise _too_large(path, st.st_size, limit)
        yield st, f


def read_regular(path: Path, *, limit: int, root: Path | None = None) -> bytes:
    """The bytes of ``path``, opened as :func:`open_regular` does; at most ``limit`` are read.

    Only the size ``fstat`` reported is asked for: asking for ``limit`` bytes would make Python
    set aside that much memory before reading one.
    """
    with open_regular(path, limit=limit, root=root) as (st, f):
        return f.read(st.st_size)
