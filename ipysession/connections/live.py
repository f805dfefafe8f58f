"""The live connections of one session: records, their objects, and moving them to the main thread.

:class:`ConnectionSet` is the manager's half of issue "connection persistence". It owns the
session's :class:`~ipysession.model.ConnectionRecord` mapping and one
:class:`~ipysession.connections.reconnector.Reconnector`, and keeps the rule that only the main
thread touches the user namespace: objects that connect on worker threads are queued and bound by
:meth:`settle`, which the manager calls between cells (and before every ``%session`` command).

At restore, :meth:`load` schedules every auto connection (not one the user disconnected) and
returns at once; they all start together in the background a quarter of a second later (or at the
first cell, if sooner), so kernel start is neither held up nor slowed by their imports. The first
cell waits for whatever is left of ``reconnect_wait`` (counted from that start, 0 by default);
what is not ready by then keeps going, healing in the background for as long as the kernel lives,
and is bound at a later cell boundary, with a one-line notice. A cell that names a connection still
on its way waits for it: :attr:`ConnectionSet.arrivals` is the arrival source
(:mod:`ipysession.session.arrivals`) that tells the manager which variables are still arriving.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ipysession.connections.backends import (
    Liveness,
    available_backends,
    get_backend,
    liveness,
    redact_text,
)
from ipysession.connections.records import (
    FailureCause,
    advice,
    connect_record,
    describe_record,
    make_record,
    one_line,
    record_success,
    update_record,
)
from ipysession.connections.status import ConnectionState
from ipysession.errors import (
    BackendNotFound,
    ConnectionNotReady,
    ConnectionSetupError,
    SessionError,
    SessionNotFound,
)
from ipysession.model import ConnectionRecord

if TYPE_CHECKING:
    # The Reconnector (its threads, backoff and backends) is imported when the first connection
    # is made or restored: a kernel with none never needs it (tests/test_import_cost.py).
    from ipysession.connections.reconnector import ConnectionStatus, Reconnector

    # Only named in annotations: the list (with the cipher and the file lock it needs) is
    # imported by whoever builds it, when a connection is first used.
    from ipysession.store.recent import RecentConnections

__all__ = ["ConnectionArrival", "ConnectionArrivals", "ConnectionSet", "ConnectionSettings"]

log = logging.getLogger("ipysession")

# Restored connections start once the kernel has been quiet this long: after the restore (the
# kernel is still starting then), and after each cell. A cell cancels the wait. Their imports and
# handshakes (SQLAlchemy alone is about 0.35 s of CPU, distributed more) would otherwise take the
# interpreter from the kernel's start and from the user's first cells, which name none of them;
# a cell that names one starts them at once (ConnectionArrival.wait).
# Cells that follow each other closely (a "Run All", a frontend that polls) never leave the kernel
# quiet: connections start this long after the restore whatever runs.
_QUIET_AFTER_RESTORE = 1.0
_QUIET_AFTER_CELL = 0.25
_START_AT_THE_LATEST = 3.0

# Secrets shorter than this are redacted from the line that defined them, not from every cell of
# history: a 4-digit port or a short password would otherwise blank out unrelated numbers.
_MIN_HISTORY_SECRET = 8


@dataclass(frozen=True)
class ConnectionSettings:
    wait: float = 0.0
    attempts: int = 3
    backoff: float = 0.5
    timeout: float = 5.0
    heartbeat: float | None = 30.0
    #: Cap of the delay between background retries (seconds).
    max_interval: float = 60.0
    #: Seconds after the first failure at which retrying stops; None: never.
    give_up_after: float | None = None
    #: Seconds a cell that names a connection still on its way waits for it.
    connection_wait: float = 10.0


class ConnectionSet:
    def __init__(
        self,
        settings: ConnectionSettings,
        *,
        bind: Callable[[str, Any], None],
        unbind: Callable[[str, Any], None],
        notify: Callable[[str], None],
        changed: Callable[[], None] = lambda: None,
        recent: Callable[[], RecentConnections] | None = None,
    ) -> None:
        self.settings = settings
        # The user-wide recent-connections list (None: not kept, as in tests of this class).
        self._recent = recent
        # Called whenever the records or what is bound changed: the session has something to save.
        self._changed = changed
        self.records: dict[str, ConnectionRecord] = {}
        self._bind = bind
        self._unbind = unbind
        self._notify = notify
        self._arrivals: queue.SimpleQueue[tuple[str, Any]] = queue.SimpleQueue()
        self._bound: dict[str, Any] = {}
        self._deadline: float | None = None
        self._lock = threading.Lock()
        self._start_lock = threading.Lock()
        self._pending: list[ConnectionRecord] = []
        self._timer: threading.Timer | None = None
        self._latest: threading.Timer | None = None
        self._reconnector: Reconnector | None = None

    @property
    def started_reconnector(self) -> Reconnector | None:
        """The reconnector if one runs already; None before the first connection (starts none)."""
        return self._reconnector

    def is_bound(self, name: str, obj: Any) -> bool:
        """Whether ``obj`` is what connection ``name``'s variable holds now (bound by this set)."""
        return obj is not None and self._bound.get(name) is obj

    @property
    def reconnector(self) -> Reconnector:
        with self._lock:
            if self._reconnector is None:
                from ipysession.connections.reconnector import Reconnector  # see TYPE_CHECKING

                self._reconnector = Reconnector(
                    on_ready=self._on_ready,
                    on_state=self._on_state,
                    attempts=self.settings.attempts,
                    backoff=self.settings.backoff,
                    max_backoff=self.settings.max_interval,
                    timeout=self.settings.timeout,
                    heartbeat=self.settings.heartbeat,
                    give_up_after=self.settings.give_up_after,
                )
            return self._reconnector

    # --- worker-thread callbacks (never touch the namespace here) ---------------------------

    def _on_ready(self, name: str, obj: Any) -> None:
        self._arrivals.put((name, obj))

    def _on_state(self, name: str, state: ConnectionState, message: str) -> None:
        reconnector = self._reconnector
        status = reconnector.status(name) if reconnector is not None else None
        cause = status.cause if status is not None else None
        if state is ConnectionState.FAILED:
            self._notify(
                f"ipysession: connection '{name}' failed: {one_line(message)}. "
                f"{_capital(advice(name, cause or FailureCause.REJECTED))}."
            )
        elif (
            state is ConnectionState.RETRYING
            and status is not None
            and status.attempt == self.settings.attempts
        ):
            # Said once per outage, when the quick attempts are used up.
            self._notify(
                f"ipysession: connection '{name}' could not connect after "
                f"{status.attempt} attempt{'s' if status.attempt != 1 else ''}: "
                f"{one_line(status.error)}. {_capital(advice(name, cause))}."
            )

    # --- main thread --------------------------------------------------------------------------

    def load(self, records: Mapping[str, ConnectionRecord]) -> list[str]:
        """Adopt restored records and schedule reconnecting the auto ones; returns their names.

        A restored record replaces one of the same name that is not live in this kernel.
        Reconnection starts once the kernel is quiet (no cell for a moment), or as soon as a
        cell names one of them, so its imports never compete for the interpreter with the
        kernel's own start or with cells that do not need them.
        """
        adopted = {n: r for n, r in records.items() if n not in self._bound}
        self.records.update(adopted)
        auto = [r for r in adopted.values() if r.auto and not r.disconnected]
        if auto:
            with self._lock:
                self._pending.extend(auto)
            self._start_when_quiet(_QUIET_AFTER_RESTORE)
            latest = threading.Timer(_START_AT_THE_LATEST, self._start_pending)
            latest.daemon = True
            latest.name = "ipysession-reconnect-start"
            self._latest = latest
            latest.start()
        return [r.name for r in auto]

    def _start_when_quiet(self, delay: float) -> None:
        """(Re)arm the timer that starts the pending connections after ``delay`` seconds."""
        with self._lock:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            if not self._pending:
                return
            timer = threading.Timer(delay, self._start_pending)
            timer.daemon = True
            timer.name = "ipysession-reconnect-start"
            self._timer = timer
        timer.start()

    def cell_starting(self) -> None:
        """A cell starts (main thread): the pending connections wait until it is over, unless
        it names one of them (its arrival starts them) or reconnect_wait asks the first cell
        to wait for every one."""
        if self.settings.wait > 0:
            self._start_pending()
            return
        with self._lock:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None

    def cell_finished(self) -> None:
        """A cell ended (main thread): start what is pending once the kernel stays quiet."""
        if self._pending:
            self._start_when_quiet(_QUIET_AFTER_CELL)

    def waiting_to_start(self) -> list[ConnectionRecord]:
        """Restored records whose connecting has not started yet (the kernel was busy)."""
        with self._lock:
            return list(self._pending)

    def start_pending(self) -> None:
        """Start connecting every pending record now (a cell needs one of them)."""
        self._start_pending()

    def _start_pending(self) -> None:
        # Held while starting, so a cell that arrives meanwhile waits for the start to finish
        # instead of collecting before anything was started.
        with self._start_lock:
            with self._lock:
                pending, self._pending = self._pending, []
            if not pending:
                return
            # reconnect_wait: the first cell collects (and binds quietly) what connects within
            # it. Without it, each connection is bound at the cell after it arrives, said in a
            # notice.
            collect = self.settings.wait > 0
            if collect:
                self._deadline = time.monotonic() + self.settings.wait
            self.reconnector.start(pending, collect=collect)

    def settle(self) -> list[str]:
        """Bind what has connected since the last call; wait out the restore budget once.

        Returns the names newly bound. Called on the main thread between cells.
        """
        bound: list[str] = []
        deadline, self._deadline = self._deadline, None
        if deadline is not None:
            remaining = max(0.0, deadline - time.monotonic())
            for name, obj in self.reconnector.wait(remaining).items():
                self._bind_object(name, obj)
                bound.append(name)
        while True:
            try:
                name, obj = self._arrivals.get_nowait()
            except queue.Empty:
                break
            if self._bound.get(name) is obj:
                continue  # a waiting cell bound it already (ConnectionArrival.wait)
            self._bind_object(name, obj)
            bound.append(name)
            record = self.records.get(name)
            variable = record.variable if record else name
            self._notify(f"ipysession: connection '{name}' is ready, bound to `{variable}`.")
        if bound:
            self._changed()
        return bound

    def bind_connected(self, name: str) -> bool:
        """Bind ``name``'s live object now if it is connected (main thread); False if not.

        For a cell that waited for it: its delivery through ``on_ready`` may not have reached
        the queue yet. :meth:`settle` skips it when it does.
        """
        obj = self.reconnector.objects().get(name)
        if obj is None:
            return False
        if self._bound.get(name) is not obj:
            self._bind_object(name, obj)
            self._changed()
        return True

    def _bind_object(self, name: str, obj: Any) -> None:
        record = self.records.get(name)
        if record is None:  # forgotten while it was connecting
            self._close_quietly(name, obj)
            return
        previous = self._bound.get(name)
        self._bound[name] = obj
        self._bind(record.variable, obj)
        if previous is not None and previous is not obj:
            # Closed only now, on the main thread, after the new object replaced it.
            self._close_quietly(name, previous, kind=record.kind)

    def _close_quietly(self, name: str, obj: Any, *, kind: str | None = None) -> None:
        record = self.records.get(name)
        try:
            get_backend(kind or (record.kind if record else "")).close(obj)
        except BackendNotFound:
            pass
        except Exception:
            log.warning("Closing the old object of connection %s failed", name, exc_info=True)

    def connect(
        self,
        name: str,
        kind: str | None,
        spec: str | Mapping[str, Any] | None,
        options: Mapping[str, Any] | None = None,
        *,
        variable: str | None = None,
        auto: bool | None = None,
    ) -> tuple[ConnectionRecord, Any]:
        """Connect now (on this thread) and bind; with no kind and spec, reuse the stored record.

        The record (secrets encrypted) joins the session; a failed attempt is history too.
        """
        self.settle()
        try:
            return self._connect(name, kind, spec, options, variable=variable, auto=auto)
        finally:
            self._changed()

    def _connect(
        self,
        name: str,
        kind: str | None,
        spec: str | Mapping[str, Any] | None,
        options: Mapping[str, Any] | None,
        *,
        variable: str | None,
        auto: bool | None,
    ) -> tuple[ConnectionRecord, Any]:
        existing = self.records.get(name)
        recalled = False
        if existing is None and (spec is None or kind is None):
            # A new notebook: `%session connect db` takes the record from the recent list.
            existing = self.recall(name)
            recalled = existing is not None
        if (
            spec is None
            and kind is not None
            and existing is not None
            and kind != existing.kind
            and kind not in available_backends()
        ):
            # `%session connect rk NEWFILE`: the one word after NAME is no backend kind, so it
            # is the spec, and the kind is the stored record's.
            kind, spec = None, kind
        if kind is None and spec is None:
            if existing is None:
                msg = f"No stored connection named '{name}'"
                raise SessionNotFound(
                    msg, hint="Give a kind and a spec: %session connect NAME KIND SPEC"
                )
            record = existing
        elif existing is not None and kind in (None, existing.kind):
            record = update_record(existing, spec, options)
        else:
            if kind is None:
                msg = f"No stored connection named '{name}'"
                raise SessionNotFound(msg, hint="Give the backend kind before the spec")
            record = make_record(name, kind, spec, options, variable=variable or name)
        if variable:
            record.variable = variable
        if auto is not None:
            record.auto = auto
        try:
            obj = connect_record(record, timeout=self.settings.timeout)
        except SessionError:
            self.remember(record)  # a failed connect is history too (its error redacted)
            raise
        self.remember(record)
        if recalled:
            existing = None  # nothing of it was bound in this kernel
        if existing is not None and existing.variable != record.variable:
            self._unbind(existing.variable, self._bound.pop(name, None))
        self.records[name] = record
        self._bind_object(name, obj)
        self.reconnector.watch(record, obj)
        return record, obj

    def adopt_sql_connections(self, taken: AbstractSet[str]) -> list[str]:
        """Record the connections a ``%sql URL`` cell opened (jupysql), so they come back into
        ``%sql`` after a restart; their engines are used as they are. ``taken`` holds the names
        a new connection's variable must not shadow. Returns the names adopted."""
        from ipysession.connections.backends.jupysql import (
            connection_name,
            engine_spec,
            unrecorded_connections,
        )

        # A record's own alias is skipped too: its engine is registered with %sql while it
        # connects in the background, before it is bound here.
        ours = {r.params.get("alias") for r in self.records.values() if r.kind == "jupysql"}
        adopted = []
        for alias, engine in unrecorded_connections(list(self._bound.values())):
            if alias in ours:
                continue
            name = connection_name(alias, engine, set(taken) | set(self.records))
            try:
                record = make_record(
                    name, "jupysql", engine_spec(engine), {"kwargs": {"alias": alias}}
                )
            except ConnectionSetupError as exc:
                log.info("A %%sql connection is not kept: %s", exc)
                continue
            record_success(record)
            self.records[name] = record
            self._bind_object(name, engine)
            self.reconnector.watch(record, engine)
            adopted.append(name)
            self._notify(
                f"ipysession: the %sql connection {self.describe(name)} is kept (password "
                f"encrypted) and comes back into %sql after a restart, bound to `{name}`; "
                f"`%session forget {name}` stops that."
            )
        if adopted:
            self._changed()
        return adopted

    def recall(self, name: str) -> ConnectionRecord | None:
        """The record ``name`` from the user-wide recent list, if there is one (never raises)."""
        if self._recent is None:
            return None
        try:
            return self._recent().get(name)
        except Exception:
            log.warning("Reading the recent-connections list failed", exc_info=True)
            return None

    def recent(self) -> list[ConnectionRecord]:
        """The user-wide recent list, most recent first (empty if it cannot be read)."""
        if self._recent is None:
            return []
        try:
            return self._recent().records()
        except Exception:
            log.warning("Reading the recent-connections list failed", exc_info=True)
            return []

    def remember(self, record: ConnectionRecord) -> None:
        """Put ``record`` first in the user-wide recent list (never raises)."""
        if self._recent is None:
            return
        try:
            self._recent().remember(record)
        except Exception:
            log.warning("Updating the recent-connections list failed", exc_info=True)

    def reconnect(
        self, names: Iterable[str] | None = None, *, wait: float | None = None
    ) -> dict[str, str]:
        """Connect these (default: all) records afresh; wait up to ``wait`` (default: one
        connect timeout); bind what is ready; return each one's state."""
        self.settle()
        selected = self._select(names)
        self.reconnector.start(selected)
        budget = self.settings.timeout if wait is None else wait
        for name, obj in self.reconnector.wait(budget).items():
            self._bind_object(name, obj)
        self._changed()
        return self.states()

    def disconnect(self, name: str) -> None:
        """Close ``name`` and stop healing it; remembered across restarts until a connect."""
        record = self._require(name)
        self.reconnector.disconnect(name)  # closes the live object on this thread
        self._unbind(record.variable, self._bound.pop(name, None))
        record.disconnected = True
        self._changed()

    def forget(self, name: str) -> ConnectionRecord:
        record = self._require(name)
        self.reconnector.forget(name)
        self._unbind(record.variable, self._bound.pop(name, None))
        del self.records[name]
        self._changed()
        return record

    def ping(self, names: Iterable[str] | None = None) -> dict[str, Liveness]:
        """Check each connection now. One that is retrying but whose object (still bound in the
        namespace) answers again is connected from now on; otherwise its retry comes sooner. An
        object its backend cannot ask (a factory's, with no liveness check) is unknown."""
        out: dict[str, Liveness] = {}
        for record in self._select(names):
            bound = self._bound.get(record.name)
            alive = self.reconnector.ping(record.name, fallback=bound)
            try:
                backend = get_backend(record.kind)
            except ConnectionSetupError:
                out[record.name] = Liveness.NO_ANSWER
                continue
            out[record.name] = liveness(backend, bound, alive=alive)
        return out

    def status(self, name: str) -> ConnectionStatus | None:
        """``name``'s state, attempt and last error as the reconnector sees them now."""
        self._require(name)
        reconnector = self._reconnector
        return reconnector.status(name) if reconnector is not None else None

    @property
    def arrivals(self) -> ConnectionArrivals:
        """The arrival source of the connections still on their way (see the module doc)."""
        return ConnectionArrivals(self)

    def _select(self, names: Iterable[str] | None) -> list[ConnectionRecord]:
        if names is None:
            return list(self.records.values())
        return [self._require(n) for n in names]

    def _require(self, name: str) -> ConnectionRecord:
        try:
            return self.records[name]
        except KeyError:
            known = ", ".join(sorted(self.records)) or "none"
            msg = f"No connection named '{name}' (known: {known})"
            raise SessionNotFound(msg, hint="`%session connections` lists them") from None

    # --- views --------------------------------------------------------------------------------

    def states(self) -> dict[str, str]:
        with self._lock:
            reconnector = self._reconnector
        states = reconnector.states() if reconnector is not None else {}
        # Waiting for a quiet moment to start is connecting, as far as the user can tell.
        for record in self.waiting_to_start():
            states.setdefault(record.name, ConnectionState.CONNECTING)
        return {name: str(states.get(name, ConnectionState.DISCONNECTED)) for name in self.records}

    def snapshot(self) -> dict[str, ConnectionRecord]:
        """Copies of the records, consistent with the reconnector's updates of their stats."""
        reconnector = self._reconnector
        if reconnector is None:
            return {n: _copy(r) for n, r in self.records.items()}
        with reconnector.lock:
            return {n: _copy(r) for n, r in self.records.items()}

    def variables(self) -> set[str]:
        """Names bound to live connection objects: never pickled as variables."""
        return {r.variable for r in self.records.values()}

    def describe(self, name: str) -> str:
        return describe_record(self._require(name))

    def secret_strings(self) -> list[str]:
        """Every secret of every record, as text (for the log file's filter). Thread-safe
        enough for a filter: it copies the mapping before walking it."""
        found: list[str] = []
        for record in list(self.records.values()):
            _strings(dict(record.secrets), found)
        return found

    def redact(self, text: str) -> str:
        """``text`` with connection secrets replaced by ``***`` (for the history we keep)."""
        if "%session" in text and "connect" in text:
            return redact_text(text, [r.secrets for r in self.records.values()])
        long_secrets: list[str] = []
        for record in self.records.values():
            _strings(record.secrets, long_secrets)
        return redact_text(text, [s for s in long_secrets if len(s) >= _MIN_HISTORY_SECRET])

    def close(self) -> None:
        """Stop reconnecting and close live objects (on this thread). Safe twice."""
        for timer in (self._timer, self._latest):
            if timer is not None:
                timer.cancel()
        with self._start_lock, self._lock:
            self._pending = []
        with self._lock:
            reconnector, self._reconnector = self._reconnector, None
        if reconnector is not None:
            reconnector.close(close_objects=True)
        self._bound.clear()


