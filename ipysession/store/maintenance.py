"""Keeping the store healthy: check one file (``inspect``), check and clean every session
(``repair``), re-encrypt everything under a new key (``rekey``: every session, then the
user-wide recent-connections list), give a session another name (``rename``), and share a
session's blobs with its fork (``share_blobs``).

These are what ``ipysession doctor``, ``ipysession rekey`` and a forking kernel ask of the store;
:class:`~ipysession.store.session_store.SessionStore` offers them as methods of the same names.
Each works session by session under that session's write lock, so it never races a writer, and
leaves every file readable if it is interrupted: running it again finishes the job.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import secrets
import shutil
import time
from collections.abc import Iterable
from pathlib import Path

from ipysession.atomic import fsync_dir, write_atomically
from ipysession.errors import (
    CorruptFile,
    FileFormatError,
    FileProblem,
    LockTimeout,
    ModelError,
    ProblemKind,
    SessionExists,
    SessionNotFound,
    StoreError,
    StoreWriteError,
    UnsafeFile,
)
from ipysession.keys.crypto import SealingKey
from ipysession.model import Session
from ipysession.store import fileformat, head
from ipysession.store.blobs import blob_path, check_blob_name, write_blob
from ipysession.store.disk import Disk
from ipysession.store.either_key import EitherKey
from ipysession.store.files import read_any_file, read_blob_file, read_file, write_error
from ipysession.store.listings import DanglingReference, RekeyReport, RepairReport
from ipysession.store.meta import digest_of
from ipysession.store.names import (
    BLOB_SUFFIX,
    BLOBS_DIR,
    CHECKPOINTS_DIR,
    HEAD_FILE,
    RENAMING_PREFIX,
    TEMP_PREFIX,
    TRASH_PREFIX,
    check_name,
)
from ipysession.store.recent import RecentConnections
from ipysession.store.retention import collect_blobs
from ipysession.store.scan import check_blob_id, scan_blobs, scan_checkpoints, scan_generations

__all__ = [
    "dangling_references",
    "follow_rekeyed_blobs",
    "inspect",
    "rekey",
    "rename",
    "repair",
    "share_blobs",
]

logger = logging.getLogger("ipysession")


# --- inspect and repair ---------------------------------------------------------------------------


def inspect(disk: Disk, path: Path) -> FileProblem | None:
    """Check one file fully (authentication, validation, blob name); ``None`` if it is good.

    Nothing is moved: this is what ``ipysession doctor`` reports.
    """
    try:
        inside = path.is_relative_to(disk.root)  # doctor also checks export files
        root = disk.root if inside else None
        header, read = read_any_file(path, disk.key, disk.max_file_bytes, root=root)
        if header.is_head and path.name == HEAD_FILE:
            head.read_head(disk, path.parent)
        elif isinstance(read, fileformat.BlobRead):
            # The id the blob proves: from version 4 its authenticated trailer (nothing hashed),
            # before that its value hashed as it was decrypted (one pass).
            name = path.name.removesuffix(BLOB_SUFFIX)
            check_blob_name(path, read.value, name, header, disk.key, content_id=read.content_id)
        else:
            sdir: Path | None = path.parent
            if path.parent.name == CHECKPOINTS_DIR:
                sdir = path.parent.parent
            if sdir is not None and sdir.parent != disk.sessions_dir:
                sdir = None  # not in the store (an export file): no directory to match
            disk.decode(read, path, sdir)
    except (FileFormatError, OSError, LookupError) as exc:
        return disk.problem(path, exc, path.parent, quarantine=False)
    return None


def dangling_references(disk: Disk, sdir: Path) -> list[DanglingReference]:
    """Every generation and checkpoint in ``sdir`` that refers to a blob not on disk.

    A file that cannot be read is skipped here: ``inspect`` reports it on its own."""
    present = {path.name.removesuffix(BLOB_SUFFIX) for path in scan_blobs(sdir)}
    files = [path for _, path in scan_generations(sdir)] + scan_checkpoints(sdir)
    found: list[DanglingReference] = []
    for path in files:
        try:
            refs = disk.meta_for(path, sdir).blob_refs
        except (FileFormatError, OSError, LookupError):
            continue
        found += [DanglingReference(path, ref) for ref in sorted(refs - present)]
    return found


def repair(disk: Disk, *, grace: float) -> RepairReport:
    """Check every file of every session; see :meth:`SessionStore.repair`."""
    report = RepairReport()
    now = time.time()
    with contextlib.suppress(OSError), os.scandir(disk.sessions_dir) as entries:
        for entry in entries:
            if not entry.is_dir(follow_symlinks=False):
                continue
            if entry.name.startswith(RENAMING_PREFIX):
                # An interrupted rename (the old session is untouched); one younger than the
                # grace period may be a rename under way in another process.
                with contextlib.suppress(OSError):
                    if now - entry.stat(follow_symlinks=False).st_mtime < grace:
                        continue
            elif not entry.name.startswith(TRASH_PREFIX):
                continue
            shutil.rmtree(entry.path, ignore_errors=True)
            report.temp_files_removed.append(Path(entry.path))
    for sdir in disk.session_dirs():
        try:
            with disk.locked(sdir, create=False):
                _repair_session(disk, sdir, grace, report)
        except (LockTimeout, StoreWriteError, SessionNotFound) as exc:
            report.sessions_skipped.append((sdir, str(exc)))
    return report


def _repair_session(disk: Disk, sdir: Path, grace: float, report: RepairReport) -> None:
    now = time.time()
    for folder in (sdir, sdir / BLOBS_DIR, sdir / CHECKPOINTS_DIR):
        if folder.is_symlink():
            continue  # a planted link: its target's temp-named files are not ours to delete
        with contextlib.suppress(OSError), os.scandir(folder) as entries:
            for entry in entries:
                if not entry.name.startswith(TEMP_PREFIX):
                    continue
                with contextlib.suppress(OSError):
                    if now - entry.stat(follow_symlinks=False).st_mtime >= grace:
                        Path(entry.path).unlink()
                        report.temp_files_removed.append(Path(entry.path))
    disk.forget_dir(sdir)  # check every file afresh
    files = [path for _, path in scan_generations(sdir)]
    files += scan_checkpoints(sdir)
    files += [Path(e.path) for e in scan_blobs(sdir)]
    if os.path.lexists(head.head_path(sdir)):
        files.append(head.head_path(sdir))
    for path in files:
        report.files_checked += 1
        problem = inspect(disk, path)
        if problem is None:
            continue
        if problem.kind is ProblemKind.CORRUPT:
            moved = disk.quarantine(path, sdir)
            report.quarantined.append(dataclasses.replace(problem, quarantined_to=moved))
        else:
            report.left_in_place.append(problem)
    report.blobs_removed += collect_blobs(disk, sdir, grace=grace)


# --- rekey ----------------------------------------------------------------------------------------


def rekey(disk: Disk, new_key: SealingKey) -> RekeyReport:
    """Re-encrypt every file of every session under ``new_key``; see :meth:`SessionStore.rekey`.

    Afterwards ``disk`` seals with ``new_key``.
    """
    old_key = disk.key
    either = EitherKey(new_key, old_key)
    report = RekeyReport()
    for sdir in disk.session_dirs():
        try:
            with disk.locked(sdir, create=False):
                _rekey_session(disk, sdir, old_key, either, new_key, report)
        except SessionNotFound:
            continue
        report.sessions += 1
    _rekey_recent(disk, either, new_key, report)
    disk.use_key(new_key)
    logger.info(
        "Re-encrypted %d sessions (%d files, %d blobs, %d problems) and %d recent connections",
        report.sessions,
        report.files_rewritten,
        report.blobs_rewritten,
        len(report.problems),
        report.recent_resealed,
    )
    return report


def _rekey_recent(disk: Disk, either: EitherKey, new_key: SealingKey, report: RekeyReport) -> None:
    """Re-seal the user-wide recent-connections list, atomically, under its own lock: sealed
    with the old key, it would be unreadable, and silently empty, once that key is gone."""
    recent = RecentConnections(disk.root, new_key, lock_timeout=disk.lock_timeout, read_key=either)
    try:
        report.recent_resealed = recent.reseal()
    except (FileFormatError, OSError, ModelError, UnsafeFile) as exc:
        logger.warning("Could not re-encrypt the recent-connections list %s: %s", recent.path, exc)
        report.recent_unreadable = str(exc)


def _rekey_blobs(
    disk: Disk,
    sdir: Path,
    old_key: SealingKey,
    either: EitherKey,
    new_key: SealingKey,
    report: RekeyReport,
) -> dict[str, str]:
    """Re-seal every blob under its new id (the old blobs stay); returns old id -> new id."""
    blobs_dir = sdir / BLOBS_DIR
    new_key_id = new_key.for_writing()[2]
    renamed: dict[str, str] = {}
    for entry in scan_blobs(sdir):
        path = Path(entry.path)
        old_id = entry.name[: -len(BLOB_SUFFIX)]
        try:
            _, read = read_blob_file(path, either, disk.max_file_bytes, root=disk.root)
            header, value = read.header, read.value
            new_id = _rekeyed_id(path, read, old_id, old_key, new_key, new_key_id)
        except (FileFormatError, OSError) as exc:
            report.problems.append(disk.problem(path, exc, sdir, quarantine=True))
            continue
        renamed[old_id] = new_id
        if new_id == old_id and header.key_id == new_key_id:
            continue  # done by an earlier, interrupted rekey
        target = blob_path(sdir, new_id)
        try:
            write_blob(target, value, new_key, new_id)
        except OSError as exc:
            raise write_error(exc, target, "re-encrypt a stored value") from exc
        report.blobs_rewritten += 1
    try:
        if renamed:
            fsync_dir(blobs_dir)
    except OSError as exc:
        raise write_error(exc, blobs_dir, "flush the blob directory") from exc
    return renamed


def _rekeyed_id(
    path: Path,
    read: fileformat.BlobRead,
    old_id: str,
    old_key: SealingKey,
    new_key: SealingKey,
    new_key_id: bytes,
) -> str:
    """The id of an authenticated blob under ``new_key``, once its name ``old_id`` is proven:
    hashing the value at most once more than its reading did.

    A version 4 blob names itself (its authenticated trailer, the id under the key that sealed
    it: the old key, or the new one after an interrupted rekey), so its name is proven without
    hashing, and only a blob sealed under the old key is hashed, under the new one. An older
    blob was hashed under the new key as it was decrypted (``read_blob_file`` with the
    new-or-old key); its name is checked under the old key only when that id is not its name.
    """
    if read.header.version >= fileformat.ID_TRAILER_VERSION:
        check_blob_name(path, read.value, old_id, read.header, old_key, content_id=read.content_id)
        return old_id if read.header.key_id == new_key_id else new_key.content_id(read.value)
    if read.content_id != old_id:  # not re-sealed by an earlier, interrupted rekey
        check_blob_name(path, read.value, old_id, read.header, old_key)
    return read.content_id


def _rekey_session(
    disk: Disk,
    sdir: Path,
    old_key: SealingKey,
    either: EitherKey,
    new_key: SealingKey,
    report: RekeyReport,
) -> None:
    """(1) Re-seal every blob under its new id, (2) rewrite every generation and checkpoint in
    place, each atomically, referring to the new ids and bound to its place (a format 1 file
    becomes format 2 here), (3) re-seal the head record, naming the new digest, (4) remove the
    old blobs."""
    renamed = _rekey_blobs(disk, sdir, old_key, either, new_key, report)
    old_blobs_unused = _reseal(
        disk, sdir, sdir, read_key=either, write_key=new_key, blobs=renamed, report=report
    )
    if not old_blobs_unused:
        logger.warning("Keeping the old blobs of %s: some files could not be re-encrypted", sdir)
        return
    for old_id, new_id in renamed.items():
        if old_id != new_id:
            with contextlib.suppress(FileNotFoundError):
                blob_path(sdir, old_id).unlink()


def _reseal(
    disk: Disk,
    src: Path,
    dst: Path,
    *,
    read_key: SealingKey,
    write_key: SealingKey,
    blobs: dict[str, str] | None = None,
    name: str | None = None,
    report: RekeyReport,
) -> bool:
    """Re-seal every generation and checkpoint of session directory ``src`` into the same place
    under ``dst`` (``src`` itself for ``rekey``, a new directory for ``rename``), each
    atomically and bound to its place (a format 1 file becomes format 2), references to blobs
    renamed per ``blobs``, the session renamed to ``name`` if given; then the head record.

    A file that cannot be read is reported in ``report.problems`` (quarantined if damaged) and
    not written. Returns whether every file that may refer to a blob was re-sealed or damaged
    (so blobs that no file refers to any more may go).
    """
    try:
        recorded = head.read_head(disk, src, key=read_key)
    except (FileFormatError, OSError, LookupError) as exc:
        report.problems.append(disk.problem(head.head_path(src), exc, src, quarantine=True))
        recorded = None
    files: list[tuple[int | None, Path]] = list(scan_generations(src))
    files += [(None, path) for path in scan_checkpoints(src)]
    newest: head.Head | None = None
    all_resealed = True
    for number, path in files:
        try:
            data = read_file(path, disk.max_file_bytes, root=disk.root)[1]
            decoded = disk.opened(data, path, src, key=read_key)
            refused = None
            if number is not None and decoded.binding is None:
                refused = head.unbound_above_head(path, number, recorded)
            if refused is not None:
                raise refused  # binding it to its name now would make the substitution true
            session = disk.session_of(decoded, path)
        except (FileFormatError, OSError, LookupError) as exc:
            problem = disk.problem(path, exc, src, quarantine=True)
            report.problems.append(problem)
            all_resealed &= problem.kind is ProblemKind.CORRUPT
            continue
        if blobs:
            variables = {
                var_name: record.with_blobs_renamed(blobs)
                for var_name, record in session.variables.items()
            }
            session = dataclasses.replace(session, variables=variables)
        if name is not None:
            session = dataclasses.replace(session, name=name)  # the id stays: it is the session's
        place = disk.place(path, src)
        target = dst / path.relative_to(src)
        try:
            data = fileformat.encode_session(
                session.to_dict(), write_key, bound=place, limit=disk.max_document_bytes, path=path
            )
            if target.parent != dst:
                disk.ensure_dir(target.parent)
            write_atomically(target, data)
        except OSError as exc:
            raise write_error(exc, target, "re-seal a session file") from exc
        report.files_rewritten += 1
        if number is not None and (newest is None or number > newest.generation):
            newest = head.Head(session.name, number, digest_of(data))
    try:
        fsync_dir(dst)
        if (dst / CHECKPOINTS_DIR).is_dir():
            fsync_dir(dst / CHECKPOINTS_DIR)
    except OSError as exc:
        raise write_error(exc, dst, "flush the session directory") from exc
    # The head keeps naming the newest generation written, with the digest of its new file; a
    # head ahead of every file (its newest were deleted) stays ahead, so the rollback still shows.
    if recorded is not None and (newest is None or recorded.generation > newest.generation):
        newest = recorded if name is None else dataclasses.replace(recorded, session=name)
    if newest is not None:
        try:
            head.write_head(dst, newest, write_key)
        except OSError as exc:
            raise write_error(exc, head.head_path(dst), "re-seal the head record") from exc
    return all_resealed


def follow_rekeyed_blobs(
    disk: Disk, sdir: Path, session: Session, retired: Iterable[SealingKey]
) -> Session:
    """``session`` with references to blobs that a rekey renamed pointing at their new names.

    A running kernel keeps only the blob id of a value it already stored, not its bytes. Blob ids
    are keyed hashes, so ``rekey`` re-seals each blob under a new id and removes the old one;
    without this, the kernel's next write would find its references gone and save those values
    as skipped. Called under the session's write lock by a store that sealed with the
    ``retired`` keys before; only references missing on disk are looked up, by reading the
    session's blobs once and hashing each value under the retired keys.
    """
    # Only references, not bytes still held in memory: ``data`` set means not stored yet.
    missing = {ref for ref in session.blob_ids() if not _blob_present(sdir, ref)}
    if not missing:
        return session
    renamed: dict[str, str] = {}
    old_keys = list(retired)
    for entry in scan_blobs(sdir):
        path = Path(entry.path)
        try:
            value = read_blob_file(path, disk.key, disk.max_file_bytes, root=disk.root)[1].value
        except (FileFormatError, OSError):
            continue  # not readable with the current key: not one rekey wrote
        for old_key in old_keys:
            old_id = old_key.content_id(value)
            if old_id in missing:
                renamed[old_id] = entry.name.removesuffix(BLOB_SUFFIX)
        if len(renamed) == len(missing):
            break
    if not renamed:
        return session
    logger.info("Following %d stored values re-encrypted by rekey in %s", len(renamed), sdir.name)
    variables = {
        name: record.with_blobs_renamed(renamed) for name, record in session.variables.items()
    }
    return dataclasses.replace(session, variables=variables)


def _blob_present(sdir: Path, blob_id: str) -> bool:
    try:
        check_blob_id(blob_id, sdir)
    except FileFormatError:
        return True  # not a blob name at all: externalize reports it, nothing to follow
    return blob_path(sdir, blob_id).is_file()


# --- rename ---------------------------------------------------------------------------------------


def rename(disk: Disk, old: str, new: str) -> Path:
    """Give session ``old`` the name ``new``; see :meth:`SessionStore.rename`. Returns the new
    directory."""
    check_name(new)
    src = disk.existing_dir(old)
    dst = disk.session_dir(new)
    if old == new or src == dst:
        msg = f"Session {old!r} already has that name; nothing was renamed"
        raise StoreError(msg, path=src)
    _refuse_existing(dst, new)
    with disk.locked(src, create=False):
        tmp = disk.sessions_dir / f"{RENAMING_PREFIX}{dst.name}-{secrets.token_hex(4)}"
        try:
            disk.ensure_dir(tmp)
            _link_blobs(disk, src, tmp)
            report = RekeyReport()
            _reseal(disk, src, tmp, read_key=disk.key, write_key=disk.key, name=new, report=report)
            _refuse_lost_files(report, old, src)
            _move_into_place(disk, tmp, dst, new)
        except BaseException:
            # Nothing of the old session was touched (a damaged file aside, quarantined as any
            # read does): what was written goes, and the old session stays as it was.
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        try:
            trash = disk.move_aside(src, f"remove the old name {old!r} after renaming it")
        except StoreWriteError as exc:
            msg = f"Renamed session {old!r} to {new!r}, but {exc.what[0].lower()}{exc.what[1:]}"
            raise StoreWriteError(
                msg,
                path=exc.path,
                hint=(
                    f"The session is saved under {new!r} now; the copy under {old!r} stays: "
                    f"`ipysession delete {old}` removes it"
                ),
                errno=exc.errno,
            ) from exc
    disk.remove_aside(trash)
    logger.info("Renamed session %s to %s", src.name, dst.name)
    return dst


def _refuse_existing(dst: Path, new: str) -> None:
    if os.path.lexists(dst):
        msg = f"A session named {new!r} exists already; nothing was renamed"
        raise SessionExists(
            msg,
            path=dst,
            hint=f"Delete it first (`ipysession delete {new}`) if you no longer need it",
        )


def _link_blobs(disk: Disk, src: Path, tmp: Path) -> None:
    """Hard-link (or copy where links fail) every blob of ``src`` into ``tmp``: a blob's id is
    the keyed hash of its value, whatever the session's name, so it moves as it is."""
    entries = scan_blobs(src)
    if not entries:
        return
    blobs_dir = disk.ensure_dir(tmp / BLOBS_DIR)
    for entry in entries:
        source, target = Path(entry.path), blobs_dir / entry.name
        try:
            try:
                os.link(source, target, follow_symlinks=False)
            except FileNotFoundError:
                raise
            except OSError:  # another device, or a filesystem without hard links
                write_atomically(target, read_file(source, disk.max_file_bytes, root=disk.root)[1])
        except OSError as exc:
            raise write_error(exc, target, "carry a stored value to the new name") from exc
    try:
        fsync_dir(blobs_dir)
    except OSError as exc:
        raise write_error(exc, blobs_dir, "flush the blob directory") from exc


