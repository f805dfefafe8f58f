"""The files of one store root under one key: where a session's files are, decoding and checking
one, the remembered summary of each, quarantine, and a session's write lock.

This is the store's shared ground, as diskcache's ``Disk`` is its ``Cache``'s: the read/write path
(:mod:`~ipysession.store.session_store`), blobs (:mod:`~ipysession.store.blobs`), retention,
summaries and maintenance all work through one :class:`Disk`, which decides nothing about which
generation to read, keep or repair. Nothing here unpickles: a session leaves as a validated
:class:`~ipysession.model.Session` holding bytes.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import secrets
import shutil
import threading
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

import filelock

from ipysession import paths, safe_open
from ipysession.errors import (
    CorruptFile,
    FileProblem,
    LockTimeout,
    ModelError,
    ProblemKind,
    SessionError,
    SessionNotFound,
    StoreWriteError,
    SubstitutedFile,
    UnsafeFile,
)
from ipysession.keys.crypto import SealingKey
from ipysession.model import Session
from ipysession.store import fileformat
from ipysession.store.files import read_file, stat_key, too_large_for_memory, write_error
from ipysession.store.meta import FileMeta, digest_of
from ipysession.store.names import (
    CHECKPOINTS_DIR,
    GENERATION_SUFFIX,
    LOCK_FILE,
    QUARANTINE_DIR,
    SESSIONS_DIR,
    TRASH_PREFIX,
    session_dir_for,
    slug_for,
)
from ipysession.store.scan import SLUG_RE, generation_number, scan_session_dirs

__all__ = ["BlobStamp", "Disk"]

logger = logging.getLogger("ipysession")

_SUBSTITUTED_HINT = (
    "The genuine files are read instead. If you did not put it there, someone who can write to "
    "the session directory did"
)

#: Device, inode and size of a blob file: a blob is touched when reused, so its times change,
#: but every write of a blob is a new inode moved into place (see ``files.blob_key``).
BlobStamp = tuple[int, int, int]


class Disk:
    """The files under ``root``, sealed with ``key``; safe to share between threads.

    ``lock_timeout`` bounds the wait for another writer's lock; a file larger than
    ``max_file_bytes`` is never read, and a session document is never inflated beyond
    ``max_document_bytes``.
    """

    def __init__(
        self,
        root: Path,
        *,
        key: SealingKey,
        lock_timeout: float,
        max_file_bytes: int,
        max_document_bytes: int = fileformat.DEFAULT_MAX_DOCUMENT_BYTES,
    ) -> None:
        self.root = root
        #: Replaced only by :meth:`use_key` (``rekey``), which also forgets what was decoded.
        self.key = key
        self.lock_timeout = lock_timeout
        self.max_file_bytes = max_file_bytes
        self.max_document_bytes = max_document_bytes
        self._mutex = threading.Lock()
        self._meta: dict[Path, FileMeta] = {}
        self._verified_blobs: dict[Path, BlobStamp] = {}

    # -- where things are -------------------------------------------------------------------------

    @property
    def sessions_dir(self) -> Path:
        return self.root / SESSIONS_DIR

    @property
    def quarantine_dir(self) -> Path:
        return self.root / QUARANTINE_DIR

    def session_dir(self, name: str) -> Path:
        """Where the session called ``name`` lives (whether or not it exists)."""
        return session_dir_for(self.root, name)

    def find_dir(self, name: str) -> Path | None:
        """The directory of ``name``; a slug (as ``list`` shows it) is accepted too.

        A symbolic link as the session directory (or as ``sessions/``) is refused with an
        :class:`~ipysession.errors.UnsafeFile`, never followed out of the store.
        """
        primary = self.session_dir(name)
        if safe_open.check_directory(primary, root=self.root):
            return primary
        if SLUG_RE.fullmatch(name):
            by_slug = self.sessions_dir / name
            if safe_open.check_directory(by_slug, root=self.root):
                return by_slug
        return None

    def existing_dir(self, name: str) -> Path:
        found = self.find_dir(name)
        if found is None:
            msg = f"No session named {name!r}"
            raise SessionNotFound(
                msg,
                path=self.session_dir(name),
                hint="Run `ipysession list` to see the saved sessions",
            )
        return found

    def session_dirs(self) -> list[Path]:
        return scan_session_dirs(self.sessions_dir)

    def ensure_dir(self, path: Path) -> Path:
        """Create ``path`` below the root (each level 0700), refusing a link on the way."""
        return safe_open.ensure_directory(path, root=self.root)

    def ensure_session_dirs(self, sdir: Path) -> None:
        if not self.root.exists():
            paths.ensure_private_dir(self.root)
        safe_open.ensure_directory(sdir, root=self.root)

    # -- decoding and remembering -----------------------------------------------------------------

    def decode(
        self, data: bytes, path: Path, sdir: Path | None, key: SealingKey | None = None
    ) -> Session:
        """Authenticate, decrypt, migrate and validate one ``.ipys`` file.

        Raises :class:`FileFormatError` (a model error after authentication is a corrupt file).
        With ``sdir``, the file must belong where it is (see :meth:`opened`).
        """
        return self.session_of(self.opened(data, path, sdir, key), path)

    def opened(
        self, data: bytes, path: Path, sdir: Path | None, key: SealingKey | None = None
    ) -> fileformat.Decoded:
        """The authenticated document of one ``.ipys`` file, checked against its place.

        With ``sdir``, the session's name must belong in that directory, and a file of format 2
        or later must say it is the generation or checkpoint its name says: an authentic file
        of another session, or an older generation copied or renamed over this one, raises
        :class:`SubstitutedFile`. A version 1 file says nothing, so only its name is checked.
        """
        decoded = fileformat.open_session(
            data, key if key is not None else self.key, path=path, limit=self.max_document_bytes
        )
        if sdir is None:
            return decoded
        name = decoded.doc.get("name")
        if isinstance(name, str) and name and slug_for(name) != sdir.name:
            msg = (
                f"File holds session {name!r}, which does not belong in directory "
                f"{sdir.name!r}: it was moved or copied here"
            )
            raise SubstitutedFile(msg, path=path, hint=_SUBSTITUTED_HINT)
        expected = self.place(path, sdir)
        if decoded.binding is not None and expected is not None and decoded.binding != expected:
            msg = (
                f"File holds {decoded.binding.describe()} of this session, not "
                f"{expected.describe()}: another file was copied or renamed over it (a rollback "
                "or a substitution)"
            )
            raise SubstitutedFile(msg, path=path, hint=_SUBSTITUTED_HINT)
        return decoded

    @staticmethod
    def place(path: Path, sdir: Path) -> fileformat.Binding | None:
        """Where ``path`` is in session directory ``sdir``: a generation, a checkpoint, or
        ``None`` for any other name (nothing to check a file's binding against)."""
        if path.parent == sdir:
            number = generation_number(path.name)
            return None if number is None else fileformat.Binding(generation=number)
        if path.parent == sdir / CHECKPOINTS_DIR and path.name.endswith(GENERATION_SUFFIX):
            return fileformat.Binding(checkpoint=path.name.removesuffix(GENERATION_SUFFIX))
        return None

    @staticmethod
    def session_of(decoded: fileformat.Decoded, path: Path) -> Session:
        """The session an authenticated document holds (a model error: a corrupt file)."""
        doc = dict(decoded.doc)
        doc.pop("format", None)
        try:
            return Session.from_dict(doc)
        except ModelError as exc:
            msg = f"File is authentic but does not hold a valid session: {exc.what}"
            raise CorruptFile(msg, path=path) from None

    def load(self, path: Path, sdir: Path) -> tuple[Session, FileMeta]:
        """Read and decode one generation or checkpoint; also returns (and remembers) its
        summary, whose digest and binding the head record is checked against."""
        st, data = read_file(path, self.max_file_bytes, root=self.root)
        try:
            decoded = self.opened(data, path, sdir)
            session = self.session_of(decoded, path)
        except MemoryError:
            raise too_large_for_memory(path, st.st_size) from None
        meta = self.remember(path, st, session, data=data, bound=decoded.binding is not None)
        return session, meta

    def remember(
        self, path: Path, st: os.stat_result, session: Session, *, data: bytes, bound: bool
    ) -> FileMeta:
        """Remember the summary of ``path``, whose bytes are ``data``."""
        meta = FileMeta.of(session, st, digest=digest_of(data), bound=bound)
        with self._mutex:
            self._meta[path] = meta
        return meta

    def meta_for(self, path: Path, sdir: Path) -> FileMeta:
        """The summary of a generation or checkpoint, decoding it only if not remembered.

        Only the summary fields are read (see :meth:`FileMeta.from_doc`): no session is built.
        The file must belong where it is, as for :meth:`opened`.
        """
        st = path.stat()
        with self._mutex:
            cached = self._meta.get(path)
        if cached is not None and cached.stat_key == stat_key(st):
            return cached
        st, data = read_file(path, self.max_file_bytes, root=self.root)
        try:
            decoded = self.opened(data, path, sdir)
        except MemoryError:
            raise too_large_for_memory(path, st.st_size) from None
        meta = FileMeta.from_doc(
            decoded.doc, st, path, digest=digest_of(data), bound=decoded.binding is not None
        )
        if slug_for(meta.name) != sdir.name:
            msg = f"File holds session {meta.name!r}, which does not belong in {sdir.name!r}"
            raise SubstitutedFile(msg, path=path, hint=_SUBSTITUTED_HINT)
        with self._mutex:
            self._meta[path] = meta
        return meta

    def blob_verified(self, path: Path, stamp: BlobStamp) -> bool:
        """True if this blob file, unchanged since, was checked against its name already."""
        with self._mutex:
            return self._verified_blobs.get(path) == stamp

    def mark_blob_verified(self, path: Path, stamp: BlobStamp) -> None:
        with self._mutex:
            self._verified_blobs[path] = stamp

    def forget(self, path: Path) -> None:
        with self._mutex:
            self._meta.pop(path, None)
            self._verified_blobs.pop(path, None)

    def forget_dir(self, sdir: Path) -> None:
        with self._mutex:
            for cache in (self._meta, self._verified_blobs):
                for path in [p for p in cache if p.is_relative_to(sdir)]:
                    del cache[path]

    def forget_all(self) -> None:
        with self._mutex:
            self._meta.clear()
            self._verified_blobs.clear()

    def use_key(self, key: SealingKey) -> None:
        """Seal with ``key`` from now on; what was decoded under the old one is forgotten."""
        self.key = key
        self.forget_all()

    # -- files that cannot be used ----------------------------------------------------------------

    def quarantine(self, path: Path, sdir: Path) -> Path | None:
        """Move ``path`` to ``<root>/quarantine/<slug>/...`` with a timestamp; never deletes."""
        try:
            relative = path.relative_to(sdir)
        except ValueError:
            relative = Path(path.name)
        stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S.%fZ")
        try:
            # Each level 0700, and never through a link: a planted ``quarantine`` link would
            # move the user's files out of the store.
            target_dir = safe_open.ensure_directory(
                self.quarantine_dir.joinpath(sdir.name, *relative.parent.parts), root=self.root
            )
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
        self.forget(path)
        logger.warning("Moved unreadable file %s to quarantine as %s", path, target)
        return target

    def problem(
        self, path: Path, exc: BaseException, sdir: Path, *, quarantine: bool
    ) -> FileProblem:
        """What ``exc`` says about ``path``; a corrupt file is quarantined if ``quarantine``."""
        kind = ProblemKind.of(exc)
        corrupt = kind is ProblemKind.CORRUPT
        moved = self.quarantine(path, sdir) if corrupt and quarantine else None
        message = str(exc)
        if isinstance(exc, OSError) and not isinstance(exc, SessionError):
            message = f"Cannot read {path}: {exc.strerror or exc}"
        if not corrupt:
            logger.info("Skipping %s (%s)", path, kind)
        return FileProblem(path=path, kind=kind, message=message, quarantined_to=moved)

    # -- removing a session ------------------------------------------------------------------------

    def move_aside(self, sdir: Path, what: str) -> Path:
        """Rename ``sdir`` to a trash name, so readers see the whole session or nothing; the
        caller holds its lock. ``remove_aside`` then removes it (``delete``, ``rename``)."""
        trash = self.sessions_dir / f"{TRASH_PREFIX}{sdir.name}-{secrets.token_hex(4)}"
        try:
            sdir.replace(trash)
        except OSError as exc:
            raise write_error(exc, sdir, what) from exc
        # Waiters on the old lock file see it unlinked and start over on a fresh directory.
        with contextlib.suppress(OSError):
            (trash / LOCK_FILE).unlink()
        self.forget_dir(sdir)
        return trash

    @staticmethod
    def remove_aside(trash: Path) -> None:
        shutil.rmtree(trash, ignore_errors=True)
        if trash.exists():
            logger.warning("Could not remove all of %s; `ipysession doctor --repair` will", trash)

    # -- the write lock ---------------------------------------------------------------------------

    @contextlib.contextmanager
    def locked(self, sdir: Path, *, create: bool) -> Iterator[None]:
        """Hold the session's write lock; re-creates the directory if it vanished meanwhile."""
        lock_path = sdir / LOCK_FILE
        for _attempt in range(5):
            if create:
                try:
                    self.ensure_session_dirs(sdir)
                except UnsafeFile:
                    raise  # a planted link or file: its own message says what to do
                except OSError as exc:
                    raise write_error(exc, sdir, "create the session directory") from exc
            elif not safe_open.check_directory(sdir, root=self.root):
                msg = f"Session directory {sdir.name!r} no longer exists"
                raise SessionNotFound(msg, path=sdir)
            lock = filelock.FileLock(
                lock_path, timeout=self.lock_timeout, mode=paths.PRIVATE_FILE_MODE
            )
            try:
                # Inside the try: looking at the lock file can fail too (no permission on the
                # directory), and that failure deserves the same wording as the lock's own.
                safe_open.refuse_special(lock_path)  # filelock would truncate a link's target
                lock.acquire()
            except UnsafeFile:
                raise  # a planted link or file: its own message says what to do
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
                raise write_error(exc, lock_path, "lock the session") from exc
            except NotImplementedError as exc:  # filelock: this filesystem has no flock at all
                no_locks = OSError(errno.ENOLCK, f"file locks are not supported ({exc})")
                raise write_error(no_locks, lock_path, "lock the session") from exc
            try:
                if lock_path.exists():
                    yield
                    return
            finally:
                lock.release()
        msg = "The session directory keeps disappearing while locking it"
        raise StoreWriteError(msg, path=sdir, hint="Is another process deleting it? Try again")
