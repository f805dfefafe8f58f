"""Large values, each sealed in its own file ``blobs/<id>.ipyb`` and shared by every generation
that refers to it.

A blob's id is ``key.content_id(value)``, a keyed hash: equal values share a blob without the name
revealing their content. :func:`check_blob_name` is the one place that decides whether a blob
holds the value its name promises; every read of a blob goes through it. Blobs are written before
the generation that refers to them, so a generation never refers to a blob that is not on disk.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from pathlib import Path

from ipysession.atomic import PendingFile, fsync_dir, write_atomically
from ipysession.errors import CorruptFile, NewerFormat, StoreError, WrongKey
from ipysession.keys.crypto import SealingKey
from ipysession.model import BufferRecord, Session, VariableRecord
from ipysession.store import fileformat
from ipysession.store.disk import Disk
from ipysession.store.files import blob_key, read_blob_file, write_error
from ipysession.store.names import BLOB_SUFFIX, BLOBS_DIR
from ipysession.store.scan import check_blob_id
from ipysession.store.writebehind import WriteBehind

__all__ = [
    "MISSING_BLOB",
    "SEAL_THEN_NAME_MIN",
    "blob_path",
    "check_blob_name",
    "externalize",
    "read_checked_blob",
    "touch",
    "write_blob",
]

logger = logging.getLogger("ipysession")

_MISMATCH = "Blob content does not match its name: it was swapped or renamed"

#: Why a variable whose blob had gone missing was saved without its value.
MISSING_BLOB = (
    "its stored value was missing on disk when this generation was written; the kernel saves it "
    "again the next time it captures it"
)


#: From this size up, a blob is sealed into a temporary file while its id is hashed, then named
#: by it; smaller ones are hashed first (so an equal blob already there is never rewritten).
SEAL_THEN_NAME_MIN = 4 * 1024 * 1024


def blob_path(sdir: Path, blob_id: str) -> Path:
    return sdir / BLOBS_DIR / f"{blob_id}{BLOB_SUFFIX}"


def check_blob_name(
    path: Path,
    value: bytes | bytearray | memoryview,
    blob_id: str,
    header: fileformat.Header,
    key: SealingKey,
    *,
    hint: str | None = None,
    content_id: str | None = None,
) -> None:
    """Raise :class:`CorruptFile` unless the authenticated ``value`` is what ``blob_id`` names.

    ``content_id`` is the value's id under ``key`` when the reader computed it already (as it
    decrypted: :class:`~ipysession.store.fileformat.BlobRead`), so it is not hashed twice.

    A blob swapped for another authentic one, or renamed, fails here. One exception: a blob
    sealed under a previous master key (a rekey was interrupted) is named by that key's content
    id, which the key protocol cannot compute. It authenticated under a key we hold, so it is
    accepted with a warning, and ``rekey`` renames it. Passphrase content ids never change with
    the salt, so a passphrase blob has no such excuse. Nor has a version 4 blob read with its
    ``content_id``: that is its authenticated id trailer, which proves the name under any key.
    """
    if (content_id if content_id is not None else key.content_id(value)) == blob_id:
        return
    trailed = content_id is not None and header.version >= fileformat.ID_TRAILER_VERSION
    if trailed or header.uses_passphrase or header.key_id == key.for_writing()[2]:
        raise CorruptFile(_MISMATCH, path=path, hint=hint)
    logger.warning(
        "Blob %s is sealed under a previous key; its name cannot be verified until "
        "`ipysession rekey` completes",
        blob_id,
    )


def write_blob(
    path: Path, value: bytes | bytearray | memoryview, key: SealingKey, blob_id: str
) -> os.stat_result:
    """Seal ``value`` straight into a new blob file at ``path``, atomically; ``blob_id`` (its
    content id under ``key``) is sealed in with it."""
    return write_atomically(path, lambda f: fileformat.write_blob(f, value, key, blob_id=blob_id))


def touch(path: Path) -> bool:
    """True if ``path`` exists; refreshes its mtime so a grace period protects it."""
    try:
        os.utime(path)
    except FileNotFoundError:
        return False
    except OSError:
        return path.is_file()
    return True


def read_checked_blob(disk: Disk, sdir: Path, blob_id: str) -> memoryview:
    """The bytes of one stored value, authenticated and checked against its id, in one
    writable buffer (an out-of-band buffer's array uses it as it is).

    A corrupt blob is quarantined and its :class:`CorruptFile` carries the problem; a missing
    one raises :class:`CorruptFile` too (the caller skips that one variable), and one the
    operating system refuses to read a :class:`StoreError`.
    """
    check_blob_id(blob_id, sdir)
    path = blob_path(sdir, blob_id)
    try:
        st, read = read_blob_file(path, disk.key, disk.max_file_bytes, root=disk.root)
        value = read.value
        check_blob_name(
            path,
            value,
            blob_id,
            read.header,
            disk.key,
            hint="The variable stored in it cannot be restored from this blob",
            content_id=read.content_id,
        )
    except CorruptFile as exc:
        exc.problems = (disk.problem(path, exc, sdir, quarantine=True),)
        raise
    except FileNotFoundError:
        msg = f"Stored value {blob_id} is missing"
        raise CorruptFile(
            msg,
            path=path,
            hint="The variable stored in it cannot be restored; other variables are unaffected",
        ) from None
    except OSError as exc:
        msg = f"Stored value cannot be read: {exc.strerror or exc}"
        raise StoreError(msg, path=path, hint=f"Check permissions of {path.parent}") from exc
    disk.mark_blob_verified(path, blob_key(st))
    return value


def _reuse_blob(disk: Disk, path: Path, blob_id: str) -> bool:
    """True if a good blob for ``blob_id`` is already there (checked once per process)."""
    if not touch(path):
        return False
    try:
        st = path.stat()
    except OSError:
        return False
    if disk.blob_verified(path, blob_key(st)):
        return True
    try:
        _, read = read_blob_file(path, disk.key, disk.max_file_bytes, root=disk.root)
        check_blob_name(
            path, read.value, blob_id, read.header, disk.key, content_id=read.content_id
        )
    except (WrongKey, NewerFormat):
        return False  # valid under another key or release: write ours over it
    except (CorruptFile, OSError) as exc:
        disk.problem(path, exc, path.parent.parent, quarantine=True)
        return False
    disk.mark_blob_verified(path, blob_key(st))
    return True


def externalize(
    disk: Disk,
    sdir: Path,
    session: Session,
    threshold: int,
    *,
    lost: dict[str, str] | None = None,
) -> tuple[Session, int, int]:
    """Move values and out-of-band buffers larger than ``threshold`` bytes to blobs, each its
    own, written (and flushed) before the generation that will refer to them. Returns the
    session to seal, the number of blobs written and their size in bytes.

    A variable that refers to a blob no longer on disk (the session was deleted under a running
    kernel, the file was removed by hand) is sealed as skipped (:data:`MISSING_BLOB`) and added
    to ``lost`` (name -> blob id), so no generation ever refers to a missing blob."""
    sealer = _Sealer(disk, sdir)
    variables: dict[str, VariableRecord] = {}
    changed = False
    for var_name, record in session.variables.items():
        stored = record
        if record.data is not None and len(record.data) > threshold:
            blob_id = sealer.seal(record.data, var_name)
            stored = dataclasses.replace(stored, data=None, blob=blob_id)
        if any(b.data is not None and b.size > threshold for b in record.buffers):
            stored = dataclasses.replace(
                stored,
                buffers=tuple(
                    BufferRecord(b.size, blob=sealer.seal(b.data, var_name))
                    if b.data is not None and b.size > threshold
                    else b
                    for b in record.buffers
                ),
            )
        gone = sorted(ref for ref in record.blob_refs() if not _present(sdir, ref))
        if gone:
            # The bytes are not in memory any more (the caller keeps only the reference of
            # a stored value), so the value cannot be re-sealed here. A generation must never
            # refer to a blob that is not on disk: the variable is written as skipped, saying
            # why, and reported in ``lost`` so the kernel captures it again from the live
            # object (failing the whole write would lose everything else too).
            logger.warning(
                "Variable %s refers to a stored value that no longer exists (%s, blob %s); "
                "it is saved as skipped until it is captured again",
                var_name,
                sdir.name,
                gone[0],
            )
            if lost is not None:
                lost[var_name] = gone[0]
            stored = VariableRecord(
                name=record.name,
                type_name=record.type_name,
                size=record.size,
                skipped=MISSING_BLOB,
                extra=record.extra,
            )
        changed |= stored is not record
        variables[var_name] = stored
    sealer.flush()
    if not changed:
        return session, sealer.written, sealer.nbytes
    return dataclasses.replace(session, variables=variables), sealer.written, sealer.nbytes


def _present(sdir: Path, blob_id: str) -> bool:
    check_blob_id(blob_id, sdir)
    return touch(blob_path(sdir, blob_id))


class _Sealer:
    """Seals byte strings into the blobs of one session directory, reusing good ones."""

    def __init__(self, disk: Disk, sdir: Path) -> None:
        self.disk = disk
        self.sdir = sdir
        self.written = 0
        self.nbytes = 0

    def seal(self, data: bytes | memoryview, var_name: str) -> str:
        if len(data) >= SEAL_THEN_NAME_MIN:
            return self._seal_then_name(data, var_name)
        disk = self.disk
        blob_id = disk.key.content_id(data)
        path = blob_path(self.sdir, blob_id)
        if not _reuse_blob(disk, path, blob_id):
            try:
                disk.ensure_dir(self.sdir / BLOBS_DIR)
                st = write_blob(path, data, disk.key, blob_id)
            except OSError as exc:
                raise write_error(exc, path, f"write the value of {var_name!r}") from exc
            self._wrote(path, st)
        return blob_id

    def _seal_then_name(self, data: bytes | memoryview, var_name: str) -> str:
        """A large value sealed into a temporary file while its id is hashed beside the
        cipher, then named by that id: one pass over the value instead of two. An equal blob
        already there is kept and the new file dropped (a wasted write, never a wrong one).
        The disk starts storing the file as it is written (:class:`WriteBehind`), so the fsync
        that names it has less left to wait for."""
        disk = self.disk
        blobs_dir = self.sdir / BLOBS_DIR
        hasher = disk.key.content_hasher()
        try:
            disk.ensure_dir(blobs_dir)
            with PendingFile(blobs_dir, BLOB_SUFFIX) as pending:
                fileformat.write_blob(WriteBehind(pending.file), data, disk.key, hasher=hasher)
                blob_id = hasher.hexdigest()
                path = blob_path(self.sdir, blob_id)
                if _reuse_blob(disk, path, blob_id):
                    pending.discard()
                    return blob_id
                st = pending.name_as(path)
        except OSError as exc:
            raise write_error(exc, blobs_dir, f"write the value of {var_name!r}") from exc
        self._wrote(path, st)
        return blob_id

    def _wrote(self, path: Path, st: os.stat_result) -> None:
        self.disk.mark_blob_verified(path, blob_key(st))
        self.written += 1
        self.nbytes += st.st_size

    def flush(self) -> None:
        if not self.written:
            return
        blobs_dir = self.sdir / BLOBS_DIR
        try:
            fsync_dir(blobs_dir)
        except OSError as exc:
            raise write_error(exc, blobs_dir, "flush the blob directory") from exc