def _refuse_lost_files(report: RekeyReport, old: str, src: Path) -> None:
    """A file that could not be re-sealed (another key, a newer release) would be lost with the
    old directory: refuse. A damaged one was quarantined, as any read would have done."""
    kept = [p for p in report.problems if p.kind is not ProblemKind.CORRUPT]
    if kept:
        msg = f"Cannot rename session {old!r}: {kept[0].message}; nothing was renamed"
        raise StoreError(
            msg,
            path=kept[0].path,
            hint="Run `ipysession doctor` to see why the file cannot be read, then retry",
        )
    if report.files_rewritten == 0:
        msg = f"Session {old!r} has no readable generation or checkpoint; nothing was renamed"
        raise StoreError(msg, path=src, hint="Run `ipysession doctor` to see what is wrong")


def _move_into_place(disk: Disk, tmp: Path, dst: Path, new: str) -> None:
    """Rename the finished ``tmp`` to ``dst``, never over a session that appeared meanwhile."""
    try:
        fsync_dir(tmp)
    except OSError as exc:
        raise write_error(exc, tmp, "flush the renamed session") from exc
    _refuse_existing(dst, new)
    try:
        # POSIX rename replaces only an empty directory, which holds no session; one that
        # appeared with files since the check above makes this fail (ENOTEMPTY, EEXIST).
        tmp.rename(dst)
    except OSError as exc:
        if os.path.lexists(dst):
            _refuse_existing(dst, new)
        raise write_error(exc, dst, f"rename the session to {new!r}") from exc
    try:
        fsync_dir(disk.sessions_dir)
    except OSError as exc:
        raise write_error(exc, disk.sessions_dir, "flush the sessions directory") from exc


