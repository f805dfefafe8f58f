"""Replacing a file so that a crash at any moment leaves either the old or the new one, whole.

Every file ipysession writes goes through :func:`write_atomically`: a private temporary file in
the same directory (so the rename cannot cross file systems), written, flushed and fsynced, then
moved over the target with ``os.replace``; on any failure the temporary file is removed and the
target is untouched. :class:`PendingFile` is the same in two steps, for a file named only once
it is written (a blob, named by the hash of its content). :func:`fsync_dir` makes the rename
itself durable; callers that write several files fsync their directory once.
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

__all__ = ["TEMP_PREFIX", "PendingFile", "fsync_dir", "write_atomically"]

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
    with PendingFile(target.parent, target.name, fsync=fsync) as pending:
        if callable(data):
            data(pending.file)
        else:
            pending.file.write(data)
        return pending.name_as(target)


class PendingFile:
    """A new file written under a private temporary name in ``directory``, and named only once
    it is whole: :meth:`name_as` flushes, fsyncs and renames it over its target.

    For a file whose name is known only once it is written (a blob is named by the hash of
    what it holds). Leaving the ``with`` block without naming it (an error, or
    :meth:`discard`) removes it; a crash leaves a ``TEMP_PREFIX`` file that no reader looks at
    and ``doctor --repair`` removes.
    """

    def __init__(self, directory: Path, hint: str, *, fsync: bool = True) -> None:
        self._tmp = directory / f"{TEMP_PREFIX}{hint}.{os.getpid()}.{secrets.token_hex(4)}"
        self._fsync = fsync
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
        flags |= getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NOFOLLOW", 0)
        fd = os.open(self._tmp, flags, PRIVATE_FILE_MODE)
        try:
            self.file: IO[bytes] = os.fdopen(fd, "wb")
        except BaseException:
            os.close(fd)
            self._remove()
            raise
        self._done = False

    def __enter__(self) -> PendingFile:
        return self

    def __exit__(self, *exc_info: object) -> None:
        if not self._done:
            self.discard()

    def name_as(self, target: Path) -> os.stat_result:
        """Make the file durable and rename it to ``target`` (replacing what is there); returns
        the stat of ``target``. On failure the temporary file is removed."""
        try:
            self.file.flush()
            if self._fsync:
                os.fsync(self.file.fileno())
            self.file.close()
            self._tmp.replace(target)
        except BaseException:
            self.discard()
            raise
        self._done = True
        return target.stat()  # after the rename, which changes the inode's ctime

    def discard(self) -> None:
        """Remove the file unnamed (safe to call twice)."""
        self._done = True
        with contextlib.suppress(OSError):
            self.file.close()
        self._remove()

    def _remove(self) -> None:
        with contextlib.suppress(OSError):
            self._tmp.unlink()


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
