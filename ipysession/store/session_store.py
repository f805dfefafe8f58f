"""The session store: the read/write path over session directories, generations, blobs,
checkpoints and quarantine.

(About 600 lines on purpose: a write runs in one order under one lock -- the key checked,
the next number from authenticated files and the head, blobs, the sealed generation, the head,
retention -- and keeping that order in one method is what makes it reviewable; reading,
blobs, retention, summaries and maintenance live in modules of their own.)

:class:`SessionStore` is to the session manager what IPython's ``HistoryAccessor`` is to its
``HistoryManager``: it works without a shell, so the ``ipysession`` command uses it directly. It
knows files and keys, not IPython. Layout under the root (``$IPYSESSION_DIR``, else the user data
dir)::

    <root>/
      sessions/<slug>/            one directory per session; slug = readable part + name hash
        session.lock              filelock, held only while writing
        gen-00000042.ipys         generations thinned by age, bounded by size (store.retention)
        head.ipys                 sealed: the newest generation written and its digest
        blobs/<id>.ipyb           values larger than ``blob_threshold``, sealed on their own
        checkpoints/<label>.ipys  named checkpoints, never rotated away
      quarantine/<slug>/...       files that failed to authenticate or validate, kept for the user

Guarantees:

* **Atomic, durable writes.** Every file is written to a ``.tmp-`` file in its own directory,
  flushed and fsynced, then moved into place with ``os.replace``; on POSIX the directory is fsynced
  too. A crash at any moment leaves either the old or the new file, never a torn one. Blobs are
  written (and made durable) before the generation that refers to them.
* **Nothing is lost silently.** A file that fails authentication or validation is moved to
  ``quarantine/`` and the next older generation is read; the problem is reported in
  :attr:`ReadResult.problems`. Files sealed under another key or by a newer release are valid,
  so they are left in place (and moved to quarantine, not deleted, if rotation reaches them).
* **Rollbacks are reported.** Each generation (format 2 on) says which generation it is, and the
  sealed head record says which one was written last (:mod:`~ipysession.store.head`): an older
  generation copied or renamed over a newer one is quarantined, and newest generations deleted
  or put back from an older copy are reported in :attr:`ReadResult.rollback`. Only generations
  that authenticate and say their own number decide the next number, never a name alone.
* **Writers exclude each other** with ``filelock`` (which also works on Windows); readers take no
  lock. A write states which generation it started from (``base_generation``); if another writer
  got there first, the caller's ``merge`` reconciles the two, or :class:`WriteConflict` is raised.
* **History you can go back in.** After each write, old generations are thinned by age (all of
  the last minutes, then one per 10 minutes for a day, one per day for a week) and bounded by
  size; the newest generation and checkpoints are never thinned
  (:mod:`~ipysession.store.retention`).
* **Large values dedupe.** A value is stored once under ``key.content_id(value)`` (a keyed hash,
  so equal values share a blob without revealing their content) and shared by every generation.
  Blobs no kept generation or checkpoint refers to are collected after rotation, but only when
  older than a grace period, so a concurrent writer's fresh blob is never removed.

Nothing here unpickles anything: values leave the store as bytes. Diagnostics go to the
``ipysession`` logger and never contain values, secrets or keys.

The parts, lowest first: :mod:`~ipysession.store.disk` (the files of one root under one key:
decoding, remembered summaries, quarantine, the lock), :mod:`~ipysession.store.blobs`,
:mod:`~ipysession.store.retention` (rotation and blob collection),
:mod:`~ipysession.store.reading` (the newest readable generation, and the error when there is
none), :mod:`~ipysession.store.summaries` (``list`` and friends),
:mod:`~ipysession.store.maintenance` (inspect, repair, rekey, share_blobs) and
:mod:`~ipysession.store.results` (the records returned).
"""

from __future__ import annotations

import builtins  # SessionStore.list shadows the builtin in the class body
import logging
import os
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

from ipysession import paths
from ipysession.atomic import fsync_dir, write_atomically
from ipysession.errors import (
    FileProblem,
    SessionNotFound,
    StoreError,
    WriteConflict,
)
from ipysession.keys.crypto import SealingKey
from ipysession.model import Session
from ipysession.store import blobs, fileformat, head, reading, retention
from ipysession.store.disk import Disk
from ipysession.store.files import write_error
from ipysession.store.meta import digest_of
from ipysession.store.names import (
    CHECKPOINTS_DIR,
    GENERATION_SUFFIX,
    check_name,
    slug_for,
)
from ipysession.store.results import ReadResult, Rollback, WriteResult
from ipysession.store.retention import DEFAULT_SCHEDULE, Retention
from ipysession.store.scan import (
    MAX_GENERATION,
    check_label,
    gen_name,
    scan_checkpoints,
    scan_generations,
)