_ARRIVING = (ConnectionState.CONNECTING, ConnectionState.RETRYING)


class ConnectionArrivals:
    """The connections still on their way, as an arrival source for the cell gate.

    Implements :class:`ipysession.session.arrivals.ArrivalSource` (structurally: this layer
    does not import the session layer). ``limit`` is ``connection_wait``.
    """

    kind = "connection"

    def __init__(self, connections: ConnectionSet) -> None:
        self._connections = connections

    @property
    def limit(self) -> float:
        return self._connections.settings.connection_wait

    def arriving(self) -> list[ConnectionArrival]:
        """One arrival per connection that is connecting or retrying now, or connected on its
        worker thread but not bound yet (cheap when none).

        The last kind is the race the first cell after a restart used to lose on a loaded
        machine: the connection completed after this cell's ``settle`` took what had arrived,
        so the cell ran without its variable (``NameError``). Its wait binds it at once."""
        connections = self._connections
        waiting = connections.waiting_to_start()
        reconnector = connections.started_reconnector
        if reconnector is None and not waiting:
            return []
        states = reconnector.states() if reconnector is not None else {}
        if not states and not waiting:
            return []
        objects = reconnector.objects() if reconnector is not None else {}
        not_started = {record.name for record in waiting}
        return [
            ConnectionArrival(connections, record)
            for name, record in list(connections.records.items())
            if name in not_started
            or states.get(name) in _ARRIVING
            or (name in objects and not connections.is_bound(name, objects[name]))
        ]


