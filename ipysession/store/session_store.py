"""The session store: session directories, generations, blobs, checkpoints, quarantine.

:class:`SessionStore` is to the session manager what IPython's ``HistoryAccessor`` is to its
``HistoryManager``: it works without a shell, so the ``ipysession`` command uses it directly. It
knows files and keys, not IPython. Layout under the root (``$IPYSESSION_DIR``, else the user data
dir)::

    <root>/
      sessions/<slug>/            one directory per session; slug = readable part + name hash
        session.lock              filelock, held only while writing
        gen-00000042.ipys         the newest ``keep`` generations (default 5)
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
* **Writers exclude each other** with ``filelock`` (which also works on Windows); readers take no
  lock. A write states which generation it started from (``base_generation``); if another writer
  got there first, the caller's ``merge`` reconciles the two, or :class:`WriteConflict` is raised.
* **Large values dedupe.** A value is stored once under ``key.content_id(value)`` (a keyed hash,
  so equal values share a blob without revealing their content) and shared by every generation.
  Blobs no kept generation or checkpoint refers to are collected after rotation, but only when
  older than a grace period, so a concurrent writer's fresh blob is never removed.

Nothing here unpickles anything: values leave the store as bytes. Diagnostics go to the
``ipysession`` logger and never contain values, secrets or keys.

Helpers with one job each: :mod:`~ipysession.store.files` reads files defensively and words write
failures, :mod:`~ipysession.store.scan` names and lists a session's files, and
:mod:`~ipysession.store.meta` is the cached summary of one file.
"""

from __future__ import annotations

import builtins
import contextlib
import dataclasses
import errno
import logging
import os
import secrets
import shutil
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from types import TracebackType
from typing import Literal

import filelock

from ipysession import paths
from ipysession.errors import (
    CorruptFile,
    FileFormatError,
    LockTimeout,
    ModelError,
    NewerFormat,
    SessionError,
    SessionNotFound,
    StoreError,
    StoreWriteError,
    WriteConflict,
    WrongKey,
)
from ipysession.keys.crypto import ContentHasher, SealingKey
from ipysession.model import Session, VariableRecord
from ipysession.store import fileformat

__all__ = [
    "BLOB_SUFFIX",
    "GENERATION_SUFFIX",
    "TEMP_PREFIX",
    "CheckpointInfo",
    "FileProblem",
    "GenerationInfo",
    "ProblemKind",
    "ReadResult",
    "RekeyReport",
    "RepairReport",
    "SessionStore",
    "SessionSummary",
    "WriteResult",
    "problems_of",
    "session_dir_for",
    "slug_for",
]

from ipysession.atomic import fsync_dir, write_atomically
from ipysession.store.files import blob_key as _blob_key
from ipysession.store.files import read_blob_file as _read_blob_file
from ipysession.store.files import read_file as _read_file
from ipysession.store.files import stat_key as _stat_key
from ipysession.store.files import write_error as _write_error
from ipysession.store.meta import FileMeta as _Meta
from ipysession.store.names import (
    BLOB_SUFFIX,
    BLOBS_DIR,
    CHECKPOINTS_DIR,
    GENERATION_SUFFIX,
    LOCK_FILE,
    QUARANTINE_DIR,
    SESSIONS_DIR,
    TEMP_PREFIX,
    check_name,
    session_dir_for,
    slug_for,
)
from ipysession.store.scan import SLUG_RE as _SLUG_RE
from ipysession.store.scan import check_blob_id as _check_blob_id
from ipysession.store.scan import check_label as _check_label
from ipysession.store.scan import gen_name as _gen_name
from ipysession.store.scan import scan_blobs, scan_checkpoints, scan_generations, scan_session_dirs

logger = logging.getLogger("ipysession")

_TRASH_PREFIX = ".deleting-"

DEFAULT_KEEP = 5
DEFAULT_BLOB_THRESHOLD = 64 * 1024
#: Unreferenced blobs and temp files younger than this are left alone: another process may be
#: writing the generation that will refer to them.
DEFAULT_GRACE = 10 * 60.0
#: A session file larger than this is not read at all (reading it would exhaust memory): nothing
#: ipysession writes comes near it, so it is treated as a corrupt file and moved to quarantine.
DEFAULT_MAX_FILE_BYTES = 8 << 30

ProblemKind = Literal["corrupt", "wrong-key", "newer-format", "unreadable"]
_RELEVANCE: dict[str, int] = {"newer-format": 3, "wrong-key": 2, "corrupt": 1, "unreadable": 0}


# --- public records -----------------------------------------------------------------------------


@dataclass(frozen=True)
class FileProblem:
    """One file that could not be used, and why.

    ``kind`` is ``"corrupt"`` (failed authentication or validation: moved to quarantine, see
    ``quarantined_to``), ``"wrong-key"`` (sealed under another key: left in place),
    ``"newer-format"`` (written by a newer ipysession: left in place) or ``"unreadable"`` (the
    operating system refused to read it: left in place).
    """

    path: Path
    kind: ProblemKind
    message: str
    quarantined_to: Path | None = None


@dataclass(frozen=True)
class WriteResult:
    generation: int
    path: Path
    bytes_written: int
    blobs_written: int
    merged: bool
    #: Variables whose value now lives in a blob, with the blob's id: a caller holding the
    #: serialized bytes can drop them and keep the reference.
    blobs: dict[str, str] = dataclasses.field(default_factory=dict)


@dataclass(frozen=True)
class ReadResult:
    """A session as read. ``generation`` is ``None`` for a checkpoint.

    Variables larger than the blob threshold keep their ``blob`` reference; fetch their bytes
    with :meth:`SessionStore.read_blob`. ``problems`` lists newer files that were skipped.
    """

    session: Session
    generation: int | None
    path: Path
    problems: list[FileProblem] = field(default_factory=list)


@dataclass(frozen=True)
class SessionSummary:
    """One line of ``ipysession list``. ``name`` is ``None`` when no generation could be read."""

    name: str | None
    slug: str
    path: Path
    updated: float | None
    size_bytes: int
    generations: int
    variables: int
    connections: int
    newest_readable: int | None
    problem: FileProblem | None = None