# Listing (summaries), maintenance (inspect, repair, rekey, rename, sharing blobs) and the
# recent-connections list are imported by the methods that use them: a kernel that restores and
# saves its session never does, and its start should not pay for them (tests/test_import_cost.py).
if TYPE_CHECKING:
    from ipysession.store.listings import (
        CheckpointInfo,
        DanglingReference,
        GenerationInfo,
        RekeyReport,
        RepairReport,
        SessionSummary,
    )
    from ipysession.store.recent import RecentConnections

__all__ = ["DEFAULT_KEEP", "DEFAULT_MAX_DOCUMENT_BYTES", "DEFAULT_MAX_FILE_BYTES", "SessionStore"]

logger = logging.getLogger("ipysession")

DEFAULT_KEEP = 5
DEFAULT_BLOB_THRESHOLD = 64 * 1024
#: Unreferenced blobs and temp files younger than this are left alone: another process may be
#: writing the generation that will refer to them.
DEFAULT_GRACE = 10 * 60.0
#: A session file larger than this is not read at all (reading it would exhaust memory): nothing
#: ipysession writes comes near it, so it is treated as a corrupt file and moved to quarantine.
DEFAULT_MAX_FILE_BYTES = 8 << 30
#: A session document that inflates beyond this is treated as corrupt (see
#: :data:`ipysession.store.fileformat.DEFAULT_MAX_DOCUMENT_BYTES`), and none larger is written.
DEFAULT_MAX_DOCUMENT_BYTES = fileformat.DEFAULT_MAX_DOCUMENT_BYTES


