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
from collections.abc import Callable

__all__ = ["Notices"]

log = logging.getLogger("ipysession")


class Notices:
    """A thread-safe queue of notices plus the newest ``keep`` of them, with their time."""

    def __init__(self, keep: int = 20) -> None:
        self._lock = threading.Lock()
        self._new: list[str] = []
        self._recent: collections.deque[tuple[float, str]] = collections.deque(maxlen=keep)
        #: When set, each notice goes to it (any thread) instead of waiting for :meth:`take`:
        #: the JupyterLab extension shows it as a notification. It returns False when it could
        #: not deliver it, and the notice is kept for :meth:`take` as before.
        self.listener: Callable[[str], bool] | None = None

    def add(self, message: str) -> None:
        log.info("%s", message)
        with self._lock:
            self._recent.append((time.time(), message))
        listener = self.listener
        delivered = False
        if listener is not None:
            try:
                delivered = listener(message)
            except Exception:
                log.warning("The notice listener failed", exc_info=True)
        if not delivered:
            with self._lock:
                self._new.append(message)

    def take(self) -> list[str]:
        """The notices added since the last call, oldest first."""
        with self._lock:
            taken, self._new = self._new, []
        return taken

    def recent(self) -> list[tuple[float, str]]:
        """The newest notices (time, text), oldest first, whether or not they were taken."""
        with self._lock:
            return list(self._recent)
