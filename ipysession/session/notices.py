"""Notices: what the manager and its parts have to tell the user, kept until someone shows them.

Any thread may add one (the writer, the reconnector, the lease heartbeat); nothing here prints.
:meth:`Notices.take` hands the new ones to the extension, which shows them where the user asked
(see :mod:`ipysession.extension`); :meth:`Notices.recent` keeps the newest with their time for
``%session status``; each is also logged.
"""

from __future__ import annotations

import collections
import logging
import threading
import time

__all__ = ["Notices"]

log = logging.getLogger("ipysession")


class Notices:
    """A thread-safe queue of notices plus the newest ``keep`` of them, with their time."""

    def __init__(self, keep: int = 20) -> None:
        self._lock = threading.Lock()
        self._new: list[str] = []
        self._recent: collections.deque[tuple[float, str]] = collections.deque(maxlen=keep)

    def add(self, message: str) -> None:
        log.info("%s", message)
        with self._lock:
            self._new.append(message)
            self._recent.append((time.time(), message))

    def take(self) -> list[str]:
        """The notices added since the last call, oldest first."""
        with self._lock:
            taken, self._new = self._new, []
        return taken

    def recent(self) -> list[tuple[float, str]]:
        """The newest notices (time, text), oldest first, whether or not they were taken."""
        with self._lock:
            return list(self._recent)