class SessionStore:
    """Sessions on disk, sealed with ``key``; safe to share between threads and processes.

    Generations are kept as ``retention`` says (default: the default schedule, with the newest
    ``keep`` always kept; ``Retention((), keep=n)`` keeps just the newest ``n``), ages measured
    on ``clock`` (seconds since the epoch; tests pass a simulated one); values larger than
    ``blob_threshold`` bytes go to blobs; a write waits at most ``lock_timeout`` seconds for
    another writer; unreferenced blobs and temp files younger than ``gc_grace`` seconds are
    never removed; a file larger than ``max_file_bytes`` is never read, and a session document
    that inflates beyond ``max_document_bytes`` is treated as corrupt (and never written).

    ``key_source``, when given, is asked under the session's write lock before every write and
    checkpoint for the key to seal with now (a running kernel's
    :meth:`~ipysession.keys.watch.KeyWatch.current`): ``ipysession rekey`` re-encrypts under the
    same lock, so a write never seals with a key that rekey has replaced. If it raises, nothing
    is written.
    """

    def __init__(
        self,
        root: Path | None = None,
        *,
        key: SealingKey,
        keep: int = DEFAULT_KEEP,
        lock_timeout: float = 10.0,
        blob_threshold: int = DEFAULT_BLOB_THRESHOLD,
        gc_grace: float = DEFAULT_GRACE,
        max_file_bytes: int = DEFAULT_MAX_FILE_BYTES,
        max_document_bytes: int = DEFAULT_MAX_DOCUMENT_BYTES,
        retention: Retention | None = None,
        clock: Callable[[], float] = time.time,
        key_source: Callable[[], SealingKey] | None = None,
    ) -> None:
        if keep < 1:
            msg = f"keep must be at least 1, not {keep}"
            raise ValueError(msg)
        self.root = Path(root) if root is not None else paths.session_root()
        self.retention = retention or Retention.from_schedule(DEFAULT_SCHEDULE, keep=keep)
        self.keep = self.retention.keep
        self.clock = clock
        self.blob_threshold = blob_threshold
        self.gc_grace = gc_grace
        self._disk = Disk(
            self.root,
            key=key,
            lock_timeout=lock_timeout,
            max_file_bytes=max_file_bytes,
            max_document_bytes=max_document_bytes,
        )
        self._closed = False
        self._key_source = key_source
        # Keys this store sealed with before a rekey replaced them: their blob ids are what a
        # running kernel's records still name (see maintenance.follow_rekeyed_blobs).
        self._retired_keys: builtins.list[SealingKey] = []

    # -- resource ---------------------------------------------------------------------------------

    def close(self) -> None:
        """Forget cached metadata; safe to call twice. The store holds no open files or locks."""
        self._closed = True
        self._disk.forget_all()

    def __enter__(self) -> SessionStore:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"SessionStore({str(self.root)!r}, key={self.key.description!r})"

    def _check_open(self) -> None:
        if self._closed:
            msg = "The session store is closed"
            raise StoreError(msg, path=self.root)

    @property
    def key(self) -> SealingKey:
        return self._disk.key

    @property
    def lock_timeout(self) -> float:
        return self._disk.lock_timeout

    @property
    def max_file_bytes(self) -> int:
        return self._disk.max_file_bytes

    @property
    def max_document_bytes(self) -> int:
        return self._disk.max_document_bytes

    # -- paths ------------------------------------------------------------------------------------

    @property
    def sessions_dir(self) -> Path:
        return self._disk.sessions_dir

    @property
    def quarantine_dir(self) -> Path:
        return self._disk.quarantine_dir

    def session_dir(self, name: str) -> Path:
        """Where the session called ``name`` lives (whether or not it exists)."""
        return self._disk.session_dir(name)

    def _existing_dir(self, name: str) -> Path:
        self._check_open()
        return self._disk.existing_dir(name)

    def exists(self, name: str) -> bool:
        """True if the session has at least one generation or checkpoint on disk."""
        self._check_open()
        found = self._disk.find_dir(name)
        if found is None:
            return False
        return bool(scan_generations(found) or scan_checkpoints(found))

    # -- writing ----------------------------------------------------------------------------------

    def write(
        self,
        session: Session,
        *,
        base_generation: int | None = None,
        merge: Callable[[Session, Session], Session] | None = None,
    ) -> WriteResult:
        """Save ``session`` as a new generation and return what was written.

        ``base_generation`` is the generation the caller's session was read from (``None``: do
        not check). If another writer has written a newer one since, ``merge(theirs, ours)`` is
        called with the newest readable session on disk and ``session``, and its result is saved;
        without ``merge`` :class:`WriteConflict` is raised. Any operating-system failure raises
        :class:`StoreWriteError` and leaves every existing generation as it was.
        """
        self._check_open()
        check_name(session.name)
        disk = self._disk
        sdir = self.session_dir(session.name)
        started = time.perf_counter()
        with disk.locked(sdir, create=True):
            self._follow_key()
            if self._retired_keys:
                from ipysession.store import maintenance  # see the imports above

                session = maintenance.follow_rekeyed_blobs(disk, sdir, session, self._retired_keys)
            gens = scan_generations(sdir)
            # Only what authenticates decides: the newest generation that is what its name says,
            # and the head record (a rollback must not make numbers be reused).
            # The head also counts for conflicts: it is proof that its generation was written,
            # even if that file is damaged or gone now.
            recorded, _ = head.read_head_quietly(disk, sdir)
            trusted = head.newest_trusted(disk, sdir, gens, recorded)
            newest = max(trusted[0] if trusted else 0, recorded.generation if recorded else 0)
            merged = False
            if base_generation is not None and newest > base_generation:
                if merge is None:
                    msg = (
                        f"Session {session.name!r} was saved by another writer (generation "
                        f"{newest}) after generation {base_generation} was read"
                    )
                    raise WriteConflict(
                        msg, path=sdir, hint="Read the session again, or save with a merge"
                    )
                theirs = self._theirs(session.name, sdir, newest)
                session = merge(theirs, session)
                merged = True
                if slug_for(session.name) != sdir.name:
                    msg = f"The merge returned a session named {session.name!r}, not the same name"
                    raise WriteConflict(msg, path=sdir)
            number = _next_number(sdir, newest)
            target = sdir / gen_name(number)
            lost: dict[str, str] = {}
            prepared, blobs_written, blob_bytes = blobs.externalize(
                disk, sdir, session, self.blob_threshold, lost=lost
            )
            moved = {
                var: record.blob
                for var, record in prepared.variables.items()
                if record.blob is not None and session.variables[var].data is not None
            }
            stored = {
                var: record
                for var, record in prepared.variables.items()
                if record is not session.variables[var] and record.saved
            }
            data = fileformat.encode_session(
                prepared.to_dict(),
                disk.key,
                bound=fileformat.Binding(generation=number),
                limit=disk.max_document_bytes,
                path=target,
            )
            try:
                st = write_atomically(target, data)
                fsync_dir(sdir)
            except OSError as exc:
                raise write_error(exc, target, f"write generation {number}") from exc
            disk.remember(target, st, prepared, data=data, bound=True)
            _record_head(sdir, head.Head(session.name, number, digest_of(data)), disk.key)
            # Names above the new number are files that decide nothing (another key, a newer
            # release, damage): not the newest, so never a reason to thin ours away.
            kept = [(n, p) for n, p in gens if n < number]
            retention.rotate(
                disk, sdir, [*kept, (number, target)], self.retention, now=self.clock()
            )
            retention.collect_blobs(disk, sdir, grace=self.gc_grace)
        logger.debug(
            "Wrote %s generation %d (%d bytes, %d new blobs) in %.1f ms",
            sdir.name,
            number,
            len(data),
            blobs_written,
            (time.perf_counter() - started) * 1000,
        )
        return WriteResult(
            generation=number,
            path=target,
            bytes_written=len(data) + blob_bytes,
            blobs_written=blobs_written,
            merged=merged,
            blobs=moved,
            stored=stored,
            lost_blobs=lost,
        )

    def _follow_key(self) -> None:
        """Seal with the key ``key_source`` names now (called under the session's write lock)."""
        if self._key_source is None:
            return
        key = self._key_source()
        if key is not self._disk.key:
            self._retired_keys.append(self._disk.key)
            self._disk.use_key(key)

    def _theirs(self, name: str, sdir: Path, newest: int) -> Session:
        """The newest readable session on disk, for a merge; unreadable -> WriteConflict."""
        try:
            return reading.read_newest(self._disk, name, sdir).session
        except StoreError as exc:
            msg = (
                f"Session {name!r} was saved by another writer (generation {newest}), but "
                f"no generation on disk can be read to merge with: {exc.what}"
            )
            error = WriteConflict(msg, path=sdir, hint=exc.hint or "Run `ipysession doctor`")
            error.problems = exc.problems
            raise error from exc

    # -- reading ----------------------------------------------------------------------------------

    def read(
        self, name: str, *, generation: int | None = None, checkpoint: str | None = None
    ) -> ReadResult:
        """Read the newest readable generation (or the given generation or checkpoint).

        A newer file that fails authentication or validation is quarantined and the next older
        one is tried; files under another key or from a newer release are skipped and left in
        place. Every skipped file is listed in :attr:`ReadResult.problems`. If nothing can be
        read, the most telling error is raised (:class:`NewerFormat`, then :class:`WrongKey`,
        then :class:`CorruptFile`), carrying the problems (see :func:`problems_of`).
        """
        if generation is not None and checkpoint is not None:
            msg = "Pass generation or checkpoint, not both"
            raise ValueError(msg)
        sdir = self._existing_dir(name)
        if checkpoint is not None:
            check_label(checkpoint)
            path = sdir / CHECKPOINTS_DIR / f"{checkpoint}{GENERATION_SUFFIX}"
            if not path.is_file():
                labels = ", ".join(p.stem for p in scan_checkpoints(sdir)) or "none"
                msg = f"Session {name!r} has no checkpoint {checkpoint!r} (it has: {labels})"
                raise SessionNotFound(msg, path=path)
            return ReadResult(reading.read_one(self._disk, path, sdir), None, path, [])
        gens = scan_generations(sdir)
        if generation is not None:
            for number, path in gens:
                if number == generation:
                    return ReadResult(reading.read_one(self._disk, path, sdir), number, path, [])
            have = ", ".join(str(n) for n, _ in gens) or "none"
            msg = f"Session {name!r} has no generation {generation} (it has: {have})"
            raise SessionNotFound(msg, path=sdir / gen_name(generation))
        return reading.read_newest(self._disk, name, sdir)

    def read_blob(self, name: str, blob_id: str) -> memoryview:
        """The bytes of one stored value, authenticated and checked against its id.

        A missing or corrupt blob raises :class:`CorruptFile` (a corrupt one is quarantined): the
        caller skips that one variable.
        """
        sdir = self._existing_dir(name)
        return blobs.read_checked_blob(self._disk, sdir, blob_id)

    def rollback(self, name: str) -> Rollback | None:
        """What the head record says of the session's newest generation, reading summaries only
        and moving nothing: what ``ipysession doctor`` reports (see :attr:`ReadResult.rollback`).
        """
        return head.check(self._disk, self._existing_dir(name))

    # -- listing ----------------------------------------------------------------------------------

    def list(self) -> list[SessionSummary]:
        """Every session, most recently updated first; never raises for a bad session."""
        self._check_open()
        from ipysession.store import summaries  # see the imports above

        found = [summaries.summarize(self._disk, sdir) for sdir in self._disk.session_dirs()]
        found.sort(key=lambda s: s.updated or 0.0, reverse=True)
        return found

    def generations(self, name: str) -> builtins.list[GenerationInfo]:
        """Every generation of a session, newest first; a bad one carries its problem."""
        from ipysession.store import summaries  # see the imports above

        return summaries.generation_infos(self._disk, self._existing_dir(name))

    def checkpoints(self, name: str) -> builtins.list[CheckpointInfo]:
        """Named checkpoints of a session, newest first."""
        from ipysession.store import summaries  # see the imports above

        return summaries.checkpoint_infos(self._disk, self._existing_dir(name))

    # -- checkpoints ------------------------------------------------------------------------------

    def checkpoint(
        self,
        name: str,
        label: str,
        session: Session | None = None,
        *,
        overwrite: bool = False,
    ) -> Path:
        """Save a named checkpoint, never rotated away: a copy of the newest readable generation,
        or ``session`` if given. An existing label is replaced only with ``overwrite=True``."""
        self._check_open()
        check_label(label)
        disk = self._disk
        if session is not None:
            if session.name != name:
                msg = f"Checkpoint of {name!r} given a session named {session.name!r}"
                raise StoreError(msg)
            sdir = self.session_dir(name)
        else:
            sdir = self._existing_dir(name)
        target = sdir / CHECKPOINTS_DIR / f"{label}{GENERATION_SUFFIX}"
        with disk.locked(sdir, create=session is not None):
            self._follow_key()
            if session is not None and self._retired_keys:
                from ipysession.store import maintenance  # see the imports above

                session = maintenance.follow_rekeyed_blobs(disk, sdir, session, self._retired_keys)
            if target.exists() and not overwrite:
                msg = f"Session {name!r} already has a checkpoint {label!r}"
                raise StoreError(msg, path=target, hint="Choose another label, or overwrite it")
            if session is None:
                prepared = reading.read_newest(self._disk, name, sdir).session
            else:
                prepared = blobs.externalize(disk, sdir, session, self.blob_threshold)[0]
            data = fileformat.encode_session(
                prepared.to_dict(),
                disk.key,
                bound=fileformat.Binding(checkpoint=label),
                limit=disk.max_document_bytes,
                path=target,
            )
            try:
                disk.ensure_dir(target.parent)
                st = write_atomically(target, data)
                fsync_dir(target.parent)
            except OSError as exc:
                raise write_error(exc, target, f"write checkpoint {label!r}") from exc
            disk.remember(target, st, prepared, data=data, bound=True)
        logger.info("Saved checkpoint %s of %s", label, sdir.name)
        return target

    # -- deleting ---------------------------------------------------------------------------------

    def delete(self, name: str) -> Path:
        """Delete a whole session (generations, blobs, checkpoints); returns its former directory.

        The directory is first renamed away under the lock, so readers see the whole session or
        nothing; then it is removed.
        """
        sdir = self._existing_dir(name)
        with self._disk.locked(sdir, create=False):
            trash = self._disk.move_aside(sdir, f"delete session {name!r}")
        self._disk.remove_aside(trash)
        logger.info("Deleted session %s", sdir.name)
        return sdir

    # -- maintenance (the work is in ipysession.store.maintenance) --------------------------------

    def dangling_references(self, name: str) -> builtins.list[DanglingReference]:
        """Each generation or checkpoint of ``name`` that refers to a blob not on disk (what
        ``ipysession doctor`` reports; a restore would lose that variable)."""
        from ipysession.store import maintenance  # see the imports above

        return maintenance.dangling_references(self._disk, self._existing_dir(name))

    def inspect(self, path: Path) -> FileProblem | None:
        """Check one file fully (authentication, validation, blob name); ``None`` if it is good.

        Nothing is moved: this is what ``ipysession doctor`` reports.
        """
        self._check_open()
        from ipysession.store import maintenance  # see the imports above

        return maintenance.inspect(self._disk, Path(path))

    def repair(self, *, grace: float | None = None) -> RepairReport:
        """``ipysession doctor --repair``: check every file of every session.

        Files failing authentication or validation are quarantined; files under another key or
        from a newer release are reported and left; temp files and unreferenced blobs older than
        ``grace`` seconds (default: the store's ``gc_grace``) are removed, as are leftovers of
        interrupted deletes. A session another process is writing is skipped and reported.
        """
        self._check_open()
        from ipysession.store import maintenance  # see the imports above

        return maintenance.repair(self._disk, grace=self.gc_grace if grace is None else grace)

    def rekey(self, new_key: SealingKey) -> RekeyReport:
        """Re-encrypt every generation, checkpoint and blob of every session under ``new_key``.

        Blob ids are keyed hashes, so they change with the key. Per session, under its lock:
        (1) every blob is re-sealed under its new id (old blobs stay), (2) every generation and
        checkpoint is rewritten in place, each atomically, referring to the new ids, (3) the old
        blobs are removed. A crash at any point leaves every file readable with a key that knows
        both the old and the new master key, each generation referring to blobs that exist, and
        calling ``rekey`` again finishes the job. The key store must therefore keep the new key
        (and the old one, for reading) before calling this. Afterwards this store writes with
        ``new_key``.
        """
        self._check_open()
        from ipysession.store import maintenance  # see the imports above

        return maintenance.rekey(self._disk, new_key)

    def rename(self, old: str, new: str) -> Path:
        """Give session ``old`` the name ``new`` (a renamed or moved notebook); returns the new
        directory. Refused (nothing changes) if ``new`` exists, ``old`` does not, or they are
        the same name: a session is never overwritten.

        Every file is bound to the session's name (docs/file-format.md), so under the old
        session's lock every generation and checkpoint is re-sealed under ``new``, keeping its
        binding and the session's id (format 1 files become format 2), with the head record,
        into ``sessions/.renaming-...`` beside the target; blobs are hard-linked (copied where
        links fail). That directory is flushed, renamed into place, and only then is the old
        one moved aside and removed. A crash at any moment leaves the old session readable; a
        leftover ``.renaming-`` directory is removed by :meth:`repair`. Nothing is unpickled.
        """
        self._check_open()
        from ipysession.store import maintenance  # see the imports above

        return maintenance.rename(self._disk, old, new)

    def recent_connections(self) -> RecentConnections:
        """The user-wide list of recent connections under this root, sealed with the key this
        store would seal a session with now (``key_source``: a running kernel follows
        ``ipysession rekey``, which re-seals the list) and read with it or any key it replaced.

        Raises :class:`~ipysession.errors.KeyUnavailable` when the key was replaced and the new
        one cannot be read: nothing may be sealed with the old one."""
        self._check_open()
        key = self._key_source() if self._key_source is not None else self.key
        from ipysession.store.either_key import EitherKey  # see the imports above
        from ipysession.store.recent import RecentConnections

        read_key = EitherKey(key, self.key, *self._retired_keys)
        return RecentConnections(self.root, key, lock_timeout=self.lock_timeout, read_key=read_key)

    def share_blobs(self, source: str, target: str, blob_ids: Iterable[str]) -> int:
        """Make stored values of session ``source`` available to session ``target`` (a fork).

        A kernel that forks a session restores its variables with references to the source's
        blobs; before the fork can refer to them, they must be in the fork's directory too. Each
        blob is hard-linked (no copy, no re-encryption: a blob's name does not depend on its
        session) or copied where links are not possible. Blobs already there are skipped; a
        missing one is logged and skipped (that one variable will be reported when restored).
        Returns how many were added.
        """
        self._check_open()
        from ipysession.store import maintenance  # see the imports above

        return maintenance.share_blobs(self._disk, source, target, blob_ids)


def _next_number(sdir: Path, after: int) -> int:
    """The number of the next generation: after ``after``, skipping any name already taken
    (a file this key cannot read is never written over)."""
    number = after + 1
    while os.path.lexists(sdir / gen_name(number)):
        number += 1
    if number > MAX_GENERATION:
        msg = f"Session has reached the largest generation number ({MAX_GENERATION})"
        raise StoreError(msg, path=sdir, hint="Export it and import it under a new name")
    return number


def _record_head(sdir: Path, record: head.Head, key: SealingKey) -> None:
    """Write the head record after the generation it names is on disk.

    A failure is logged, not raised: the generation is saved, and a head left behind it is
    what readers expect after a crash between the two writes.
    """
    try:
        head.write_head(sdir, record, key)
    except OSError as exc:
        logger.warning(
            "Generation %d of %s is saved, but its head record could not be written (%s); "
            "rollbacks of it cannot be detected until the next save",
            record.generation,
            sdir.name,
            exc.strerror or exc,
        )
