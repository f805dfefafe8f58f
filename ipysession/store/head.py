"""The head record of a session: which generation was written last, and its digest.

A generation file of format 2 says which generation it is (see :class:`~ipysession.store.
fileformat.Binding`), so a file renamed or copied over another is caught when it is read. What a
file cannot say is that newer ones existed: deleting the newest generations, or putting back an
older copy of the whole list, leaves files that are each genuine. ``head.ipys`` closes that gap::

    {"format": 2, "session": "<name>", "generation": 42, "digest": "<SHA-256 of gen-00000042.ipys>"}

sealed with the session's key (flag ``0x8``), written atomically under the session's lock after
each generation is on disk, never before, so the head never names a generation that was not
written. A head behind the newest generation only means a writer stopped between the two writes,
and is not reported. :func:`judge` compares the head with the generation a read chose.

What the head cannot see: a whole session directory put back from an older copy, head included,
is consistent with itself. Files of format 1 carry no binding, so a session written only by
format 1 releases has no head and no rollback protection.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path

from ipysession.atomic import write_atomically
from ipysession.errors import CorruptFile, FileFormatError, SubstitutedFile
from ipysession.keys.crypto import SealingKey
from ipysession.store import fileformat
from ipysession.store.disk import Disk
from ipysession.store.files import read_file
from ipysession.store.meta import FileMeta
from ipysession.store.names import HEAD_FILE, slug_for
from ipysession.store.results import Rollback
from ipysession.store.scan import MAX_GENERATION, gen_name, scan_generations

__all__ = [
    "Head",
    "check",
    "encode",
    "head_path",
    "judge",
    "newest_trusted",
    "read_head",
    "read_head_quietly",
    "unbound_above_head",
    "write_head",
]

logger = logging.getLogger("ipysession")

#: What reading a file may raise when the file, not the program, is at fault.
_BAD_FILE = (FileFormatError, OSError, LookupError)

#: A head record is about 150 bytes; the limit only stops a planted giant from being read.
_HEAD_FILE_LIMIT = 64 * 1024
_DIGEST_RE = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class Head:
    """The newest generation written to a session, and the digest of its file."""

    session: str
    generation: int
    digest: str


def head_path(sdir: Path) -> Path:
    return sdir / HEAD_FILE


def write_head(sdir: Path, head: Head, key: SealingKey) -> None:
    """Replace the head record atomically; the caller holds the session's lock.

    Not followed by a directory fsync: a head that a crash loses is merely behind the newest
    generation, which readers accept, and saving one fsync keeps a save as cheap as it was.
    """
    write_atomically(head_path(sdir), encode(head, key))


def encode(head: Head, key: SealingKey) -> bytes:
    """The bytes of a head record file."""
    doc = {"session": head.session, "generation": head.generation, "digest": head.digest}
    return fileformat.encode_head(doc, key)


def read_head(disk: Disk, sdir: Path, key: SealingKey | None = None) -> Head | None:
    """The session's head record; ``None`` if it has none.

    Raises :class:`FileFormatError` or :class:`OSError` when it cannot be used: a head that does
    not authenticate (or is another session's, :class:`SubstitutedFile`) decides nothing.
    """
    path = head_path(sdir)
    try:
        _, data = read_file(path, _HEAD_FILE_LIMIT, root=disk.root)
    except FileNotFoundError:
        return None
    doc = fileformat.decode_head(data, key if key is not None else disk.key, path=path)
    session, generation, digest = doc.get("session"), doc.get("generation"), doc.get("digest")
    if not (
        isinstance(session, str)
        and session
        and type(generation) is int
        and 1 <= generation <= MAX_GENERATION
        and isinstance(digest, str)
        and _DIGEST_RE.fullmatch(digest)
    ):
        msg = "Head record is authentic but malformed"
        raise CorruptFile(msg, path=path)
    if slug_for(session) != sdir.name:
        msg = f"Head record is session {session!r}'s, which does not belong in {sdir.name!r}"
        raise SubstitutedFile(msg, path=path, hint="It decides nothing here; it is kept aside")
    return Head(session=session, generation=generation, digest=digest)


def unbound_above_head(path: Path, number: int, head: Head | None) -> SubstitutedFile | None:
    """A file without a binding (format 1) numbered at or above the head is not the generation
    its name says: every generation from the head's on was written in format 2 or later."""
    if head is None or number < head.generation:
        return None
    msg = (
        f"File is generation {number} in format 1, which says nothing about which generation it "
        f"is, but this session was written in format 2 up to generation {head.generation}: an "
        "older file was copied or renamed here (a rollback or a substitution), or an older "
        "ipysession wrote it"
    )
    return SubstitutedFile(
        msg,
        path=path,
        hint="It is not used as the newest generation; read it with `--generation` if you need it",
    )


def judge(
    disk: Disk,
    sdir: Path,
    head: Head | None,
    *,
    head_failed: bool,
    used: int,
    meta: FileMeta,
    on_disk: set[int],
) -> Rollback | None:
    """What the head says of a read that chose generation ``used`` (summary ``meta``).

    ``head_failed``: a head record exists but could not be used (its problem is reported on its
    own). ``on_disk``: the generation numbers that were in the directory when the read began,
    whatever their state; a newer generation that is there but unreadable is reported as a
    problem of its own, not as a rollback.
    """
    where = head_path(sdir)
    if head is None:
        if head_failed or not meta.bound:
            return None
        msg = (
            f"The head record {where} is missing, although generation {used} was written by an "
            "ipysession that keeps one, so whether newer generations were deleted cannot be "
            f"checked. Generation {used} was restored; the next save writes a new head record. "
            f"If you did not delete it, check who can write to {sdir}"
        )
        return Rollback(head=None, used=used, message=msg)
    newest = head.generation
    if newest > used and newest not in on_disk:
        missing = (
            f"generation {newest}" if newest == used + 1 else f"generations {used + 1}-{newest}"
        )
        kept = disk.quarantine_dir / sdir.name
        if any(kept.glob(f"{gen_name(newest)}.*")):
            msg = (
                f"Generation {newest}, the newest one written, was moved to quarantine earlier "
                f"because it could not be read ({kept}); generation {used} was restored instead"
            )
        else:
            msg = (
                f"Generation {newest} is the newest one written (head record {where}), but "
                f"{missing} {'is' if newest == used + 1 else 'are'} not in {sdir}: deleted, or "
                f"the directory was put back from an older copy (a rollback). Generation {used}, "
                f"the newest one left, was restored. If you did not remove them, check who can "
                "write to the directory; a backup may still hold them"
            )
        return Rollback(head=newest, used=used, message=msg)
    if newest == used and meta.digest != head.digest:
        msg = (
            f"Generation {used} is not the file that was written as generation {used} (its "
            f"digest differs from the head record {where}): it was replaced, for instance by an "
            "older copy of the directory or by an interrupted `ipysession rekey` (run it again). "
            f"It was restored all the same; if you did not replace it, check who can write to "
            f"{sdir}"
        )
        return Rollback(head=newest, used=used, message=msg)
    return None


def read_head_quietly(disk: Disk, sdir: Path) -> tuple[Head | None, bool]:
    """:func:`read_head`, moving nothing: ``(head, False)``, or ``(None, True)`` when a head
    record exists but cannot be used (logged; readers report and quarantine it)."""
    try:
        return read_head(disk, sdir), False
    except _BAD_FILE as exc:
        logger.debug("Head record of %s cannot be used: %s", sdir.name, exc)
        return None, True


def newest_trusted(
    disk: Disk, sdir: Path, gens: list[tuple[int, Path]], head: Head | None
) -> tuple[int, FileMeta] | None:
    """The newest generation among ``gens`` that authenticates and is the generation its name
    says, and its summary, moving nothing; ``None`` if there is none.

    Files this store wrote or read are answered from memory, so a writer pays for this once.
    A file that fails is passed over here and reported by whoever reads it.
    """
    for number, path in reversed(gens):
        try:
            meta = disk.meta_for(path, sdir)
        except _BAD_FILE:
            continue
        if meta.bound or unbound_above_head(path, number, head) is None:
            return number, meta
    return None


def check(disk: Disk, sdir: Path) -> Rollback | None:
    """What :func:`judge` says of the newest trusted generation, reading only summaries and
    moving nothing (``ipysession doctor``)."""
    head, head_failed = read_head_quietly(disk, sdir)
    gens = scan_generations(sdir)
    found = newest_trusted(disk, sdir, gens, head)
    if found is None:
        return None
    used, meta = found
    on_disk = {number for number, _ in gens}
    return judge(disk, sdir, head, head_failed=head_failed, used=used, meta=meta, on_disk=on_disk)
