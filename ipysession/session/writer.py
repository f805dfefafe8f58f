"""The autosave writer: a background thread that seals and writes session snapshots.

Capture happens on the main thread between cells and produces an immutable :class:`Session`
snapshot (values are already bytes); only encryption and disk I/O run here, as IPython's
``HistorySavingThread`` does for history. The thread:

* writes at most once per ``interval`` seconds, always the newest snapshot (older pending ones
  are superseded, never queued);
* is woken by :meth:`submit` and by its own deadline, so a pending change is written within one
  interval even when no further cell runs;
* serves synchronous :meth:`flush` calls (``%session save``, shutdown) in order with autosaves,
  so two writes of one session never race inside one process;
* keeps a failed snapshot pending and retries it after the interval, doubling the wait after
  each failure in a row up to 5 minutes (:class:`~ipysession.retry.Backoff`), and
  reports each failure through ``on_error`` (the manager turns that into one user notice);
* calls ``heartbeat`` every ``heartbeat_interval`` seconds while it has nothing to write (the
  manager refreshes the session's lease with it, so an idle kernel's lease stays fresh; a write
  refreshes it too, so the beat restarts after each write);
* never prints; ``stop()`` is safe to call twice and flushes what is pending.

What it calls is the manager's choice: ``write`` is
:meth:`Sharing.write <ipysession.session.sharing.Sharing.write>` (the lease, then the merging
write), whose :class:`~ipysession.store.WriteResult` goes to ``on_written``; ``None`` from
``write`` means nothing was written (a read-only kernel) and calls nothing.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

from ipysession.model import Session

if TYPE_CHECKING:
    from ipysession.store import WriteResult

__all__ = ["AutosaveWriter", "WriteLog", "WriteOutcome"]

log = logging.getLogger("ipysession")

_MAX_RETRY_DELAY = 300.0

_Arg = TypeVar("_Arg")


@dataclass
class WriteOutcome:
    """What happened to one snapshot: the store's result, or the error it raised.

    Neither: nothing was pending, or this kernel is read-only and wrote nothing."""

    result: WriteResult | None = None
    error: BaseException | None = None


class WriteLog:
    """What the writer has done, as ``%session status`` shows it; each run of failures told once.

    A write clears the error. The user hears of the first failure after a success, through
    ``notify`` (never printed from the writer thread); a key that could not be read at restore
    counts as that first failure, since the restore already told the user about the key.
    """

    def __init__(self, notify: Callable[[str], None]) -> None:
        self._notify = notify
        self._told = False
        self.last_save: float | None = None
        self.last_generation: int | None = None
        self.last_error: str | None = None
        #: Called (on the writer thread) after each write and each failed one, once per save:
        #: the JupyterLab extension pushes the new state to the status bar.
        self.on_change: Callable[[], None] | None = None

    def written(self, result: WriteResult) -> None:
        self.last_save = time.time()
        self.last_generation = result.generation
        self.last_error = None
        self._told = False
        self._changed()

    def _changed(self) -> None:
        callback = self.on_change
        if callback is None:
            return
        try:
            callback()
        except Exception:
            log.warning("The save listener failed", exc_info=True)

    def write_failed(self, error: BaseException) -> None:
        self._failed(
            error,
            f"ipysession could not save the session: {error}. Your work is unaffected; "
            "autosave will try again.",
        )

    def key_failed(self, error: BaseException) -> None:
        # Autosave keeps retrying quietly, and saves (merging with what is on disk) once the
        # key is available.
        self._failed(
            error,
            "Meanwhile this kernel works as usual; autosave keeps trying and, once the key "
            "can be read, saves this kernel's work merged with the saved session (nothing "
            "of it is lost). `%session restore` then brings the saved session back.",
        )

    def _failed(self, error: BaseException, notice: str) -> None:
        self.last_error = str(error)
        if not self._told:
            self._told = True
            self._notify(notice)
        self._changed()


class AutosaveWriter:
    def __init__(
        self,
        write: Callable[[Session], WriteResult | None],
        *,
        interval: float,
        on_error: Callable[[BaseException], None] | None = None,
        on_written: Callable[[WriteResult], None] | None = None,
        heartbeat: Callable[[], None] | None = None,
        heartbeat_interval: float = 0.0,
    ) -> None:
        self._write = write
        self._heartbeat = heartbeat
        self.heartbeat_interval = heartbeat_interval
        self.interval = interval
        self._on_error = on_error
        self._on_written = on_written
        self._cond = threading.Condition()
        self._pending: Session | None = None
        self._writing = False
        self._not_before = 0.0
        self._failures = 0
        self._flush_waiters: list[tuple[threading.Event, WriteOutcome]] = []
        self._stopping = False
        # Started (or to start at the first write): see start().
        self._armed = False
        # The outcome of the thread's last write (a flush that found it in flight returns it).
        self._last = WriteOutcome()
        self._thread: threading.Thread | None = None

    # --- called from the main thread ---------------------------------------------------------

    def start(self, *, lazily: bool = False) -> None:
        """Start the thread; ``lazily``: at the first :meth:`submit` or :meth:`flush` instead.

        Lazily when there is nothing to write yet and no lease to keep fresh (a kernel with no
        saved session): its start pays for no thread, and the first change still goes through
        the thread, whose heartbeat then keeps the lease that write takes fresh.
        """
        with self._cond:
            self._armed = True
            if not lazily or self._pending is not None:
                self._start_thread()

    @property
    def armed(self) -> bool:
        """Whether :meth:`start` was called (the thread may not run yet: see ``lazily``)."""
        with self._cond:
            return self._armed

    def _start_thread(self) -> None:
        """Call with ``_cond`` held."""
        if self._armed and self._thread is None and not self._stopping:
            self._thread = threading.Thread(target=self._run, name="ipysession-writer", daemon=True)
            self._thread.start()

    @property
    def pending(self) -> bool:
        """Whether a change is not on disk yet: waiting for the interval, or being written."""
        with self._cond:
            return self._pending is not None or self._writing

    def submit(self, session: Session) -> None:
        """Queue ``session`` for writing, replacing any snapshot not yet written."""
        with self._cond:
            self._pending = session
            self._start_thread()
            self._cond.notify_all()

    def flush(
        self, session: Session | None = None, *, timeout: float | None = 30.0
    ) -> WriteOutcome:
        """Write ``session`` (or what is pending) now, ignoring the interval, and wait."""
        waiter = (threading.Event(), WriteOutcome())
        with self._cond:
            if session is not None:
                self._pending = session
            if self._pending is None:
                if not self._writing:
                    return WriteOutcome()
                # The thread took the newest snapshot a moment ago (a thread started by that
                # submit runs at once): its write is what this flush waits for.
                if not self._cond.wait_for(lambda: not self._writing, timeout):
                    return WriteOutcome(error=_writer_timeout())
                return WriteOutcome(self._last.result, self._last.error)
            self._start_thread()
            if self._thread is None or not self._thread.is_alive():
                # Not started (or already stopped): write on the caller's thread.
                pending, self._pending = self._pending, None
                return self._write_now(pending)
            self._flush_waiters.append(waiter)
            self._not_before = 0.0
            self._cond.notify_all()
        if not waiter[0].wait(timeout):
            waiter[1].error = _writer_timeout()
        return waiter[1]

    def stop(self, *, timeout: float = 30.0) -> None:
        """Write what is pending, then end the thread. Safe to call twice."""
        with self._cond:
            if self._stopping:
                return
            self._stopping = True
            self._not_before = 0.0
            self._cond.notify_all()
            thread = self._thread
        if thread is not None:
            thread.join(timeout)
        with self._cond:
            leftover, self._pending = self._pending, None
        if leftover is not None:
            self._write_now(leftover)

    # --- the thread ----------------------------------------------------------------------------

    def _next_beat(self) -> float:
        if self._heartbeat is None or self.heartbeat_interval <= 0:
            return math.inf
        return time.monotonic() + self.heartbeat_interval

    def _beat(self) -> None:
        if self._heartbeat is None:
            return
        try:
            self._heartbeat()
        except Exception:
            log.exception("ipysession heartbeat failed")

    def _run(self) -> None:
        next_beat = self._next_beat()
        while True:
            with self._cond:
                while True:
                    now = time.monotonic()
                    due = self._pending is not None and now >= self._not_before
                    if due or self._stopping or now >= next_beat:
                        break
                    timeout = None if self._pending is None else self._not_before - now
                    if next_beat != math.inf:
                        until_beat = next_beat - now
                        timeout = until_beat if timeout is None else min(timeout, until_beat)
                    self._cond.wait(timeout)
                beat_only = not due and not self._stopping
                if beat_only:
                    pass  # nothing to write yet: just the heartbeat, outside the lock
                elif self._pending is None:
                    self._release_waiters(WriteOutcome())
                    if self._stopping:
                        return
                    continue
                else:
                    snapshot, self._pending = self._pending, None
                    waiters, self._flush_waiters = self._flush_waiters, []
                    self._writing = True
            if beat_only:
                self._beat()
                next_beat = self._next_beat()
                continue
            outcome = self._write_now(snapshot)
            next_beat = self._next_beat()
            with self._cond:
                self._writing = False
                self._last = outcome
                self._cond.notify_all()  # a flush waiting for this write
                if outcome.error is None:
                    self._failures = 0
                    self._not_before = time.monotonic() + self.interval
                else:
                    self._failures += 1
                    if self._pending is None and not waiters:
                        self._pending = snapshot  # retry it unless a newer one arrived
                    # Imported at the first failure: a kernel that writes fine never needs it.
                    from ipysession.retry import Backoff

                    # The interval is read now: `%session autosave N` may change it.
                    retry = Backoff(max(0.0, self.interval), _MAX_RETRY_DELAY)
                    delay = retry.delay(self._failures)
                    self._not_before = time.monotonic() + max(delay, 0.5)
                if self._flush_waiters:
                    # A flush that arrived during this write must not wait out the interval.
                    self._not_before = 0.0
                for event, result in waiters:
                    result.result, result.error = outcome.result, outcome.error
                    event.set()
            # Waiting for the next write must not keep this one's pickled values alive: for a
            # large DataFrame that is a second copy of it, held until the next autosave.
            del snapshot, waiters

    def _release_waiters(self, outcome: WriteOutcome) -> None:
        waiters, self._flush_waiters = self._flush_waiters, []
        for event, result in waiters:
            result.result, result.error = outcome.result, outcome.error
            event.set()

    def _write_now(self, snapshot: Session) -> WriteOutcome:
        try:
            result = self._write(snapshot)
        except Exception as exc:
            log.warning("Saving session %r failed: %s", snapshot.name, exc, exc_info=True)
            if self._on_error is not None:
                self._call_safely(self._on_error, exc)
            return WriteOutcome(error=exc)
        if result is not None and self._on_written is not None:
            self._call_safely(self._on_written, result)
        return WriteOutcome(result=result)

    @staticmethod
    def _call_safely(callback: Callable[[_Arg], None], arg: _Arg) -> None:
        try:
            callback(arg)
        except Exception:
            log.exception("ipysession writer callback failed")


def _writer_timeout() -> TimeoutError:
    return TimeoutError("the session writer did not finish in time")
