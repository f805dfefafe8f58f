"""The file-system edge of the session store: read a session file without trusting it, and word
an operating-system failure to write one as a message that names the file and says what to do.

Reading refuses what cannot be a session file (a symlink, a FIFO, a device, a file larger than
the store's limit) before reading a byte of it, and junk after reading only its header. The stat
keys tell the store's caches whether a file is still the one it decoded.
"""

from __future__ import annotations

import contextlib
import errno
import io
import os
from collections.abc import Iterator
from pathlib import Path

from ipysession import safe_open
from ipysession.errors import CorruptFile, StoreWriteError, UnsafeFile
from ipysession.keys.crypto import TAG_SIZE, SealingKey
from ipysession.store import fileformat

__all__ = [
    "StatKey",
    "blob_key",
    "open_file",
    "read_any_file",
    "read_blob_file",
    "read_file",
    "stat_key",
    "too_large_for_memory",
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
def open_file(
    path: Path, limit: int, *, root: Path | None = None
) -> Iterator[tuple[os.stat_result, io.BufferedReader]]:
    """A session file open for reading, and its stat, refusing what cannot be one.

    Opened as :func:`ipysession.safe_open.open_regular` opens (no symlink, no blocking, no
    walking through a link below ``root``). A file that is not a regular file or is over
    ``limit`` bytes (say, a sparse file of a terabyte) is a :class:`CorruptFile` and is never
    read; a link on the way below ``root`` stays an :class:`UnsafeFile`, so that nothing is moved
    to quarantine through it.
    """
    try:
        with safe_open.open_regular(path, limit=limit, root=root) as opened:
            yield opened
    except UnsafeFile as exc:
        if exc.path != path:
            raise
        raise CorruptFile(exc.what, path=path, hint=exc.hint) from None


def read_file(path: Path, limit: int, *, root: Path | None = None) -> tuple[os.stat_result, bytes]:
    """The bytes of a session file and its stat (see :func:`open_file`).

    The clear header is read and checked first, and the rest only if it is sane: junk of
    gigabytes (a sparse file costs nothing on disk) is refused after a few bytes. A file too
    large for the memory at hand is a :class:`CorruptFile` too, so the reader falls back to an
    older generation instead of failing.
    """
    with open_file(path, limit, root=root) as (st, f):
        head = f.read(fileformat.HEADER_SIZE + TAG_SIZE)  # the smallest valid file
        fileformat.read_header(head, path=path)
        try:
            return st, head + f.read(st.st_size - len(head))
        except MemoryError:
            raise too_large_for_memory(path, st.st_size) from None


def read_blob_file(
    path: Path, key: SealingKey, limit: int, *, root: Path | None = None
) -> tuple[os.stat_result, fileformat.BlobRead]:
    """A blob's stat and its authenticated header, value and content id, read a chunk at a
    time (see :func:`open_file` and :func:`ipysession.store.fileformat.read_blob`)."""
    with open_file(path, limit, root=root) as (st, f):
        return st, _read_blob(f, st, key, path)


def read_any_file(
    path: Path, key: SealingKey, limit: int, *, root: Path | None = None
) -> tuple[fileformat.Header, bytes | fileformat.BlobRead]:
    """Whatever file ``path`` is, by its header: a blob read as :func:`read_blob_file` reads
    one (authenticated a chunk at a time, its ciphertext never held whole: a blob of a
    gigabyte costs a gigabyte, not two), any other file's bytes as :func:`read_file`."""
    with open_file(path, limit, root=root) as (st, f):
        start = f.read(fileformat.HEADER_SIZE + TAG_SIZE)
        header = fileformat.read_header(start, path=path)
        if header.is_blob:
            f.seek(0)
            return header, _read_blob(f, st, key, path)
        try:
            return header, start + f.read(st.st_size - len(start))
        except MemoryError:
            raise too_large_for_memory(path, st.st_size) from None


def _read_blob(
    f: io.BufferedReader, st: os.stat_result, key: SealingKey, path: Path
) -> fileformat.BlobRead:
    try:
        return fileformat.read_blob(f, st.st_size, key, path=path)
    except MemoryError:
        raise too_large_for_memory(path, st.st_size) from None


def too_large_for_memory(path: Path, size: int) -> CorruptFile:
    """Reading ``path`` ran out of memory: it is treated as damaged (moved aside, not lost)."""
    msg = (
        f"File is {size:,} bytes, too large to read with the memory available, so it is "
        "treated as damaged"
    )
    return CorruptFile(
        msg,
        path=path,
        hint="If it is a session you need, move it back from quarantine and read it where more "
        "memory is available",
    )


def write_error(exc: OSError, path: Path, action: str) -> StoreWriteError:
    """Turn an OSError into a message that names the file and says what to do."""
    if isinstance(exc, UnsafeFile):  # a planted link or file on the way: it says what to do
        what = f"Could not {action}: {exc.what}. The previous generation is untouched"
        return StoreWriteError(what, path=exc.path, hint=exc.hint)
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
