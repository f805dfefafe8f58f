"""Replacing a file so that a crash at any moment leaves either the old or the new one, whole.

Every file ipysession writes goes through :func:`write_atomically`: a private temporary file in
the same directory (so the rename cannot cross file systems), written, flushed and fsynced, then
moved over the target with ``os.replace``; on any failure the temporary file is removed and the
target is untouched. :func:`fsync_dir` makes the rename itself durable; callers that write several
files fsync their directory once.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import IO

from ipysession.paths import PRIVATE_FILE_MODE

__all__ = ["TEMP_PREFIX", "fsync_dir", "write_atomically"]

#: Every temporary file starts with this, so ``doctor --repair`` can tell leftovers of a crash.
TEMP_PREFIX = ".tmp-"


def write_atomically(
    target: Path, data: bytes | Callable[[IO[bytes]], object], *, fsync: bool = True
) -> os.stat_result:
    """Replace ``target`` with ``data`` (0600); returns the stat of the new file.

    ``data`` is the bytes, or a function that writes them to the file it is given (a value blob
    is sealed straight into its file, a chunk at a time). ``fsync=False`` skips the flush to disk
    for advisory files (a lease) whose loss in a power cut does no harm.
    """
    tmp = target.with_name(f"{TEMP_PREFIX}{target.name}.{os.getpid()}.{secrets.token_hex(4)}")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    flags |= getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NOFOLLOW", 0)
    fd = os.open(tmp, flags, PRIVATE_FILE_MODE)
    try:
        with os.fdopen(fd, "wb") as f:
            if callable(data):
                data(f)
            else:
                f.write(data)
            f.flush()
            if fsync:
                os.fsync(fd)
        tmp.replace(target)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    return target.stat()  # after the rename, which changes the inode's ctime


def fsync_dir(path: Path) -> None:
    """Make renames in ``path`` durable (POSIX; a no-op elsewhere)."""
    if os.name != "posix":
        return
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    except OSError as exc:  # some file systems cannot fsync a directory; the data is still there
        if exc.errno not in (errno.EINVAL, errno.ENOTSUP, errno.EBADF):
            raise
    finally:
        os.close(fd)
