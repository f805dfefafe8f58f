"""The live connections of one session: records, their objects, and moving them to the main thread.

:class:`ConnectionSet` is the manager's half of issue "connection persistence". It owns the
session's :class:`~ipysession.model.ConnectionRecord` mapping and one
:class:`~ipysession.connections.reconnector.Reconnector`, and keeps the rule that only the main
thread touches the user namespace: objects that connect on worker threads are queued and bound by
:meth:`settle`, which the manager calls between cells (and before every ``%session`` command).

At restore, :meth:`load` schedules every auto connection and returns at once; they all start
together in the background a quarter of a second later (or at the first cell, if sooner), so
kernel start is neither held up nor slowed by their imports. The first cell waits for whatever is
left of ``reconnect_wait`` (counted from that start); what is not ready by then keeps going and is
bound at a later cell boundary, with a one-line notice.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from ipysession.connections.backends import Liveness, get_backend, liveness, redact_text
from ipysession.connections.reconnector import ConnectionState, Reconnector
from ipysession.connections.records import (
    connect_record,
    describe_record,
    make_record,
    record_success,
    update_record,
)
from ipysession.errors import BackendNotFound, ConnectionSetupError, SessionNotFound
from ipysession.model import ConnectionRecord

__all__ = ["ConnectionSet", "ConnectionSettings"]

log = logging.getLogger("ipysession")

# Reconnection starts this long after a restore, or at the first cell if that comes sooner: its
# imports (SQLAlchemy alone is about 0.35 s of CPU) would otherwise slow the kernel's own start.
_START_DELAY = 0.25

# Secrets shorter than this are redacted from the line that defined them, not from every cell of
# history: a 4-digit port or a short password would otherwise blank out unrelated numbers.
_MIN_HISTORY_SECRET = 8


@dataclass(frozen=True)
class ConnectionSettings:
    wait: float = 1.0
    attempts: int = 3
    backoff: float = 0.5
    timeout: float = 5.0
    heartbeat: float | None = 30.0


class ConnectionSet:
    def __init__(
        self,
        settings: ConnectionSettings,
        *,
        bind: Callable[[str, Any], None],
        unbind: Callable[[str, Any], None],
        notify: Callable[[str], None],
        changed: Callable[[], None] = lambda: None,
    ) -> None:
        self.settings = settings
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
        self._reconnector: Reconnector | None = None

    @property
    def reconnector(self) -> Reconnector:
        with self._lock:
            if self._reconnector is None:
                self._reconnector = Reconnector(
                    on_ready=self._on_ready,
                    on_state=self._on_state,
                    attempts=self.settings.attempts,
                    backoff=self.settings.backoff,
                    timeout=self.settings.timeout,
                    heartbeat=self.settings.heartbeat,
                )
            return self._reconnector

    # --- worker-thread callbacks (never touch the namespace here) ---------------------------

    def _on_ready(self, name: str, obj: Any) -> None:
        self._arrivals.put((name, obj))

    def _on_state(self, name: str, state: ConnectionState, message: str) -> None:
        if state is ConnectionState.FAILED:
            self._notify(
                f"ipysession: connection '{name}' failed: {message}. "
                f"`%session connections` shows it; `%session connect {name} SPEC` updates it."
            )
        elif state is ConnectionState.RETRYING:
            log.info("Connection %s: %s", name, message)

    # --- main thread --------------------------------------------------------------------------

    def load(self, records: Mapping[str, ConnectionRecord]) -> list[str]:
        """Adopt restored records and schedule reconnecting the auto ones; returns their names.

        A restored record replaces one of the same name that is not live in this kernel.
        Reconnection starts shortly after (or at the first cell, whichever is sooner), so its
        imports never compete with the kernel's own start for the interpreter.
        """
        adopted = {n: r for n, r in records.items() if n not in self._bound}
        self.records.update(adopted)
        auto = [r for r in adopted.values() if r.auto]
        if auto:
            with self._lock:
                self._pending.extend(auto)
            timer = threading.Timer(_START_DELAY, self._start_pending)
            timer.daemon = True
            timer.name = "ipysession-reconnect-start"
            self._timer = timer
            timer.start()
        return [r.name for r in auto]

    def _start_pending(self) -> None:
        # Held while starting, so a cell that arrives meanwhile waits for the start to finish
        # instead of collecting before anything was started.
        with self._start_lock:
            with self._lock:
                pending, self._pending = self._pending, []
            if pending:
                self._deadline = time.monotonic() + self.settings.wait
                self.reconnector.start(pending)

    def settle(self) -> list[str]:
        """Bind what has connected since the last call; wait out the restore budget once.

        Returns the names newly bound. Called on the main thread between cells.
        """
        self._start_pending()  # at the first cell at the latest
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
            self._bind_object(name, obj)
            bound.append(name)
            record = self.records.get(name)
            variable = record.variable if record else name
            self._notify(f"ipysession: connection '{name}' is ready, bound to `{variable}`.")
        if bound:
            self._changed()
        return bound

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
        obj = connect_record(record, timeout=self.settings.timeout)
        if existing is not None and existing.variable != record.variable:
            self._unbind(existing.variable, self._bound.pop(name, None))
        self.records[name] = record
        self._bind_object(name, obj)
        self.reconnector.watch(record, obj)
        return record, obj

    def adopt_sql_connections(self, taken: set[str]) -> list[str]:
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
            name = connection_name(alias, engine, taken | set(self.records))
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
        record = self._require(name)
        self.reconnector.disconnect(name)  # closes the live object on this thread
        self._unbind(record.variable, self._bound.pop(name, None))

    def forget(self, name: str) -> ConnectionRecord:
        record = self._require(name)
        self.reconnector.forget(name)
        self._unbind(record.variable, self._bound.pop(name, None))
        del self.records[name]
        self._changed()
        return record

    def ping(self, names: Iterable[str] | None = None) -> dict[str, Liveness]:
        out: dict[str, Liveness] = {}
        for record in self._select(names):
            alive = self.reconnector.ping(record.name)
            try:
                backend = get_backend(record.kind)
            except ConnectionSetupError:
                out[record.name] = Liveness.NO_ANSWER
                continue
            out[record.name] = liveness(backend, self._bound.get(record.name), alive=alive)
        return out

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
        if self._timer is not None:
            self._timer.cancel()
        with self._start_lock, self._lock:
            self._pending = []
        with self._lock:
            reconnector, self._reconnector = self._reconnector, None
        if reconnector is not None:
            reconnector.close(close_objects=True)
        self._bound.clear()


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