@dataclass(frozen=True)
class GenerationInfo:
    """One generation file; the decoded fields are ``None`` when ``problem`` is set."""

    number: int
    path: Path
    size: int
    mtime: float
    time: float | None = None
    cells: int | None = None
    variables: int | None = None
    writer_run_id: str | None = None
    writer_kernel_id: str | None = None
    writer_host: str | None = None
    writer_pid: int | None = None
    problem: FileProblem | None = None

    @property
    def writer(self) -> str | None:
        """Who wrote it, for display: ``"host pid 123, kernel 1a2b3c4d"`` (``None`` if unknown)."""
        parts = []
        if self.writer_host:
            parts.append(self.writer_host)
        if self.writer_pid:
            parts.append(f"pid {self.writer_pid}")
        described = " ".join(parts)
        if self.writer_kernel_id:
            kernel = f"kernel {self.writer_kernel_id[:8]}"
            described = f"{described}, {kernel}" if described else kernel
        return described or None


@dataclass(frozen=True)
class CheckpointInfo:
    """One named checkpoint; the decoded fields are ``None`` when ``problem`` is set."""

    label: str
    path: Path
    size: int
    mtime: float
    time: float | None = None
    cells: int | None = None
    variables: int | None = None
    problem: FileProblem | None = None


@dataclass
class RepairReport:
    """What :meth:`SessionStore.repair` did (``ipysession doctor --repair``)."""

    quarantined: list[FileProblem] = field(default_factory=list)
    left_in_place: list[FileProblem] = field(default_factory=list)
    temp_files_removed: list[Path] = field(default_factory=list)
    blobs_removed: list[Path] = field(default_factory=list)
    sessions_skipped: list[tuple[Path, str]] = field(default_factory=list)
    files_checked: int = 0


@dataclass
class RekeyReport:
    """What :meth:`SessionStore.rekey` did."""

    sessions: int = 0
    files_rewritten: int = 0
    blobs_rewritten: int = 0
    problems: list[FileProblem] = field(default_factory=list)


def problems_of(error: BaseException) -> list[FileProblem]:
    """The file problems attached to an error raised by :meth:`SessionStore.read`."""
    found = getattr(error, "problems", None)
    return builtins.list(found) if isinstance(found, builtins.list) else []


def _kind_of(exc: BaseException) -> ProblemKind:
    if isinstance(exc, NewerFormat):
        return "newer-format"
    if isinstance(exc, WrongKey):
        return "wrong-key"
    if isinstance(exc, (CorruptFile, ModelError)):
        return "corrupt"
    return "unreadable"


def _attach_problems(error: BaseException, problems: builtins.list[FileProblem]) -> None:
    # errors.py has no field for this yet; problems_of() reads it back.
    error.__dict__["problems"] = builtins.list(problems)


class _EitherKey:
    """Reads with the old or the new key, writes with the new one (used only by ``rekey``)."""

    def __init__(self, new: SealingKey, old: SealingKey) -> None:
        self._new = new
        self._old = old

    @property
    def description(self) -> str:
        return f"{self._new.description} (re-encrypting from the {self._old.description})"

    def for_writing(self) -> tuple[bytes, bytes, bytes]:
        return self._new.for_writing()

    def for_reading(self, salt: bytes, key_id: bytes) -> bytes | None:
        found = self._old.for_reading(salt, key_id)
        return found if found is not None else self._new.for_reading(salt, key_id)

    def content_id(self, data: bytes) -> str:
        return self._new.content_id(data)

    def content_hasher(self) -> ContentHasher:
        return self._new.content_hasher()


# --- the store ------------------------------------------------------------------------------------


