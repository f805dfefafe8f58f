"""Notices: what the manager and its parts have to tell the user, kept until someone shows them.

Any thread may add one (the writer, the reconnector, the lease heartbeat); nothing here prints.
Each notice has a :class:`NoticeKind`, given where it is made: each part of the manager gets a
``notify`` for its own kind (:meth:`Notices.sink`), so the JupyterLab extension can tell a key
problem from a connection change without reading the words. :meth:`Notices.take` hands the new
ones to the extension, which shows them where the user asked (see :mod:`ipysession.extension`);
:meth:`Notices.recent` keeps the newest with their time for ``%session status``; each is also
logged.
"""

from __future__ import annotations

import collections
import enum
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["NoticeKind", "Notices", "RaisedNotice"]

log = logging.getLogger("ipysession")


class NoticeKind(str, enum.Enum):
    """What a notice is about: the JupyterLab extension's notification ``kind``."""

    #: The restore summary, or a value that could not be restored.
    RESTORE = "restore"
    #: A connection that changed state (connected, lost, reconnecting, gave up).
    CONNECTION = "connection"
    #: The key: created, unreadable, changed by a rekey.
    KEY = "key"
    #: The session's files: deleted or renamed from outside, quarantined.
    FILE = "file"
    #: Another kernel holds the session: fork, read-only, takeover.
    CONFLICT = "conflict"
    #: A save: failed, or working again.
    SAVE = "save"
    #: Anything else (capture stopped after repeated errors...).
    OTHER = "other"

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class RaisedNotice:
    """One notice: its words and what it is about."""

    text: str
    kind: NoticeKind = NoticeKind.OTHER


class Notices:
    """A thread-safe queue of notices plus the newest ``keep`` of them, with their time."""

    def __init__(self, keep: int = 20) -> None:
        self._lock = threading.Lock()
        self._new: list[RaisedNotice] = []
        self._recent: collections.deque[tuple[float, str]] = collections.deque(maxlen=keep)
        #: When set, each notice goes to it (any thread) instead of waiting for :meth:`take`:
        #: the JupyterLab extension shows it as a notification. It returns False when it could
        #: not deliver it, and the notice is kept for :meth:`take` as before.
        self.listener: Callable[[RaisedNotice], bool] | None = None

    def add(self, message: str, kind: NoticeKind = NoticeKind.OTHER) -> None:
        log.info("%s", message)
        notice = RaisedNotice(message, kind)
        with self._lock:
            self._recent.append((time.time(), message))
        listener = self.listener
        delivered = False
        if listener is not None:
            try:
                delivered = listener(notice)
            except Exception:
                log.warning("The notice listener failed", exc_info=True)
        if not delivered:
            with self._lock:
                self._new.append(notice)

    def sink(self, kind: NoticeKind) -> Callable[[str], None]:
        """A ``notify`` for one part of the manager: each notice it adds is of ``kind``."""

        def notify(message: str) -> None:
            self.add(message, kind)

        return notify

    def take(self) -> list[RaisedNotice]:
        """The notices added since the last call, oldest first."""
        with self._lock:
            taken, self._new = self._new, []
        return taken

    def recent(self) -> list[tuple[float, str]]:
        """The newest notices (time, text), oldest first, whether or not they were taken."""
        with self._lock:
            return list(self._recent)
