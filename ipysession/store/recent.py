"""The user-wide list of recent connections: the last 20, sealed like a session file.

A notebook's connections live in its session; this list is what a *new* notebook can reuse
(``%session connect db`` finds ``db`` here when its own session has no such record). It is one
file, ``<root>/recent-connections.ipys``, holding a session document whose ``connections`` are
the records (secrets included, so the file is sealed with the user's key like every session
file, and never shown unredacted), most recently used first, at most :data:`LIMIT`. Failed
connects are recorded too, with their error (already redacted by the record).

Writes are read-modify-write under a file lock (``recent-connections.lock``), atomic (temp file,
fsync, rename). ``ipysession rekey`` re-seals the list under the new key (:meth:`reseal`, under
the same lock; the old file stays readable until the new one replaces it), and a kernel that
follows the rekey reads it with either key. A list that still cannot be read -- damaged, or
sealed with a key that is gone -- counts as empty and is replaced at the next write; it is a
convenience, never the only copy of a session's records.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import filelock

from ipysession import paths, safe_open
from ipysession.atomic import write_atomically
from ipysession.errors import FileFormatError, LockTimeout, ModelError, UnsafeFile
from ipysession.keys.crypto import SealingKey
from ipysession.model import ConnectionRecord, Session
from ipysession.store import fileformat
from ipysession.store.files import read_file

__all__ = ["LIMIT", "RECENT_FILE", "RecentConnections"]

log = logging.getLogger("ipysession")

#: How many records the list keeps.
LIMIT = 20
RECENT_FILE = "recent-connections.ipys"
_LOCK_FILE = "recent-connections.lock"
_NAME = "(recent connections)"
_MAX_BYTES = 4 * 1024 * 1024


class RecentConnections:
    """The recent-connections list under ``root``, sealed with ``key``; ``read_key``, when
    given, reads it instead (a key that also knows the keys a rekey replaced)."""

    def __init__(
        self,
        root: Path,
        key: SealingKey,
        *,
        lock_timeout: float = 10.0,
        read_key: SealingKey | None = None,
    ) -> None:
        self.root = Path(root)
        self.key = key
        self.read_key = read_key if read_key is not None else key
        self.lock_timeout = lock_timeout

    @property
    def path(self) -> Path:
        return self.root / RECENT_FILE

    def records(self) -> list[ConnectionRecord]:
        """The records, most recently used (or tried) first; empty if there is no readable list."""
        try:
            return self._read()
        except (OSError, FileFormatError, ModelError, UnsafeFile) as exc:
            log.warning("The recent-connections list %s is unreadable (%s)", self.path, exc)
            return []

    def get(self, name: str) -> ConnectionRecord | None:
        return next((r for r in self.records() if r.name == name), None)

    def remember(self, record: ConnectionRecord) -> None:
        """Put ``record`` first (replacing one of its name) and keep the newest :data:`LIMIT`."""
        with self._locked():
            kept = [record, *(r for r in self.records() if r.name != record.name)][:LIMIT]
            self._write(kept)

    def reseal(self) -> int:
        """Seal the list again with ``key``, reading it with ``read_key`` (``ipysession rekey``);
        returns how many records it holds, 0 when there is no list.

        Raises what reading raises (:class:`~ipysession.errors.FileFormatError` and the like)
        when the list cannot be read: then it is left as it was."""
        with self._locked():
            if not self.path.exists():
                return 0
            kept = self._read()
            self._write(kept)
            return len(kept)

    def _read(self) -> list[ConnectionRecord]:
        if not self.path.exists():
            return []
        _, data = read_file(self.path, _MAX_BYTES, root=self.root)
        session = Session.from_dict(fileformat.decode_session(data, self.read_key, path=self.path))
        order = session.extra.get("order")
        names = [n for n in order if n in session.connections] if isinstance(order, list) else []
        names += [n for n in session.connections if n not in names]
        return [session.connections[n] for n in names]

    def _write(self, records: list[ConnectionRecord]) -> None:
        """Replace the list with ``records`` atomically (call under :meth:`_locked`)."""
        session = Session(
            name=_NAME,
            updated=time.time(),
            connections={r.name: _copy(r) for r in records},
            extra={"order": [r.name for r in records]},
        )
        data = fileformat.encode_session(session.to_dict(), self.key, path=self.path)
        write_atomically(self.path, data)

    @contextmanager
    def _locked(self) -> Iterator[None]:
        paths.ensure_private_dir(self.root)
        lock_path = self.root / _LOCK_FILE
        safe_open.refuse_special(lock_path)
        lock = filelock.FileLock(lock_path, timeout=self.lock_timeout, mode=paths.PRIVATE_FILE_MODE)
        try:
            lock.acquire()
        except filelock.Timeout:
            msg = (
                f"Another process has held the recent-connections list for {self.lock_timeout:g} s"
            )
            raise LockTimeout(msg, path=lock_path) from None
        try:
            yield
        finally:
            lock.release()


def _copy(record: ConnectionRecord) -> ConnectionRecord:
    return ConnectionRecord.from_dict(record.name, record.to_dict(), f"recent.{record.name}")