class SessionStore:
    """Sessions on disk, sealed with ``key``; safe to share between threads and processes.

    ``keep`` newest generations are kept per session; values larger than ``blob_threshold`` bytes
    go to blobs; a write waits at most ``lock_timeout`` seconds for another writer;
    unreferenced blobs and temp files younger than ``gc_grace`` seconds are never removed.
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
    ) -> None:
        if keep < 1:
            msg = f"keep must be at least 1, not {keep}"
            raise ValueError(msg)
        self.root = Path(root) if root is not None else paths.session_root()
        self._key = key
        self.keep = keep
        self.lock_timeout = lock_timeout
        self.blob_threshold = blob_threshold
        self.gc_grace = gc_grace
        self.max_file_bytes = max_file_bytes
        self._mutex = threading.Lock()
        self._meta: dict[Path, _Meta] = {}
        self._verified_blobs: dict[Path, tuple[int, int, int]] = {}
        self._closed = False

    # -- resource ---------------------------------------------------------------------------------

    def close(self) -> None:
        """Forget cached metadata; safe to call twice. The store holds no open files or locks."""
        with self._mutex:
            self._closed = True
            self._meta.clear()
            self._verified_blobs.clear()

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
        return f"SessionStore({str(self.root)!r}, key={self._key.description!r})"

    def _check_open(self) -> None:
        if self._closed:
            msg = "The session store is closed"
            raise StoreError(msg, path=self.root)

    @property
    def key(self) -> SealingKey:
        return self._key

    # -- paths ------------------------------------------------------------------------------------

    @property
    def sessions_dir(self) -> Path:
        return self.root / SESSIONS_DIR

    @property
    def quarantine_dir(self) -> Path:
        return self.root / QUARANTINE_DIR

    def session_dir(self, name: str) -> Path:
        """Where the session called ``name`` lives (whether or not it exists)."""
        return session_dir_for(self.root, name)

    def _find_dir(self, name: str) -> Path | None:
        """The directory of ``name``; a slug (as ``list`` shows it) is accepted too."""
        primary = self.session_dir(name)
        if primary.is_dir():
            return primary
        if _SLUG_RE.fullmatch(name):
            by_slug = self.sessions_dir / name
            if by_slug.is_dir():
                return by_slug
        return None

    def _existing_dir(self, name: str) -> Path:
        self._check_open()
        found = self._find_dir(name)
        if found is None:
            msg = f"No session named {name!r}"
            raise SessionNotFound(
                msg,
                path=self.session_dir(name),
                hint="Run `ipysession list` to see the saved sessions",
            )
        return found

    def exists(self, name: str) -> bool:
        """True if the session has at least one generation or checkpoint on disk."""
        self._check_open()
        found = self._find_dir(name)
        if found is None:
            return False
        return bool(self._scan_generations(found) or self._scan_checkpoints(found))

    def _ensure_session_dirs(self, sdir: Path) -> None:
        if not self.root.exists():
            paths.ensure_private_dir(self.root)
        paths.ensure_private_dir(self.sessions_dir)
        paths.ensure_private_dir(sdir)

    # -- scanning ---------------------------------------------------------------------------------

    _scan_generations = staticmethod(scan_generations)
    _scan_checkpoints = staticmethod(scan_checkpoints)
    _scan_blobs = staticmethod(scan_blobs)

    def _session_dirs(self) -> builtins.list[Path]:
        return scan_session_dirs(self.sessions_dir)

    # -- decoding and caching ---------------------------------------------------------------------

    def _decode(
        self, data: bytes, path: Path, sdir: Path | None, key: SealingKey | None = None
    ) -> Session:
        """Authenticate, decrypt, migrate and validate one ``.ipys`` file.

        Raises :class:`FileFormatError` (a model error after authentication is a corrupt file).
        With ``sdir``, the session's name must belong in that directory: an authentic file of
        another session copied here is not accepted as this one.
        """
        doc = fileformat.decode_session(data, key if key is not None else self._key, path=path)
        doc.pop("format", None)
        try:
            session = Session.from_dict(doc)
        except ModelError as exc:
            msg = f"File is authentic but does not hold a valid session: {exc.what}"
            raise CorruptFile(msg, path=path) from None
        if sdir is not None and slug_for(session.name) != sdir.name:
            msg = (
                f"File holds session {session.name!r}, which does not belong in "
                f"directory {sdir.name!r}: it was moved or copied here"
            )
            raise CorruptFile(msg, path=path)
        return session

    def _load(self, path: Path, sdir: Path) -> tuple[Session, bytes, _Meta]:
        st, data = _read_file(path, self.max_file_bytes)
        session = self._decode(data, path, sdir)
        return session, data, self._remember(path, st, session)

    def _remember(self, path: Path, st: os.stat_result, session: Session) -> _Meta:
        meta = _Meta.of(session, st)
        with self._mutex:
            self._meta[path] = meta
        return meta

    def _forget(self, path: Path) -> None:
        with self._mutex:
            self._meta.pop(path, None)
            self._verified_blobs.pop(path, None)

    def _forget_dir(self, sdir: Path) -> None:
        with self._mutex:
            for cache in (self._meta, self._verified_blobs):
                for path in [p for p in cache if p.is_relative_to(sdir)]:
                    del cache[path]

    def _meta_for(self, path: Path, sdir: Path) -> _Meta:
        """Metadata of a generation or checkpoint, decoding it only if not cached."""
        st = path.stat()
        with self._mutex:
            cached = self._meta.get(path)
        if cached is not None and cached.stat_key == _stat_key(st):
            return cached
        st, data = _read_file(path, self.max_file_bytes)
        doc = fileformat.decode_session(data, self._key, path=path)
        meta = _Meta.from_doc(doc, st, path)
        if slug_for(meta.name) != sdir.name:
            msg = f"File holds session {meta.name!r}, which does not belong in {sdir.name!r}"
            raise CorruptFile(msg, path=path)
        with self._mutex:
            self._meta[path] = meta
        return meta

    # -- quarantine -------------------------------------------------------------------------------

    def _quarantine(self, path: Path, sdir: Path) -> Path | None:
        """Move ``path`` to ``<root>/quarantine/<slug>/...`` with a timestamp; never deletes."""
        try:
            relative = path.relative_to(sdir)
        except ValueError:
            relative = Path(path.name)
        stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S.%fZ")
        try:
            target_dir = paths.ensure_private_dir(self.quarantine_dir)
            for part in (sdir.name, *relative.parent.parts):
                target_dir = paths.ensure_private_dir(target_dir / part)  # each level 0700
            target = target_dir / f"{relative.name}.{stamp}"
            counter = 0
            while target.exists():
                counter += 1
                target = target_dir / f"{relative.name}.{stamp}-{counter}"
            path.replace(target)
        except FileNotFoundError:
            return None  # someone else moved it already
        except OSError as exc:
            logger.error("Could not move %s to quarantine: %s; it stays in place", path, exc)
            return None
        self._forget(path)
        logger.warning("Moved unreadable file %s to quarantine as %s", path, target)
        return target

    def _problem(
        self, path: Path, exc: BaseException, sdir: Path, *, quarantine: bool
    ) -> FileProblem:
        kind = _kind_of(exc)
        moved = self._quarantine(path, sdir) if kind == "corrupt" and quarantine else None
        message = str(exc)
        if isinstance(exc, OSError) and not isinstance(exc, SessionError):
            message = f"Cannot read {path}: {exc.strerror or exc}"
        if kind != "corrupt":
            logger.info("Skipping %s (%s)", path, kind)
        return FileProblem(path=path, kind=kind, message=message, quarantined_to=moved)

    # -- locking ----------------------------------------------------------------------------------

    @contextlib.contextmanager
    def _locked(self, sdir: Path, *, create: bool) -> Iterator[None]:
        """Hold the session's write lock; re-creates the directory if it vanished meanwhile."""
        lock_path = sdir / LOCK_FILE
        for _attempt in range(5):
            if create:
                try:
                    self._ensure_session_dirs(sdir)
                except OSError as exc:
                    raise _write_error(exc, sdir, "create the session directory") from exc
            elif not sdir.is_dir():
                msg = f"Session directory {sdir.name!r} no longer exists"
                raise SessionNotFound(msg, path=sdir)
            lock = filelock.FileLock(
                lock_path, timeout=self.lock_timeout, mode=paths.PRIVATE_FILE_MODE
            )
            try:
                lock.acquire()
            except filelock.Timeout:
                msg = (
                    f"Another process has been writing this session for more than "
                    f"{self.lock_timeout:g} s"
                )
                raise LockTimeout(
                    msg,
                    path=lock_path,
                    hint="Wait for the other kernel or `ipysession` command to finish, then retry",
                ) from None
            except FileNotFoundError:
                continue  # the session was deleted while we waited: start over
            except OSError as exc:
                raise _write_error(exc, lock_path, "lock the session") from exc
            except NotImplementedError as exc:  # filelock: this filesystem has no flock at all
                no_locks = OSError(errno.ENOLCK, f"file locks are not supported ({exc})")
                raise _write_error(no_locks, lock_path, "lock the session") from exc
            try:
                if lock_path.exists():
                    yield
                    return
            finally:
                lock.release()
        msg = "The session directory keeps disappearing while locking it"
        raise StoreWriteError(msg, path=sdir, hint="Is another process deleting it? Try again")

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
        sdir = self.session_dir(session.name)
        started = time.perf_counter()
        with self._locked(sdir, create=True):
            gens = self._scan_generations(sdir)
            newest = gens[-1][0] if gens else 0
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
            number = newest + 1
            target = sdir / _gen_name(number)
            prepared, blobs_written, blob_bytes = self._externalize(sdir, session)
            moved = {
                var: record.blob
                for var, record in prepared.variables.items()
                if record.blob is not None and session.variables[var].data is not None
            }
            data = fileformat.encode_session(prepared.to_dict(), self._key)
            try:
                st = write_atomically(target, data)
                fsync_dir(sdir)
            except OSError as exc:
                raise _write_error(exc, target, f"write generation {number}") from exc
            self._remember(target, st, prepared)
            self._rotate(sdir, [*gens, (number, target)])
            self._collect_blobs(sdir, grace=self.gc_grace)
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
        )

    def _theirs(self, name: str, sdir: Path, newest: int) -> Session:
        """The newest readable session on disk, for a merge; unreadable -> WriteConflict."""
        try:
            return self._read_newest(name, sdir).session
        except StoreError as exc:
            msg = (
                f"Session {name!r} was saved by another writer (generation {newest}), but "
                f"no generation on disk can be read to merge with: {exc.what}"
            )
            error = WriteConflict(msg, path=sdir, hint=exc.hint or "Run `ipysession doctor`")
            _attach_problems(error, problems_of(exc))
            raise error from exc

    def _externalize(self, sdir: Path, session: Session) -> tuple[Session, int, int]:
        """Move large values to blobs (written before the generation that refers to them)."""
        blobs_dir = sdir / BLOBS_DIR
        variables: dict[str, VariableRecord] = {}
        changed = False
        written = 0
        nbytes = 0
        for var_name, record in session.variables.items():
            if record.data is not None and len(record.data) > self.blob_threshold:
                blob_id = self._key.content_id(record.data)
                path = blobs_dir / f"{blob_id}{BLOB_SUFFIX}"
                if not self._reuse_blob(path, blob_id):
                    try:
                        paths.ensure_private_dir(blobs_dir)
                        st = self._write_blob(path, record.data, self._key)
                    except OSError as exc:
                        raise _write_error(exc, path, f"write the value of {var_name!r}") from exc
                    with self._mutex:
                        self._verified_blobs[path] = _blob_key(st)
                    written += 1
                    nbytes += st.st_size
                record = dataclasses.replace(record, data=None, blob=blob_id)
                changed = True
            elif record.blob is not None:
                _check_blob_id(record.blob, sdir)
                if not self._touch(blobs_dir / f"{record.blob}{BLOB_SUFFIX}"):
                    # Kept as it is: restoring will report this one variable as lost, and failing
                    # the whole write would lose everything else too.
                    logger.warning(
                        "Variable %s refers to a stored value that no longer exists (%s)",
                        var_name,
                        sdir.name,
                    )
            variables[var_name] = record
        if written:
            try:
                fsync_dir(blobs_dir)
            except OSError as exc:
                raise _write_error(exc, blobs_dir, "flush the blob directory") from exc
        if not changed:
            return session, written, nbytes
        return dataclasses.replace(session, variables=variables), written, nbytes

    @staticmethod
    def _write_blob(path: Path, value: bytes, key: SealingKey) -> os.stat_result:
        """Seal ``value`` straight into a new blob file at ``path``, atomically."""
        return write_atomically(path, lambda f: fileformat.write_blob(f, value, key))

    @staticmethod
    def _touch(path: Path) -> bool:
        """True if ``path`` exists; refreshes its mtime so a grace period protects it."""
        try:
            os.utime(path)
        except FileNotFoundError:
            return False
        except OSError:
            return path.is_file()
        return True

    def _reuse_blob(self, path: Path, blob_id: str) -> bool:
        """True if a good blob for ``blob_id`` is already there (checked once per process)."""
        if not self._touch(path):
            return False
        try:
            st = path.stat()
        except OSError:
            return False
        with self._mutex:
            if self._verified_blobs.get(path) == _blob_key(st):
                return True
        try:
            _, header, value = _read_blob_file(path, self._key, self.max_file_bytes)
            if not self._blob_id_matches(value, blob_id, header):
                msg = "Blob content does not match its name"
                raise CorruptFile(msg, path=path)
        except (WrongKey, NewerFormat):
            return False  # valid under another key or release: write ours over it
        except (CorruptFile, OSError) as exc:
            self._problem(path, exc, path.parent.parent, quarantine=True)
            return False
        with self._mutex:
            self._verified_blobs[path] = _blob_key(st)
        return True

    def _rotate(self, sdir: Path, gens: builtins.list[tuple[int, Path]]) -> None:
        """Remove generations beyond the newest ``keep``.

        Files sealed under another key or by a newer release are moved to quarantine instead of
        being deleted: they may be the only copy of someone's work.
        """
        if len(gens) <= self.keep:
            return
        for number, path in gens[: -self.keep]:
            if self._is_ours(path):
                try:
                    path.unlink()
                except FileNotFoundError:
                    pass
                except OSError as exc:
                    logger.warning("Could not remove old generation %s: %s", path, exc)
                    continue
                self._forget(path)
                logger.debug("Rotated away generation %d of %s", number, sdir.name)
            else:
                self._quarantine(path, sdir)

    def _is_ours(self, path: Path) -> bool:
        try:
            with open(path, "rb") as f:
                head = f.read(fileformat.HEADER_SIZE + 16)
            header = fileformat.read_header(head, path=path)
        except (FileFormatError, OSError):
            return False
        return self._key.for_reading(header.salt, header.key_id) is not None

    def _referenced_blobs(self, sdir: Path) -> set[str] | None:
        """Blob ids referred to by every generation and checkpoint; ``None`` if one is unreadable.

        Files this store wrote or read are answered from memory; others are decoded once.
        """
        refs: set[str] = set()
        files = [path for _, path in self._scan_generations(sdir)]
        files += self._scan_checkpoints(sdir)
        for path in files:
            try:
                refs |= self._meta_for(path, sdir).blob_refs
            except FileNotFoundError:
                continue
            except (FileFormatError, OSError, LookupError) as exc:
                logger.debug("Not collecting blobs of %s: %s is unreadable (%s)", sdir, path, exc)
                return None
        return refs

    def _collect_blobs(self, sdir: Path, *, grace: float) -> builtins.list[Path]:
        """Delete blobs that no generation or checkpoint refers to and that are older than grace."""
        blobs = self._scan_blobs(sdir)
        if not blobs:
            return []
        refs = self._referenced_blobs(sdir)
        if refs is None:
            return []
        removed: builtins.list[Path] = []
        now = time.time()
        for entry in blobs:
            if entry.name[: -len(BLOB_SUFFIX)] in refs:
                continue
            try:
                if now - entry.stat(follow_symlinks=False).st_mtime < grace:
                    continue
                Path(entry.path).unlink()
            except FileNotFoundError:
                continue
            except OSError as exc:
                logger.warning("Could not remove unreferenced blob %s: %s", entry.path, exc)
                continue
            path = Path(entry.path)
            self._forget(path)
            removed.append(path)
        if removed:
            logger.debug("Collected %d unreferenced blobs of %s", len(removed), sdir.name)
        return removed

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
            _check_label(checkpoint)
            path = sdir / CHECKPOINTS_DIR / f"{checkpoint}{GENERATION_SUFFIX}"
            if not path.is_file():
                labels = ", ".join(p.stem for p in self._scan_checkpoints(sdir)) or "none"
                msg = f"Session {name!r} has no checkpoint {checkpoint!r} (it has: {labels})"
                raise SessionNotFound(msg, path=path)
            return ReadResult(self._read_one(path, sdir), None, path, [])
        gens = self._scan_generations(sdir)
        if generation is not None:
            for number, path in gens:
                if number == generation:
                    return ReadResult(self._read_one(path, sdir), number, path, [])
            have = ", ".join(str(n) for n, _ in gens) or "none"
            msg = f"Session {name!r} has no generation {generation} (it has: {have})"
            raise SessionNotFound(msg, path=sdir / _gen_name(generation))
        return self._read_newest(name, sdir)

    def _read_one(self, path: Path, sdir: Path) -> Session:
        try:
            session = self._load(path, sdir)[0]
        except (FileFormatError, OSError, LookupError) as exc:
            problem = self._problem(path, exc, sdir, quarantine=True)
            if isinstance(exc, SessionError):
                _attach_problems(exc, [problem])
                raise
            raise self._unreadable_error([problem], path) from exc
        return session

    def _read_newest(self, name: str, sdir: Path) -> ReadResult:
        problems: builtins.list[FileProblem] = []
        errors: builtins.list[BaseException] = []
        failed: set[Path] = set()
        for _attempt in range(5):
            gens = [(n, p) for n, p in self._scan_generations(sdir) if p not in failed]
            if not gens and not problems:
                msg = f"Session {name!r} has no saved generation"
                raise SessionNotFound(
                    msg,
                    path=sdir,
                    hint="Its checkpoints, if any, can be read with `--checkpoint LABEL`",
                )
            vanished = False
            for number, path in reversed(gens):
                try:
                    session = self._load(path, sdir)[0]
                except FileNotFoundError:
                    vanished = True  # rotated away by a concurrent writer: scan again
                    break
                except (FileFormatError, OSError, LookupError) as exc:
                    problems.append(self._problem(path, exc, sdir, quarantine=True))
                    errors.append(exc)
                    failed.add(path)
                    continue
                return ReadResult(session, number, path, problems)
            if not vanished:
                break
        raise self._most_relevant(name, sdir, errors, problems)

    def _most_relevant(
        self,
        name: str,
        sdir: Path,
        errors: builtins.list[BaseException],
        problems: builtins.list[FileProblem],
    ) -> SessionError:
        if not problems:
            msg = f"Session {name!r} has no readable generation"
            return SessionNotFound(msg, path=sdir)
        best = max(problems, key=lambda p: _RELEVANCE[p.kind]).kind
        chosen = [e for e, p in zip(errors, problems, strict=True) if p.kind == best]
        error: SessionError
        if best == "newer-format":
            newer = [e for e in chosen if isinstance(e, NewerFormat)]
            error = max(newer, key=lambda e: e.found)
        elif best == "wrong-key":
            error = next(e for e in chosen if isinstance(e, WrongKey))
        elif best == "corrupt":
            msg = (
                f"No generation of session {name!r} could be read: {len(chosen)} file(s) failed "
                f"authentication or validation and were moved to {self.quarantine_dir}"
            )
            error = CorruptFile(
                msg,
                path=sdir,
                hint="Checkpoints, if any, may still be readable; the moved files are kept",
            )
        else:
            error = self._unreadable_error(problems, sdir)
        _attach_problems(error, problems)
        return error

    @staticmethod
    def _unreadable_error(problems: builtins.list[FileProblem], where: Path) -> StoreError:
        msg = f"Session files cannot be read: {problems[0].message}"
        error = StoreError(msg, path=where, hint=f"Check permissions of {where}")
        _attach_problems(error, problems)
        return error

    def read_blob(self, name: str, blob_id: str) -> bytes:
        """The bytes of one stored value, authenticated and checked against its id.

        A missing or corrupt blob raises :class:`CorruptFile` (a corrupt one is quarantined): the
        caller skips that one variable.
        """
        sdir = self._existing_dir(name)
        _check_blob_id(blob_id, sdir)
        path = sdir / BLOBS_DIR / f"{blob_id}{BLOB_SUFFIX}"
        try:
            st, header, value = _read_blob_file(path, self._key, self.max_file_bytes)
            if not self._blob_id_matches(value, blob_id, header):
                msg = "Blob content does not match its name: it was swapped or renamed"
                raise CorruptFile(
                    msg,
                    path=path,
                    hint="The variable stored in it cannot be restored from this blob",
                )
        except CorruptFile as exc:
            _attach_problems(exc, [self._problem(path, exc, sdir, quarantine=True)])
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
        with self._mutex:
            self._verified_blobs[path] = _blob_key(st)
        return value

    def _blob_id_matches(self, value: bytes, blob_id: str, header: fileformat.Header) -> bool:
        if self._key.content_id(value) == blob_id:
            return True
        # A blob sealed under a previous master key (a rekey was interrupted) is named by that
        # key's content id, which the key protocol cannot compute. It authenticated under a key
        # we hold, so accept it; rekey renames it. Passphrase content ids never change per salt.
        if header.uses_passphrase or header.key_id == self._key.for_writing()[2]:
            return False
        logger.warning(
            "Blob %s is sealed under a previous key; its name cannot be verified until "
            "`ipysession rekey` completes",
            blob_id,
        )
        return True

    # -- listing ----------------------------------------------------------------------------------

    def list(self) -> builtins.list[SessionSummary]:
        """Every session, most recently updated first; never raises for a bad session."""
        self._check_open()
        summaries = [self._summarize(sdir) for sdir in self._session_dirs()]
        summaries.sort(key=lambda s: s.updated or 0.0, reverse=True)
        return summaries

    def _summarize(self, sdir: Path) -> SessionSummary:
        gens: builtins.list[tuple[int, Path]] = []
        first_problem: FileProblem | None = None
        try:
            gens = self._scan_generations(sdir)
            for number, path in reversed(gens):
                try:
                    meta = self._meta_for(path, sdir)
                except FileNotFoundError:
                    continue
                except (FileFormatError, OSError, LookupError) as exc:
                    if first_problem is None:
                        first_problem = self._problem(path, exc, sdir, quarantine=False)
                    continue
                size = meta.size
                for blob_id in meta.blob_refs:
                    with contextlib.suppress(OSError):
                        size += (sdir / BLOBS_DIR / f"{blob_id}{BLOB_SUFFIX}").stat().st_size
                return SessionSummary(
                    name=meta.name,
                    slug=sdir.name,
                    path=sdir,
                    updated=meta.updated,
                    size_bytes=size,
                    generations=len(gens),
                    variables=meta.variables,
                    connections=meta.connections,
                    newest_readable=number,
                    problem=first_problem,
                )
        except OSError as exc:
            first_problem = self._problem(sdir, exc, sdir, quarantine=False)
        except SessionError as exc:  # a bug surfacing as one of ours: report, never raise
            logger.exception("Could not summarize session %s", sdir)
            first_problem = self._problem(sdir, exc, sdir, quarantine=False)
        if first_problem is None:
            first_problem = FileProblem(
                path=sdir, kind="unreadable", message=f"{sdir} holds no generation file"
            )
        updated: float | None = None
        size = 0
        for _, path in gens:
            with contextlib.suppress(OSError):
                st = path.stat()
                size += st.st_size
                updated = max(updated or 0.0, st.st_mtime)
        return SessionSummary(
            name=None,
            slug=sdir.name,
            path=sdir,
            updated=updated,
            size_bytes=size,
            generations=len(gens),
            variables=0,
            connections=0,
            newest_readable=None,
            problem=first_problem,
        )

    def generations(self, name: str) -> builtins.list[GenerationInfo]:
        """Every generation of a session, newest first; a bad one carries its problem."""
        sdir = self._existing_dir(name)
        infos: builtins.list[GenerationInfo] = []
        for number, path in reversed(self._scan_generations(sdir)):
            try:
                st = path.stat()
            except FileNotFoundError:
                continue
            except OSError as exc:
                problem = self._problem(path, exc, sdir, quarantine=False)
                infos.append(GenerationInfo(number, path, 0, 0.0, problem=problem))
                continue
            try:
                meta = self._meta_for(path, sdir)
            except FileNotFoundError:
                continue
            except (FileFormatError, OSError, LookupError) as exc:
                problem = self._problem(path, exc, sdir, quarantine=False)
                infos.append(GenerationInfo(number, path, st.st_size, st.st_mtime, problem=problem))
                continue
            infos.append(
                GenerationInfo(
                    number=number,
                    path=path,
                    size=st.st_size,
                    mtime=st.st_mtime,
                    time=meta.updated,
                    cells=meta.cells,
                    variables=meta.variables,
                    writer_run_id=meta.run_id,
                    writer_kernel_id=meta.kernel_id,
                    writer_host=meta.host,
                    writer_pid=meta.pid,
                )
            )
        return infos

    # -- forks ------------------------------------------------------------------------------------

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
        ids = sorted(set(blob_ids))
        if not ids:
            return 0
        src_dir = self._existing_dir(source)
        dst_dir = self.session_dir(target)
        blobs_dir = dst_dir / BLOBS_DIR
        added = 0
        with self._locked(dst_dir, create=True):
            for blob_id in ids:
                _check_blob_id(blob_id, src_dir)
                name = f"{blob_id}{BLOB_SUFFIX}"
                src, dst = src_dir / BLOBS_DIR / name, blobs_dir / name
                if dst.is_file():
                    continue
                tmp = blobs_dir / f"{TEMP_PREFIX}{name}.{os.getpid()}.{secrets.token_hex(4)}"
                try:
                    paths.ensure_private_dir(blobs_dir)
                    try:
                        os.link(src, tmp, follow_symlinks=False)
                    except FileNotFoundError:
                        raise
                    except OSError:  # another device, or a filesystem without hard links
                        write_atomically(tmp, _read_file(src, self.max_file_bytes)[1])
                    tmp.replace(dst)
                except FileNotFoundError:
                    logger.warning("Stored value %s of %s is missing; not shared", blob_id, source)
                    continue
                except (OSError, CorruptFile) as exc:
                    with contextlib.suppress(OSError):
                        tmp.unlink()
                    if isinstance(exc, CorruptFile):
                        logger.warning(
                            "Stored value %s of %s is damaged; not shared", blob_id, source
                        )
                        continue
                    raise _write_error(exc, dst, "share a stored value with the fork") from exc
                added += 1
            if added:
                try:
                    fsync_dir(blobs_dir)
                except OSError as exc:
                    raise _write_error(exc, blobs_dir, "flush the blob directory") from exc
        logger.info("Shared %d stored values of %s with %s", added, src_dir.name, dst_dir.name)
        return added

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
        _check_label(label)
        if session is not None:
            if session.name != name:
                msg = f"Checkpoint of {name!r} given a session named {session.name!r}"
                raise StoreError(msg)
            sdir = self.session_dir(name)
        else:
            sdir = self._existing_dir(name)
        target = sdir / CHECKPOINTS_DIR / f"{label}{GENERATION_SUFFIX}"
        with self._locked(sdir, create=session is not None):
            if target.exists() and not overwrite:
                msg = f"Session {name!r} already has a checkpoint {label!r}"
                raise StoreError(msg, path=target, hint="Choose another label, or overwrite it")
            if session is None:
                source = self._read_newest(name, sdir).session
                data = fileformat.encode_session(source.to_dict(), self._key)
                prepared = source
            else:
                prepared, _, _ = self._externalize(sdir, session)
                data = fileformat.encode_session(prepared.to_dict(), self._key)
            try:
                paths.ensure_private_dir(target.parent)
                st = write_atomically(target, data)
                fsync_dir(target.parent)
            except OSError as exc:
                raise _write_error(exc, target, f"write checkpoint {label!r}") from exc
            self._remember(target, st, prepared)
        logger.info("Saved checkpoint %s of %s", label, sdir.name)
        return target

    def checkpoints(self, name: str) -> builtins.list[CheckpointInfo]:
        """Named checkpoints of a session, newest first."""
        sdir = self._existing_dir(name)
        infos: builtins.list[CheckpointInfo] = []
        for path in self._scan_checkpoints(sdir):
            label = path.name[: -len(GENERATION_SUFFIX)]
            try:
                st = path.stat()
                meta = self._meta_for(path, sdir)
            except FileNotFoundError:
                continue
            except (FileFormatError, OSError, LookupError) as exc:
                problem = self._problem(path, exc, sdir, quarantine=False)
                size, mtime = 0, 0.0
                with contextlib.suppress(OSError):
                    st = path.stat()
                    size, mtime = st.st_size, st.st_mtime
                infos.append(CheckpointInfo(label, path, size, mtime, problem=problem))
                continue
            infos.append(
                CheckpointInfo(
                    label=label,
                    path=path,
                    size=st.st_size,
                    mtime=st.st_mtime,
                    time=meta.updated,
                    cells=meta.cells,
                    variables=meta.variables,
                )
            )
        infos.sort(key=lambda info: info.mtime, reverse=True)
        return infos

    # -- deleting ---------------------------------------------------------------------------------

    def delete(self, name: str) -> Path:
        """Delete a whole session (generations, blobs, checkpoints); returns its former directory.

        The directory is first renamed away under the lock, so readers see the whole session or
        nothing; then it is removed.
        """
        sdir = self._existing_dir(name)
        trash = self.sessions_dir / f"{_TRASH_PREFIX}{sdir.name}-{secrets.token_hex(4)}"
        with self._locked(sdir, create=False):
            try:
                sdir.replace(trash)
            except OSError as exc:
                raise _write_error(exc, sdir, f"delete session {name!r}") from exc
            # Waiters on the old lock file see it unlinked and start over on a fresh directory.
            with contextlib.suppress(OSError):
                (trash / LOCK_FILE).unlink()
        self._forget_dir(sdir)
        shutil.rmtree(trash, ignore_errors=True)
        if trash.exists():
            logger.warning("Could not remove all of %s; `ipysession doctor --repair` will", trash)
        logger.info("Deleted session %s", sdir.name)
        return sdir

    # -- doctor -----------------------------------------------------------------------------------

    def inspect(self, path: Path) -> FileProblem | None:
        """Check one file fully (authentication, validation, blob id); ``None`` if it is good.

        Nothing is moved: this is what ``ipysession doctor`` reports.
        """
        self._check_open()
        path = Path(path)
        try:
            data = _read_file(path, self.max_file_bytes)[1]
            header = fileformat.read_header(data, path=path)
            if header.is_blob:
                value = fileformat.decode_blob(data, self._key, path=path)
                blob_id = path.name.removesuffix(BLOB_SUFFIX)
                if not self._blob_id_matches(value, blob_id, header):
                    msg = "Blob content does not match its name: it was swapped or renamed"
                    raise CorruptFile(msg, path=path)
            else:
                sdir: Path | None = path.parent
                if path.parent.name == CHECKPOINTS_DIR:
                    sdir = path.parent.parent
                if sdir is not None and sdir.parent != self.sessions_dir:
                    sdir = None  # not in the store (an export file): no directory to match
                self._decode(data, path, sdir)
        except (FileFormatError, OSError, LookupError) as exc:
            return self._problem(path, exc, path.parent, quarantine=False)
        return None

    def repair(self, *, grace: float | None = None) -> RepairReport:
        """``ipysession doctor --repair``: check every file of every session.

        Files failing authentication or validation are quarantined; files under another key or
        from a newer release are reported and left; temp files and unreferenced blobs older than
        ``grace`` seconds (default: the store's ``gc_grace``) are removed, as are leftovers of
        interrupted deletes. A session another process is writing is skipped and reported.
        """
        self._check_open()
        grace = self.gc_grace if grace is None else grace
        report = RepairReport()
        with contextlib.suppress(OSError), os.scandir(self.sessions_dir) as entries:
            for entry in entries:
                if entry.name.startswith(_TRASH_PREFIX) and entry.is_dir(follow_symlinks=False):
                    shutil.rmtree(entry.path, ignore_errors=True)
                    report.temp_files_removed.append(Path(entry.path))
        for sdir in self._session_dirs():
            try:
                with self._locked(sdir, create=False):
                    self._repair_session(sdir, grace, report)
            except (LockTimeout, StoreWriteError, SessionNotFound) as exc:
                report.sessions_skipped.append((sdir, str(exc)))
        return report

    def _repair_session(self, sdir: Path, grace: float, report: RepairReport) -> None:
        now = time.time()
        for folder in (sdir, sdir / BLOBS_DIR, sdir / CHECKPOINTS_DIR):
            with contextlib.suppress(OSError), os.scandir(folder) as entries:
                for entry in entries:
                    if not entry.name.startswith(TEMP_PREFIX):
                        continue
                    with contextlib.suppress(OSError):
                        if now - entry.stat(follow_symlinks=False).st_mtime >= grace:
                            Path(entry.path).unlink()
                            report.temp_files_removed.append(Path(entry.path))
        self._forget_dir(sdir)  # check every file afresh
        files = [path for _, path in self._scan_generations(sdir)]
        files += self._scan_checkpoints(sdir)
        files += [Path(e.path) for e in self._scan_blobs(sdir)]
        for path in files:
            report.files_checked += 1
            problem = self.inspect(path)
            if problem is None:
                continue
            if problem.kind == "corrupt":
                moved = self._quarantine(path, sdir)
                report.quarantined.append(dataclasses.replace(problem, quarantined_to=moved))
            else:
                report.left_in_place.append(problem)
        report.blobs_removed += self._collect_blobs(sdir, grace=grace)

    # -- rekey ------------------------------------------------------------------------------------

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
        either = _EitherKey(new=new_key, old=self._key)
        report = RekeyReport()
        for sdir in self._session_dirs():
            try:
                with self._locked(sdir, create=False):
                    self._rekey_session(sdir, new_key, either, report)
            except SessionNotFound:
                continue
            report.sessions += 1
        self._key = new_key
        with self._mutex:
            self._meta.clear()
            self._verified_blobs.clear()
        logger.info(
            "Re-encrypted %d sessions (%d files, %d blobs, %d problems)",
            report.sessions,
            report.files_rewritten,
            report.blobs_rewritten,
            len(report.problems),
        )
        return report

    def _rekey_session(
        self, sdir: Path, new_key: SealingKey, either: _EitherKey, report: RekeyReport
    ) -> None:
        blobs_dir = sdir / BLOBS_DIR
        new_key_id = new_key.for_writing()[2]
        mapping: dict[str, str] = {}
        for entry in self._scan_blobs(sdir):
            path = Path(entry.path)
            old_id = entry.name[: -len(BLOB_SUFFIX)]
            try:
                _, header, value = _read_blob_file(path, either, self.max_file_bytes)
                if not (
                    new_key.content_id(value) == old_id
                    or self._blob_id_matches(value, old_id, header)
                ):
                    msg = "Blob content does not match its name: it was swapped or renamed"
                    raise CorruptFile(msg, path=path)
            except (FileFormatError, OSError) as exc:
                report.problems.append(self._problem(path, exc, sdir, quarantine=True))
                continue
            new_id = new_key.content_id(value)
            mapping[old_id] = new_id
            if new_id == old_id and header.key_id == new_key_id:
                continue  # done by an earlier, interrupted rekey
            target = blobs_dir / f"{new_id}{BLOB_SUFFIX}"
            try:
                self._write_blob(target, value, new_key)
            except OSError as exc:
                raise _write_error(exc, target, "re-encrypt a stored value") from exc
            report.blobs_rewritten += 1
        try:
            if mapping:
                fsync_dir(blobs_dir)
        except OSError as exc:
            raise _write_error(exc, blobs_dir, "flush the blob directory") from exc
        files = [path for _, path in self._scan_generations(sdir)]
        files += self._scan_checkpoints(sdir)
        # Old blobs go only if every file that may refer to them now refers to the new ones.
        old_blobs_unused = True
        for path in files:
            try:
                data = _read_file(path, self.max_file_bytes)[1]
                session = self._decode(data, path, sdir, key=either)
            except (FileFormatError, OSError, LookupError) as exc:
                problem = self._problem(path, exc, sdir, quarantine=True)
                report.problems.append(problem)
                old_blobs_unused &= problem.kind == "corrupt"
                continue
            variables = {
                var_name: (
                    dataclasses.replace(record, blob=mapping[record.blob])
                    if record.blob is not None and record.blob in mapping
                    else record
                )
                for var_name, record in session.variables.items()
            }
            session = dataclasses.replace(session, variables=variables)
            try:
                write_atomically(path, fileformat.encode_session(session.to_dict(), new_key))
            except OSError as exc:
                raise _write_error(exc, path, "re-encrypt a session file") from exc
            report.files_rewritten += 1
        try:
            fsync_dir(sdir)
            if (sdir / CHECKPOINTS_DIR).is_dir():
                fsync_dir(sdir / CHECKPOINTS_DIR)
        except OSError as exc:
            raise _write_error(exc, sdir, "flush the session directory") from exc
        if not old_blobs_unused:
            logger.warning(
                "Keeping the old blobs of %s: some files could not be re-encrypted", sdir
            )
            return
        for old_id, new_id in mapping.items():
            if old_id != new_id:
                with contextlib.suppress(FileNotFoundError):
                    (blobs_dir / f"{old_id}{BLOB_SUFFIX}").unlink()
