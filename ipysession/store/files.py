"""The file-system edge of the session store: read a session file without trusting it, and word
an operating-system failure to write one as a message that names the file and says what to do.

Reading refuses what cannot be a session file (a symlink, a FIFO, a device, a file larger than
the store's limit) before reading a byte of it. The stat keys tell the store's caches whether a
file is still the one it decoded.
"""

from __future__ import annotations

import contextlib
import errno
import io
import os
import stat
from collections.abc import Iterator
from pathlib import Path

from ipysession.errors import CorruptFile, StoreWriteError
from ipysession.keys.crypto import SealingKey
from ipysession.store import fileformat

__all__ = [
    "StatKey",
    "blob_key",
    "open_file",
    "read_blob_file",
    "read_file",
    "stat_key",
    "write_error",
]

StatKey = tuple[int, int, int, int]


def stat_key(st: os.stat_result) -> StatKey:
    return (st.st_mtime_ns, st.st_ctime_ns, st.st_size, st.st_ino)


def blob_key(st: os.stat_result) -> tuple[int, int, int]:
    # Blobs are touched when reused, so their times change; the same inode and size is the same
    # file (every write of a blob is a new inode, moved into place).
    return (st.st_dev, st.st_ino, st.st_size)


@contextlib.contextmanager
def open_file(path: Path, limit: int) -> Iterator[tuple[os.stat_result, io.BufferedReader]]:
    """A session file open for reading, and its stat, refusing what cannot be one.

    Opened without following a symlink and without blocking (a FIFO named like a session file
    must not hang a kernel); anything but a regular file, or a file over ``limit`` bytes (say, a
    sparse file of a terabyte), is a :class:`CorruptFile` and is never read.
    """
    flags = os.O_RDONLY | getattr(os, "O_BINARY", 0) | getattr(os, "O_NOFOLLOW", 0)
    flags |= getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
    fd = os.open(path, flags)
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            msg = "Not a regular file, so not a session file"
            raise CorruptFile(msg, path=path)
        if st.st_size > limit:
            msg = (
                f"File is {st.st_size:,} bytes, larger than any session file "
                f"({limit:,} bytes at most); it was not read"
            )
            raise CorruptFile(msg, path=path)
        yield st, f


def read_file(path: Path, limit: int) -> tuple[os.stat_result, bytes]:
    """The bytes of a session file and its stat (see :func:`open_file`)."""
    with open_file(path, limit) as (st, f):
        return st, f.read()


def read_blob_file(
    path: Path, key: SealingKey, limit: int
) -> tuple[os.stat_result, fileformat.Header, bytes]:
    """A blob's stat, header and authenticated value, read a chunk at a time (see
    :func:`open_file` and :func:`ipysession.store.fileformat.read_blob`)."""
    with open_file(path, limit) as (st, f):
        header, value = fileformat.read_blob(f, st.st_size, key, path=path)
    return st, header, value


def write_error(exc: OSError, path: Path, action: str) -> StoreWriteError:
    """Turn an OSError into a message that names the file and says what to do."""
    code = exc.errno
    folder = path.parent
    if code in (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)):
        hint = f"Free space on the disk that holds {folder}"
    elif code == errno.EROFS:
        hint = (
            f"Check permissions of {folder}: its filesystem is mounted read-only; remount it "
            "read-write or set IPYSESSION_DIR to a writable directory"
        )
    elif code in (errno.EACCES, errno.EPERM):
        hint = (
            f"Check permissions of {folder}: this user must be able to write there (or set "
            "IPYSESSION_DIR to a directory it can write)"
        )
    elif code == errno.EFBIG:
        hint = "The file exceeds the file size limit; free space or raise the limit (ulimit -f)"
    elif code in (errno.EISDIR, errno.ENOTDIR, errno.EEXIST, errno.ENOTEMPTY):
        hint = f"Something that is not a session file is in the way at {path}; move it aside"
    elif code in (errno.ENOLCK, errno.ENOSYS, errno.EOPNOTSUPP):
        hint = (
            "File locks do not work on this filesystem (a network mount?); point "
            "IPYSESSION_DIR at a local directory"
        )
    elif code == errno.ENOENT:
        hint = (
            f"The directory {folder} disappeared during the write (on a removable or network "
            "drive, check that it is mounted); try again"
        )
    else:
        hint = "Try again; if it persists run `ipysession doctor`"
    reason = exc.strerror or str(exc)
    what = f"Could not {action}: {reason}. The previous generation is untouched"
    return StoreWriteError(what, path=path, hint=hint, errno=code)