class ConnectionArrival:
    """One connection on its way: the variable a cell names, its progress, and the wait."""

    def __init__(self, connections: ConnectionSet, record: ConnectionRecord) -> None:
        self._connections = connections
        self._record = record
        self._hurried = False

    @property
    def _reconnector(self) -> Reconnector:
        return self._connections.reconnector

    @property
    def name(self) -> str:
        return self._record.variable

    def progress(self) -> str:
        status = self._reconnector.status(self._record.name)
        if status is not None:
            return status.progress
        return "starting" if self._record in self._connections.waiting_to_start() else "gone"

    def is_ready(self) -> bool:
        """Connected and bound: a cell needs the object in its namespace, not only made."""
        name = self._record.name
        return self._connections.is_bound(name, self._reconnector.objects().get(name))

    def named_by_magic(self, magic: str, line: str) -> bool:
        """Whether a cell running ``%sql``/``%%sql`` with ``line`` needs this connection.

        A jupysql connection is needed by a ``%sql`` cell that names its alias first, or that
        names no jupysql connection's alias (it runs on the current one, which may be this);
        never by one that opens a new connection from a URL.
        """
        if self._record.kind != "jupysql" or magic != "sql":
            return False
        words = line.split(None, 1)
        first = words[0] if words else ""
        if "://" in first:
            return False
        aliases = {
            _sql_alias(record)
            for record in list(self._connections.records.values())
            if record.kind == "jupysql"
        }
        return first == _sql_alias(self._record) if first in aliases else True

    def failed(self) -> bool:
        """Never: a connection heals for as long as the kernel lives (the wait has a limit)."""
        return False

    def wait(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds; True once connected (and bound, on this thread)."""
        if not self._hurried:
            # The cell names it: connecting starts now if it was waiting for a quiet kernel,
            # and the next attempt is now, not at the end of its backoff.
            self._hurried = True
            self._connections.start_pending()
            self._reconnector.retry_now(self._record.name)
        self._reconnector.wait_for(self._record.name, timeout)
        return self._connections.bind_connected(self._record.name)

    def not_ready(self, waited: float) -> SessionError:
        """What the cell fails with: the state, the last error with its time, the command."""
        record, name = self._record, self._record.name
        status = self._reconnector.status(name)
        state = str(status.state) if status is not None else "gone"
        what = (
            f"Connection '{name}' (`{record.variable}`) is not ready after {waited:.0f} s: {state}"
        )
        if status is not None and status.attempt:
            what += f" after {status.attempt} attempt{'s' if status.attempt != 1 else ''}"
        error = (status.error if status is not None else "") or record.stats.last_error
        if error:
            at = status.error_at if status is not None and status.error_at else None
            when = f" at {time.strftime('%H:%M:%S', time.localtime(at))}" if at else ""
            what += f"; last error{when}: {one_line(error, 300)}"
        cause = status.cause if status is not None else None
        limit = self._connections.settings.connection_wait
        hint = (
            f"{_capital(advice(name, cause))}; `c.SessionManager.connection_wait` (now "
            f"{limit:g} s) sets how long a cell waits"
        )
        return ConnectionNotReady(what, target=describe_record(record), hint=hint)


def _capital(text: str) -> str:
    return text[:1].upper() + text[1:]


def _strings(value: Any, out: list[str]) -> None:
    if isinstance(value, str):
        out.append(value)
    elif isinstance(value, Mapping):
        for item in value.values():
            _strings(item, out)
    elif isinstance(value, list | tuple):
        for item in value:
            _strings(item, out)


def _copy(record: ConnectionRecord) -> ConnectionRecord:
    return ConnectionRecord.from_dict(record.name, record.to_dict(), f"connections.{record.name}")


def _sql_alias(record: ConnectionRecord) -> str:
    """The name ``%sql`` knows a jupysql connection by (the magic defaults it to the name)."""
    alias = record.params.get("alias")
    return alias if isinstance(alias, str) and alias else record.name
