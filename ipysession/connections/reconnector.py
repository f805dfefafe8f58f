"""Reconnecting records in the background, with backoff, and watching live objects.

(Over 500 lines on purpose: :class:`Reconnector` is one state machine whose worker threads, monitor
and public methods share one lock and one table of entries; split across files, the rule "check
the generation under the lock before acting" would no longer be visible in one place.)

A :class:`Reconnector` (one per session manager) owns the background work::

    reconnector = Reconnector(on_ready=bind_later, on_state=note, attempts=3, backoff=0.5,
                              timeout=5.0, heartbeat=30.0)
    reconnector.start(auto_records)       # every record starts at once, each on its own thread
    ready = reconnector.wait(1.0)         # at most 1 s; {name: live object} connected by then
    ...                                    # the rest arrive later through on_ready
    reconnector.close()

Each connect is tried at once, then retried after ``backoff * 2**(n-1)`` seconds following the
n-th failure, capped at ``max_backoff``, times a random factor between 0.5 and 1.5 (jitter: the
:class:`~ipysession.retry.Backoff` every retry in ipysession uses). The
first ``attempts`` tries are the quick ones (what ``wait`` and ``%session reconnect`` wait for);
after them the record stays ``retrying`` and is retried in the background for as long as the
Reconnector lives, or until ``give_up_after`` seconds have passed since its first failure (then
``failed``). A failure that retrying cannot mend -- no such backend, a spec the backend refuses,
credentials the server refuses (:class:`~ipysession.connections.records.FailureCause`) -- ends
``failed`` at once. :meth:`Reconnector.retry_now` cuts a wait short (a cell names the connection,
the user pings it). Nothing ever raises into a caller; errors are redacted.

With ``heartbeat`` set, a monitor thread checks every live object with the backend's ``is_alive``
every ``heartbeat`` seconds; one that does not answer goes ``retrying`` and is probed again with
backoff (it may come back by itself: a kernel restarted on the same ports, a database back after a
blip) or replaced by a fresh connection. Nothing is ever restarted: a kernel we do not own is only
reconnected to.

Threading model
---------------
- Every connect attempt runs on a daemon thread named ``ipysession-connect-<name>``; the
  monitor runs on the daemon thread ``ipysession-heartbeat``.
- ``on_ready(name, obj)`` and ``on_state(name, state, message)`` are called **on those worker
  threads**. A caller that must touch the user namespace or print (the IPython shell) must marshal
  the call to its own thread (e.g. queue it and apply it before the next cell). Callbacks must not
  block for long; what they raise is logged and ignored.
- Each live object is delivered exactly once: objects connected before :meth:`Reconnector.wait`
  returns are in its result (and are not passed to ``on_ready``); later ones go to ``on_ready``.
  Use ``start(records, collect=False)`` when nobody will call ``wait``.
- The Reconnector never closes an object it has delivered, except in ``disconnect()``,
  ``forget()`` and ``close(close_objects=True)``, which close on the calling thread:
  call them from the thread that uses the objects. When a connection is replaced (an explicit
  reconnect, or recovery after a missed heartbeat), ``on_ready`` receives the new object and the
  caller closes the old one after rebinding (ZeroMQ sockets must not be closed from another thread
  while in use). Objects that arrive after ``close()`` or ``disconnect()`` were never delivered and
  are closed on the worker thread.
- The Reconnector updates ``record.stats`` of the records it was given, on worker threads, while
  holding :attr:`Reconnector.lock`; hold that lock to take a consistent snapshot of them.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ipysession.connections.backends.base import Backend, get_backend, redact_text
from ipysession.connections.records import (
    FailureCause,
    as_list,
    describe_record,
    failure_cause,
    record_failure,
    record_success,
    redacted_error,
)
from ipysession.connections.status import ConnectionState
from ipysession.logfile import log_path
from ipysession.model import ConnectionRecord
from ipysession.retry import Backoff

__all__ = ["ConnectionState", "ConnectionStatus", "Reconnector"]

log = logging.getLogger("ipysession")

OnReady = Callable[[str, Any], None]
OnState = Callable[[str, "ConnectionState", str], None]


@dataclass(frozen=True)
class ConnectionStatus:
    """One connection as the Reconnector sees it now (every text redacted)."""

    state: ConnectionState
    message: str
    #: Connect attempts of the current run so far (0 before the first one ends).
    attempt: int = 0
    #: The last error of the current run, and when it happened (epoch seconds).
    error: str = ""
    error_at: float | None = None
    cause: FailureCause | None = None
    #: Whether the quick attempts are used up (the record now heals in the background).
    background: bool = False

    @property
    def progress(self) -> str:
        """A few words for a line that updates in place: "connecting, attempt 2"."""
        if self.state is ConnectionState.CONNECTING:
            return f"connecting, attempt {self.attempt + 1}"
        if self.state is ConnectionState.RETRYING:
            return f"retrying, attempt {self.attempt + 1} (last error: {_short(self.error)})"
        return str(self.state)


def _short(text: str, limit: int = 80) -> str:
    folded = " ".join(text.split())
    return folded if len(folded) <= limit else folded[: limit - 3] + "..."


@dataclass(eq=False)
class _Entry:
    record: ConnectionRecord
    state: ConnectionState = ConnectionState.CONNECTING
    message: str = ""
    obj: Any = None
    live: bool = False
    generation: int = 0
    attempt: int = 0
    error: str = ""
    error_at: float | None = None
    cause: FailureCause | None = None
    background: bool = False
    # Set to cut a backoff wait short (retry_now, close, a new generation).
    wake: threading.Event = field(default_factory=threading.Event)

    def status(self) -> ConnectionStatus:
        return ConnectionStatus(
            self.state,
            self.message,
            self.attempt,
            self.error,
            self.error_at,
            self.cause,
            self.background,
        )


_NOTHING = object()


class Reconnector:
    """Connects records in the background, with retries, and watches live objects.

    See the module documentation for the threading model. No public method raises (except on
    bad arguments at construction); failures end up as states and log lines.

    Parameters
    ----------
    on_ready, on_state:
        Callbacks, called on worker threads (see above).
    attempts:
        Quick connect attempts per record, the first included (at least 1); retrying goes on
        in the background after them.
    backoff, max_backoff:
        Seconds before the second attempt, doubled after each failure, capped; each delay is
        multiplied by a random factor between 0.5 and 1.5 (jitter).
    give_up_after:
        Seconds after a record's first failure at which retrying stops (``failed``), or
        ``None`` to retry for as long as the Reconnector lives.
    timeout:
        Seconds each connect attempt may take.
    heartbeat:
        Seconds between liveness checks of live objects; ``None`` turns the monitor off.
    heartbeat_timeout:
        Seconds a liveness check may take (default: ``min(timeout, 5)``).
    """

    def __init__(
        self,
        *,
        on_ready: OnReady | None = None,
        on_state: OnState | None = None,
        attempts: int = 3,
        backoff: float = 0.5,
        max_backoff: float = 30.0,
        timeout: float = 5.0,
        heartbeat: float | None = None,
        heartbeat_timeout: float | None = None,
        give_up_after: float | None = None,
        backend_lookup: Callable[[str], Backend] = get_backend,
    ) -> None:
        if attempts < 1:
            msg = "attempts must be at least 1"
            raise ValueError(msg)
        if backoff < 0 or max_backoff < 0 or timeout <= 0:
            msg = "backoff and max_backoff must be >= 0 and timeout > 0"
            raise ValueError(msg)
        if heartbeat is not None and heartbeat <= 0:
            msg = "heartbeat must be a positive number of seconds, or None"
            raise ValueError(msg)
        if give_up_after is not None and give_up_after <= 0:
            msg = "give_up_after must be a positive number of seconds, or None"
            raise ValueError(msg)
        self._give_up_after = give_up_after
        self._on_ready = on_ready
        self._on_state = on_state
        self._attempts = attempts
        #: The wait between attempts (its jitter is +-50%).
        self.backoff = Backoff(backoff, max_backoff, jitter=0.5)
        self._timeout = timeout
        self._heartbeat = heartbeat
        self._heartbeat_timeout = heartbeat_timeout or min(timeout, 5.0)
        self._lookup = backend_lookup
        self.lock = threading.RLock()
        self._changed = threading.Condition(self.lock)
        self._stop = threading.Event()
        self._entries: dict[str, _Entry] = {}
        self._collect: set[str] = set()
        self._collected: dict[str, Any] = {}
        self._monitor: threading.Thread | None = None
        self._closed = False

    # --- public API ---------------------------------------------------------------------------

    def start(
        self,
        records: Mapping[str, ConnectionRecord] | Iterable[ConnectionRecord],
        *,
        collect: bool = True,
    ) -> None:
        """(Re)connect every record at once, each on its own worker thread.

        A record already in progress starts over; one already connected is connected afresh
        and the new object delivered (the caller closes the old one). With ``collect`` (the
        default) objects ready before the next :meth:`wait` returns are handed out by it.
        """
        try:
            started = []
            with self.lock:
                if self._closed:
                    log.debug("Reconnector.start() after close(): ignored")
                    return
                for record in as_list(records):
                    entry = self._entries.get(record.name)
                    if entry is None:
                        entry = self._entries[record.name] = _Entry(record)
                    entry.record = record
                    entry.generation += 1
                    entry.wake.set()  # an older run still waiting to retry ends now
                    entry.attempt, entry.background = 0, False
                    entry.state = ConnectionState.CONNECTING
                    entry.message = f"connecting to {describe_record(record)}"
                    if collect:
                        self._collect.add(record.name)
                    else:
                        self._collect.discard(record.name)
                    started.append((record.name, entry.generation, entry.message))
            for name, generation, message in started:
                self._emit_state(name, ConnectionState.CONNECTING, message)
                self._spawn(name, generation, _NOTHING)
        except Exception:
            log.error("Starting reconnection failed", exc_info=True)

    def wait(self, budget: float) -> dict[str, Any]:
        """Wait at most ``budget`` seconds for the records being collected; return those ready.

        Returns ``{name: live object}`` for every collected record that connected before now;
        those objects are not passed to ``on_ready``. Records still connecting carry on in the
        background and go to ``on_ready``. Returns at once if nothing is being collected.
        """
        deadline = time.monotonic() + max(0.0, budget)
        try:
            with self._changed:
                while self._collect and not self._closed:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        break
                    self._changed.wait(remaining)
                ready, self._collected = self._collected, {}
                self._collect.clear()
                return ready
        except Exception:
            log.error("Waiting for reconnection failed", exc_info=True)
            return {}

    def watch(self, record: ConnectionRecord, obj: Any) -> None:
        """Adopt ``obj``, connected elsewhere (``connect_record``), as ``record``'s live object."""
        try:
            with self.lock:
                if self._closed:
                    return
                entry = self._entries.get(record.name)
                if entry is None:
                    entry = self._entries[record.name] = _Entry(record)
                entry.record = record
                entry.generation += 1
                entry.wake.set()
                entry.obj, entry.live = obj, True
                entry.state = ConnectionState.CONNECTED
                entry.message = f"connected to {describe_record(record)}"
                entry.attempt, entry.background, entry.error, entry.cause = 0, False, "", None
                self._collect.discard(record.name)
                message = entry.message
            self._emit_state(record.name, ConnectionState.CONNECTED, message)
            self._ensure_monitor()
        except Exception:
            log.error("Watching connection %s failed", record.name, exc_info=True)

    def disconnect(self, name: str) -> None:
        """Stop retrying and watching ``name`` and close its live object on this thread."""
        self._drop(name, forget=False)

    def forget(self, name: str) -> None:
        """Like :meth:`disconnect`, and drop ``name`` from :meth:`states`."""
        self._drop(name, forget=True)

    def ping(self, name: str, *, timeout: float | None = None, fallback: Any = None) -> bool:
        """Check ``name`` now, on this thread; True if it answers.

        A live object that does not answer starts recovery. For a record that is not connected,
        ``fallback`` (the object the user still holds, if any) is checked: one that answers
        again is adopted, and the state says connected; otherwise the retry in the background
        is cut short (:meth:`retry_now`).
        """
        try:
            limit = timeout or self._heartbeat_timeout
            with self.lock:
                entry = self._entries.get(name)
                if entry is None:
                    return False
                state, generation, kind = entry.state, entry.generation, entry.record.kind
                obj = entry.obj if entry.live else None
            candidate = obj if obj is not None else fallback
            if candidate is not None and self._is_alive(kind, candidate, limit):
                if state is not ConnectionState.CONNECTED:
                    self._adopt(name, generation, candidate)
                return True
            if obj is not None and state is ConnectionState.CONNECTED:
                self._recover(name, generation, obj)
            else:
                self.retry_now(name)
            return False
        except Exception:
            log.error("Checking connection %s failed", name, exc_info=True)
            return False

    def retry_now(self, name: str) -> bool:
        """Cut ``name``'s wait before its next attempt short; False if it is not retrying."""
        with self.lock:
            entry = self._entries.get(name)
            if entry is None or entry.state not in (
                ConnectionState.CONNECTING,
                ConnectionState.RETRYING,
            ):
                return False
            entry.wake.set()
            return True

    def status(self, name: str) -> ConnectionStatus | None:
        """``name``'s state, attempt and last error; None if this Reconnector does not know it."""
        with self.lock:
            entry = self._entries.get(name)
            return entry.status() if entry is not None else None

    def wait_for(self, name: str, timeout: float) -> ConnectionState | None:
        """Wait at most ``timeout`` seconds for ``name`` to leave connecting/retrying."""
        deadline = time.monotonic() + max(0.0, timeout)
        with self._changed:
            while True:
                entry = self._entries.get(name)
                if entry is None or self._closed:
                    return entry.state if entry is not None else None
                if entry.state not in (ConnectionState.CONNECTING, ConnectionState.RETRYING):
                    return entry.state
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return entry.state
                self._changed.wait(remaining)

    def state(self, name: str) -> ConnectionState | None:
        """``name``'s state, or None if this Reconnector does not know it."""
        with self.lock:
            entry = self._entries.get(name)
            return entry.state if entry is not None else None

    def states(self) -> dict[str, ConnectionState]:
        """Every known name's state."""
        with self.lock:
            return {name: entry.state for name, entry in self._entries.items()}

    def snapshot(self) -> dict[str, tuple[ConnectionState, str]]:
        """Every known name's state and last message (the redacted error when ``failed``)."""
        with self.lock:
            return {name: (e.state, e.message) for name, e in self._entries.items()}

    def objects(self) -> dict[str, Any]:
        """The live objects, by name (connected ones only)."""
        with self.lock:
            return {
                name: e.obj
                for name, e in self._entries.items()
                if e.live and e.state is ConnectionState.CONNECTED
            }

    def close(self, *, close_objects: bool = False) -> None:
        """Stop every worker and the monitor. Safe twice.

        With ``close_objects`` the live objects are closed too, on this thread.
        """
        try:
            with self._changed:
                if self._closed:
                    return
                self._closed = True
                self._stop.set()
                doomed = []
                for entry in self._entries.values():
                    entry.generation += 1
                    entry.wake.set()
                    if close_objects and entry.live:
                        doomed.append((entry.record.kind, entry.obj))
                        entry.live, entry.obj = False, None
                        entry.state = ConnectionState.DISCONNECTED
                self._collect.clear()
                self._changed.notify_all()
                monitor = self._monitor
            for kind, obj in doomed:
                self._close_object(kind, obj)
            if monitor is not None and monitor is not threading.current_thread():
                monitor.join(timeout=0.1)
        except Exception:
            log.error("Closing the reconnector failed", exc_info=True)

    def __enter__(self) -> Reconnector:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # --- workers ------------------------------------------------------------------------------

    def _spawn(self, name: str, generation: int, old: Any) -> None:
        # Each run has its own wake event: one set to cancel or hurry an earlier run never cuts
        # a later run's first backoff short.
        wake = threading.Event()
        with self.lock:
            entry = self._entries.get(name)
            if entry is None or entry.generation != generation:
                return
            entry.wake = wake
        thread = threading.Thread(
            target=self._run,
            args=(name, generation, old, wake),
            name=f"ipysession-connect-{name}",
            daemon=True,
        )
        thread.start()

    def _current(self, name: str, generation: int) -> ConnectionRecord | None:
        with self.lock:
            entry = self._entries.get(name)
            if self._closed or entry is None or entry.generation != generation:
                return None
            return entry.record

    def _run(self, name: str, generation: int, old: Any, wake: threading.Event) -> None:
        try:
            self._attempt_all(name, generation, old, wake)
        except Exception:
            log.error("Reconnecting %s failed unexpectedly", name, exc_info=True)
            self._finish_failed(name, generation, f"internal error (see the log: {log_path()})")

    def _attempt_all(self, name: str, generation: int, old: Any, wake: threading.Event) -> None:
        record = self._current(name, generation)
        if record is None:
            return
        recovering = old is not _NOTHING
        try:
            backend = self._lookup(record.kind)
        except Exception as exc:  # noqa: BLE001 - ends as state failed, never raises
            error = redacted_error(exc, record)
            self._finish_failed(name, generation, error, failure_cause(exc, error))
            return
        delay = self.backoff.delay(1) if recovering else 0.0
        first_failure: float | None = None
        attempt = 0
        while True:
            if delay > 0:
                wake.wait(delay)
                wake.clear()
            record = self._current(name, generation)
            if record is None or self._stop.is_set():
                return
            attempt += 1
            if recovering and self._is_alive(record.kind, old, self._heartbeat_timeout):
                self._finish_ready(name, generation, old, "answering again")
                return
            try:
                obj = backend.connect(record.params, record.secrets, timeout=self._timeout)
            except Exception as exc:  # noqa: BLE001 - retried, or state failed
                error = redacted_error(exc, record)
                cause = failure_cause(exc, error)
                now = time.monotonic()
                first_failure = now if first_failure is None else first_failure
                if cause is FailureCause.REJECTED:
                    self._finish_failed(name, generation, error, cause)
                    return
                if self._give_up_after is not None and attempt >= self._attempts:
                    elapsed = now - first_failure
                    if elapsed >= self._give_up_after:
                        self._finish_failed(
                            name,
                            generation,
                            f"gave up after {attempt} attempts in {elapsed:.0f} s: {error}",
                            cause,
                        )
                        return
                delay = self.backoff.delay(attempt + 1 if recovering else attempt)
                log.info(
                    "Connection %s: attempt %d failed: %s; next try in %.1f s",
                    name,
                    attempt,
                    error,
                    delay,
                )
                self._failed_attempt(name, generation, attempt, error, cause, delay)
                continue
            self._finish_ready(name, generation, obj, f"connected to {describe_record(record)}")
            return

    def _failed_attempt(
        self,
        name: str,
        generation: int,
        attempt: int,
        error: str,
        cause: FailureCause,
        delay: float,
    ) -> None:
        """One attempt failed and another follows: state retrying, the error kept.

        When the quick attempts are used up the failure is counted in the record's history
        (once per outage) and nobody waits for it any more (``wait`` returns without it).
        """
        with self._changed:
            entry = self._entries.get(name)
            if self._closed or entry is None or entry.generation != generation:
                return
            error = redact_text(error, entry.record.secrets)
            entry.attempt, entry.error, entry.cause = attempt, error, cause
            entry.error_at = time.time()
            quick_over = attempt == self._attempts
            if attempt >= self._attempts:
                entry.background = True
                record_failure(entry.record, error, now=entry.error_at, count=quick_over)
                self._collect.discard(name)
            entry.state = ConnectionState.RETRYING
            entry.message = f"attempt {attempt} failed: {error}; next try in {delay:.1f} s"
            message = entry.message
            self._changed.notify_all()
        self._emit_state(name, ConnectionState.RETRYING, message)

    def _adopt(self, name: str, generation: int, obj: Any) -> None:
        """``obj``, which the user still holds, answers again: it is the live object now."""
        with self._changed:
            entry = self._entries.get(name)
            if self._closed or entry is None or entry.generation != generation:
                return
            entry.generation += 1  # the retry in progress stops at its next look
            entry.wake.set()
            entry.obj, entry.live = obj, True
            entry.state, entry.message = ConnectionState.CONNECTED, "answering again"
            entry.attempt, entry.background, entry.error, entry.cause = 0, False, "", None
            record_success(entry.record)
            self._collect.discard(name)
            self._changed.notify_all()
        log.info("Connection %s: answering again", name)
        self._emit_state(name, ConnectionState.CONNECTED, "answering again")
        self._ensure_monitor()

    def _finish_ready(self, name: str, generation: int, obj: Any, message: str) -> None:
        with self._changed:
            entry = self._entries.get(name)
            if self._closed or entry is None or entry.generation != generation:
                current = False
                kind = entry.record.kind if entry is not None else ""
            else:
                current = True
                kind = entry.record.kind
                same = entry.live and entry.obj is obj
                entry.obj, entry.live = obj, True
                entry.state, entry.message = ConnectionState.CONNECTED, message
                entry.attempt, entry.background, entry.error, entry.cause = 0, False, "", None
                if not same:
                    record_success(entry.record)
                deliver = not same
                if name in self._collect:
                    self._collected[name] = obj
                    self._collect.discard(name)
                    deliver = False
                self._changed.notify_all()
        if not current:
            # Nobody will ever see this object: close it here, where it was made.
            log.debug("Connection %s arrived after it was cancelled; closing it", name)
            if kind:
                self._close_object(kind, obj)
            return
        log.info("Connection %s: %s", name, message)
        self._emit_state(name, ConnectionState.CONNECTED, message)
        if deliver:
            self._emit_ready(name, obj)
        self._ensure_monitor()

    def _finish_failed(
        self, name: str, generation: int, error: str, cause: FailureCause | None = None
    ) -> None:
        with self._changed:
            entry = self._entries.get(name)
            if self._closed or entry is None or entry.generation != generation:
                return
            entry.live, entry.obj = False, None
            error = redact_text(error, entry.record.secrets)
            entry.state, entry.message = ConnectionState.FAILED, error
            entry.error, entry.cause, entry.error_at = error, cause, time.time()
            # Counted once per outage: a run that was already healing counted it then.
            record_failure(entry.record, error, now=entry.error_at, count=not entry.background)
            self._collect.discard(name)
            self._changed.notify_all()
        log.warning("Connection %s failed: %s", name, error)
        self._emit_state(name, ConnectionState.FAILED, error)

    def _drop(self, name: str, *, forget: bool) -> None:
        try:
            with self._changed:
                entry = self._entries.get(name)
                if entry is None:
                    return
                entry.generation += 1
                entry.wake.set()
                obj, live, kind = entry.obj, entry.live, entry.record.kind
                entry.obj, entry.live = None, False
                entry.state, entry.message = ConnectionState.DISCONNECTED, "disconnected"
                self._collect.discard(name)
                self._collected.pop(name, None)
                if forget:
                    del self._entries[name]
                self._changed.notify_all()
            if live:
                self._close_object(kind, obj)
            if not forget:
                self._emit_state(name, ConnectionState.DISCONNECTED, "disconnected")
        except Exception:
            log.error("Disconnecting %s failed", name, exc_info=True)

    # --- heartbeat ----------------------------------------------------------------------------

    def _ensure_monitor(self) -> None:
        if self._heartbeat is None:
            return
        with self.lock:
            if self._closed or self._monitor is not None:
                return
            self._monitor = threading.Thread(
                target=self._monitor_loop, name="ipysession-heartbeat", daemon=True
            )
            self._monitor.start()

    def _monitor_loop(self) -> None:
        assert self._heartbeat is not None
        while not self._stop.wait(self._heartbeat):
            with self.lock:
                watched = [
                    (name, e.generation, e.obj, e.record.kind)
                    for name, e in self._entries.items()
                    if e.live and e.state is ConnectionState.CONNECTED
                ]
            for name, generation, obj, kind in watched:
                if self._stop.is_set():
                    return
                if not self._is_alive(kind, obj, self._heartbeat_timeout):
                    self._recover(name, generation, obj)

    def _recover(self, name: str, generation: int, obj: Any) -> None:
        with self.lock:
            entry = self._entries.get(name)
            if (
                self._closed
                or entry is None
                or entry.generation != generation
                or entry.obj is not obj
                or entry.state is not ConnectionState.CONNECTED
            ):
                return
            entry.generation += 1
            entry.state = ConnectionState.RETRYING
            entry.message = "no answer to the liveness check; reconnecting"
            new_generation, message = entry.generation, entry.message
        log.info("Connection %s: %s", name, message)
        self._emit_state(name, ConnectionState.RETRYING, message)
        self._spawn(name, new_generation, obj)

    # --- helpers ------------------------------------------------------------------------------

    def _is_alive(self, kind: str, obj: Any, timeout: float) -> bool:
        try:
            return bool(self._lookup(kind).is_alive(obj, timeout=timeout))
        except Exception as exc:  # noqa: BLE001 - a failed check means not alive
            log.debug("Liveness check failed (%s)", type(exc).__name__)
            return False

    def _close_object(self, kind: str, obj: Any) -> None:
        try:
            self._lookup(kind).close(obj)
        except Exception as exc:  # noqa: BLE001 - closing never raises
            log.debug("Closing a %s connection failed (%s)", kind, type(exc).__name__)

    def _emit_state(self, name: str, state: ConnectionState, message: str) -> None:
        if self._on_state is None:
            return
        try:
            self._on_state(name, state, message)
        except Exception:
            log.warning("The on_state callback failed for %s", name, exc_info=True)

    def _emit_ready(self, name: str, obj: Any) -> None:
        if self._on_ready is None:
            return
        try:
            self._on_ready(name, obj)
        except Exception:
            log.warning("The on_ready callback failed for %s", name, exc_info=True)