# --- forks ----------------------------------------------------------------------------------------


def share_blobs(disk: Disk, source: str, target: str, blob_ids: Iterable[str]) -> int:
    """Hard-link (or copy) blobs of ``source`` into ``target``; see
    :meth:`SessionStore.share_blobs`. Returns how many were added."""
    ids = sorted(set(blob_ids))
    if not ids:
        return 0
    src_dir = disk.existing_dir(source)
    dst_dir = disk.session_dir(target)
    blobs_dir = dst_dir / BLOBS_DIR
    added = 0
    with disk.locked(dst_dir, create=True):
        for blob_id in ids:
            check_blob_id(blob_id, src_dir)
            src, dst = blob_path(src_dir, blob_id), blob_path(dst_dir, blob_id)
            if dst.is_file():
                continue
            tmp = blobs_dir / f"{TEMP_PREFIX}{dst.name}.{os.getpid()}.{secrets.token_hex(4)}"
            try:
                disk.ensure_dir(blobs_dir)
                try:
                    os.link(src, tmp, follow_symlinks=False)
                except FileNotFoundError:
                    raise
                except OSError:  # another device, or a filesystem without hard links
                    write_atomically(tmp, read_file(src, disk.max_file_bytes, root=disk.root)[1])
                tmp.replace(dst)
            except FileNotFoundError:
                logger.warning("Stored value %s of %s is missing; not shared", blob_id, source)
                continue
            except (OSError, CorruptFile) as exc:
                with contextlib.suppress(OSError):
                    tmp.unlink()
                if isinstance(exc, CorruptFile):
                    logger.warning("Stored value %s of %s is damaged; not shared", blob_id, source)
                    continue
                raise write_error(exc, dst, "share a stored value with the fork") from exc
            added += 1
        if added:
            try:
                fsync_dir(blobs_dir)
            except OSError as exc:
                raise write_error(exc, blobs_dir, "flush the blob directory") from exc
    logger.info("Shared %d stored values of %s with %s", added, src_dir.name, dst_dir.name)
    return added
