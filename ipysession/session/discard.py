"""When this kernel stops saving a session: it was deleted, here or from outside, or discarded.

A kernel saves its session between cells and at shutdown; without this module a delete was
undone by the next save (``%session delete`` of the kernel's own session), or worse, a kernel
kept writing generations into a re-created directory whose blobs were gone (``ipysession
delete --force`` under a running kernel). The rule here: once a session this kernel wrote to or
restored from is deleted, this kernel never writes it again on its own. Only an explicit
``%session save`` (the user asks for it) saves it again, and turns autosave of it back on.

:class:`SaveGuard` keeps that rule. It knows session *directories* (so a fork and its original
are told apart), and needs neither the key nor IPython:

* :meth:`SaveGuard.saw` -- this kernel wrote to or restored from this directory;
* :meth:`SaveGuard.allows` -- called before every autosave, heartbeat and final save, and at the
  start of every cell: a directory this kernel saw that is gone now was deleted from outside, so
  the guard stops saving it and queues a notice (shown under the next ``%session`` command and
  in ``%session status``, see :mod:`ipysession.extension`);
* :meth:`SaveGuard.stop` -- ``%session delete`` of this kernel's session, ``%session discard``;
* :meth:`SaveGuard.resume` -- ``%session save``.

A directory that vanishes between :meth:`allows` and the write that follows it (microseconds)
is re-created by that one write; ``ipysession delete`` refuses a session a live kernel holds
unless ``--force``, so only a forced delete can meet that window, and the kernel's next check
still stops every later write.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path

from ipysession.errors import SessionInUse
from ipysession.session import lease as lease_mod
from ipysession.session.lease import LeaseHolder

__all__ = ["DEFAULT_LEASE_TIMEOUT", "SaveGuard", "in_use_error", "live_holder"]

log = logging.getLogger("ipysession")

#: ``SessionManager.lease_timeout``'s default, for the command line (which reads no traits).
DEFAULT_LEASE_TIMEOUT = 120.0


class SaveGuard:
    """Which session directories this kernel saw, and which it no longer saves (any thread)."""

    def __init__(self, session_dir: Callable[[str], Path], notify: Callable[[str], None]) -> None:
        self._session_dir = session_dir
        self._notify = notify
        self._lock = threading.Lock()
        self._seen: set[Path] = set()
        # Directory -> why this kernel no longer saves it.
        self._stopped: dict[Path, str] = {}

    def saw(self, name: str) -> None:
        """This kernel wrote session ``name`` or restored it: it exists on disk now."""
        with self._lock:
            self._seen.add(self._session_dir(name))

    def stopped(self, name: str) -> str | None:
        """Why this kernel no longer saves ``name`` (no disk access), or ``None``."""
        with self._lock:
            return self._stopped.get(self._session_dir(name))

    def allows(self, name: str) -> bool:
        """Whether this kernel may save ``name`` on its own (autosave, heartbeat, shutdown).

        A directory this kernel saw that is gone now was deleted from outside: from here on it
        is not saved again, and the user is told once."""
        sdir = self._session_dir(name)
        with self._lock:
            if sdir in self._stopped:
                return False
            if sdir not in self._seen or sdir.is_dir():
                return True
            why = (
                "it was deleted or renamed from outside this kernel "
                "(`ipysession delete` or `ipysession rename --force`)"
            )
            self._stopped[sdir] = why
            self._seen.discard(sdir)
        log.warning("Session %r was deleted or renamed under this kernel; it stops saving it", name)
        self._notify(
            f"ipysession: session '{name}' was deleted or renamed from outside this kernel, so "
            "this kernel no longer saves it: not between cells, not at shutdown, and the next "
            "kernel for this notebook starts without it (`ipysession list` shows where a renamed "
            "one went). Your variables here are unaffected. `%session save` saves them again "
            "under this name (and turns autosave of it back on)."
        )
        return False

    def stop(self, name: str, why: str) -> None:
        """Never save ``name`` on its own again (``%session delete``, ``%session discard``)."""
        sdir = self._session_dir(name)
        with self._lock:
            self._stopped[sdir] = why
            self._seen.discard(sdir)

    def resume(self, name: str) -> bool:
        """Save ``name`` again (an explicit ``%session save``); True if it had been stopped."""
        with self._lock:
            return self._stopped.pop(self._session_dir(name), None) is not None


def live_holder(root: Path, name: str, *, timeout: float) -> LeaseHolder | None:
    """The live kernel that holds session ``name`` now, or ``None`` (free, stale, or this process).

    Used before deleting a session from outside its kernel: a lease whose process is gone, or
    whose heartbeat is older than ``timeout`` seconds, holds nothing."""
    current = lease_mod.holder(lease_mod.RootDirs(root), name)
    if current is None:
        return None
    me = LeaseHolder.this_process(started=time.time())
    if current.host == me.host and current.pid == me.pid:
        return None  # this very process (the magic deletes its own session through the manager)
    if lease_mod.stale_reason(current, me, timeout=timeout) is not None:
        return None
    return current


def in_use_error(name: str, holder: str, *, magic: bool) -> SessionInUse:
    """Refusing to delete session ``name`` while ``holder`` (a live kernel) saves to it."""
    force = "`%session delete NAME --force`" if magic else "`ipysession delete NAME --force`"
    msg = f"Session '{name}' is in use by {holder}; nothing was deleted"
    return SessionInUse(
        msg,
        hint=(
            f"Stop that kernel first, or run `%session discard` in it; {force} deletes it "
            "anyway, and that kernel then stops saving it (its variables stay in memory)"
        ),
    )
