"""The ConnectionSet: workers connect, only the main thread binds (at settle()), secrets are
redacted from the history we keep, and the table shows states without secrets.

Real peers: the factory backend importing a client module from ``tmp_path`` (see ``peers.py``).
"""

from __future__ import annotations

import dataclasses
import json
import threading
from typing import Any

import pytest

from ipysession.connections import ConnectionSet, ConnectionSettings
from ipysession.errors import ConnectFailed, SessionNotFound
from ipysession.presentation import connection_rows
from tests.builders import wait_for
from tests.connections.peers import SECRET, factory_record

SETTINGS = ConnectionSettings(wait=0.0, attempts=1, backoff=0.01, timeout=5.0, heartbeat=None)


def on_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


class Namespace:
    """Stands for the user namespace: records each bind and unbind, and on which thread."""

    def __init__(self) -> None:
        self.values: dict[str, Any] = {}
        self.calls: list[tuple[str, str, bool]] = []
        self.notices: list[str] = []

    def bind(self, variable: str, obj: Any) -> None:
        self.calls.append(("bind", variable, on_main_thread()))
        self.values[variable] = obj

    def unbind(self, variable: str, obj: Any) -> None:
        self.calls.append(
            ("unbind", variable, threading.current_thread() is threading.main_thread())
        )
        self.values.pop(variable, None)

    def notify(self, text: str) -> None:
        self.notices.append(text)


@pytest.fixture
def namespace() -> Namespace:
    return Namespace()


@pytest.fixture
def connections(peer: Any, namespace: Namespace) -> Any:
    live = ConnectionSet(
        SETTINGS, bind=namespace.bind, unbind=namespace.unbind, notify=namespace.notify
    )
    yield live
    live.close()


def test_restored_connections_are_bound_only_at_settle_on_the_main_thread(
    connections: ConnectionSet, namespace: Namespace, peer: Any
) -> None:
    records = {"a": factory_record("a", "make"), "b": factory_record("b", "make")}
    records["b"].variable = "b_client"
    assert sorted(connections.load(records)) == ["a", "b"]
    wait_for(
        lambda: connections.states() == {"a": "connected", "b": "connected"},
        "both connected on their worker threads",
    )
    assert namespace.calls == []  # connected, but nothing touched the namespace yet
    assert sorted(connections.settle()) == ["a", "b"]
    assert sorted(namespace.calls) == [("bind", "a", True), ("bind", "b_client", True)]
    assert namespace.values["a"].label == "a"
    assert connections.variables() == {"a", "b_client"}
    assert connections.settle() == []  # each object is bound once


def test_a_connection_that_arrives_later_is_bound_at_a_later_settle_with_a_notice(
    connections: ConnectionSet, namespace: Namespace, peer: Any
) -> None:
    connections.load({"late": factory_record("late", "slow", seconds=0.3)})
    assert connections.settle() == []  # the restore budget (0 s) ran out first
    wait_for(lambda: connections.states()["late"] == "connected", "late is connected")
    assert connections.settle() == ["late"]
    assert namespace.calls == [("bind", "late", True)]
    assert namespace.notices == ["ipysession: connection 'late' is ready, bound to `late`."]


def test_connect_now_binds_on_this_thread_and_disconnect_unbinds(
    connections: ConnectionSet, namespace: Namespace, peer: Any
) -> None:
    record, obj = connections.connect(
        "svc", "factory", "ipys_conn_peer:make", {"kwargs": {"label": "svc"}}, variable="client"
    )
    assert record.variable == "client"
    assert namespace.values == {"client": obj}
    assert connections.states() == {"svc": "connected"}
    connections.disconnect("svc")
    assert obj.closed
    assert namespace.calls[-1] == ("unbind", "client", True)
    assert connections.states() == {"svc": "disconnected"}
    assert connections.forget("svc").name == "svc"
    with pytest.raises(SessionNotFound, match="No connection named 'svc'"):
        connections.describe("svc")
    connections.close()
    connections.close()  # safe twice


def test_secrets_are_redacted_from_history_lines(connections: ConnectionSet, peer: Any) -> None:
    short = "pw1"
    connections.connect(
        "db",
        "factory",
        "ipys_conn_peer:make_with_secrets",
        {"kwargs": {"label": "db"}, "secrets": {"password": SECRET, "pin": short}},
    )
    # The line that defined the connection loses every secret, short ones included.
    line = f"%session connect db factory peer:make_with_secrets password={SECRET} pin={short}"
    assert connections.redact(line) == (
        "%session connect db factory peer:make_with_secrets password=*** pin=***"
    )
    # Any other cell loses the long secrets; short ones stay, or every "pw1" would be blanked.
    assert connections.redact(f"login('{SECRET}')  # pw1") == "login('***')  # pw1"
    assert connections.redact("nothing secret here") == "nothing secret here"


def test_the_table_shows_states_and_errors_without_secrets(
    connections: ConnectionSet, namespace: Namespace, peer: Any
) -> None:
    connections.connect("ok", "factory", "ipys_conn_peer:make", {"kwargs": {"label": "ok"}})
    with pytest.raises(ConnectFailed):
        connections.connect(
            "bad",
            "factory",
            "ipys_conn_peer:refuse",
            {"kwargs": {"label": "bad"}, "secrets": {"password": SECRET}},
        )
    assert "bad" not in connections.records  # a failed connect stores nothing
    connections.load({"bad": factory_record("bad", "refuse", password=SECRET)})
    connections.settle()
    # A refused connection is not given up: it goes on healing in the background.
    wait_for(lambda: connections.snapshot()["bad"].stats.failures == 1, "bad has failed once")
    rows = {row.name: row for row in connection_rows(connections.snapshot(), connections.states())}
    assert rows["ok"].state == "connected"
    assert rows["ok"].successes == 1
    assert rows["bad"].state == "retrying"
    assert "bob:***" in rows["bad"].last_error
    assert SECRET not in json.dumps([dataclasses.asdict(row) for row in rows.values()])
    assert SECRET not in connections.describe("bad")
    wait_for(lambda: bool(namespace.notices), "the failure was reported")
    assert "connection 'bad' could not connect after 1 attempt" in namespace.notices[0]
    # The server refused the connection (it did not refuse the credentials): reconnect.
    assert "`%session reconnect bad` tries now" in namespace.notices[0]
    assert SECRET not in namespace.notices[0]


def test_a_connection_made_but_not_bound_yet_is_still_arriving(
    connections: ConnectionSet, namespace: Namespace, peer: Any
) -> None:
    """The race a first cell used to lose: connected after this cell's settle, so neither bound
    nor connecting. It counts as arriving, and its wait binds it on this thread at once."""
    connections.load({"a": factory_record("a", "slow", seconds=0.3)})
    assert connections.settle() == []  # the cell's settle came first...
    wait_for(lambda: connections.states() == {"a": "connected"}, "a connected on its worker")
    assert namespace.calls == []  # ...and the connection completed right after it
    arriving = connections.arrivals.arriving()
    assert [arrival.name for arrival in arriving] == ["a"]
    assert not arriving[0].is_ready()
    assert arriving[0].wait(5.0)
    assert arriving[0].is_ready()
    assert namespace.values["a"].label == "a"
    assert connections.arrivals.arriving() == []
    assert connections.settle() == []  # bound once, by the wait


def test_restored_connections_wait_for_a_quiet_kernel_unless_a_cell_names_one(
    connections: ConnectionSet, namespace: Namespace, peer: Any
) -> None:
    """Their imports and handshakes would slow the cells a restarted kernel runs first: they
    start when no cell has run for a moment, or at once for a cell that names one."""
    connections.load({"db": factory_record("db", "make"), "dash": factory_record("dash", "make")})
    connections.cell_starting()  # the first cell, which names neither
    assert connections.states() == {"db": "connecting", "dash": "connecting"}
    # However long the cell runs, nothing connects under it (the restore's quiet timer was
    # cancelled by the cell).
    threading.Event().wait(1.5)
    assert peer.CALLS == {}
    assert {r.name for r in connections.waiting_to_start()} == {"db", "dash"}

    # The next cell names db: its arrival starts connecting at once and binds it.
    [arrival] = [a for a in connections.arrivals.arriving() if a.name == "db"]
    assert arrival.progress() == "starting"
    assert arrival.wait(30.0)
    assert namespace.values["db"].label == "db"
    assert connections.waiting_to_start() == []


def test_a_quiet_kernel_starts_its_restored_connections_by_itself(
    connections: ConnectionSet, namespace: Namespace, peer: Any
) -> None:
    connections.load({"db": factory_record("db", "make")})
    connections.cell_starting()
    connections.cell_finished()  # quiet from now on
    wait_for(lambda: connections.states()["db"] == "connected", "db is connected")
    assert connections.settle() == ["db"]
    assert namespace.notices == ["ipysession: connection 'db' is ready, bound to `db`."]


def test_reconnect_wait_makes_the_first_cell_wait_for_every_connection(
    peer: Any, namespace: Namespace
) -> None:
    settings = dataclasses.replace(SETTINGS, wait=30.0)
    live = ConnectionSet(
        settings, bind=namespace.bind, unbind=namespace.unbind, notify=namespace.notify
    )
    try:
        live.load({"db": factory_record("db", "slow", seconds=0.2)})
        live.cell_starting()
        assert live.settle() == ["db"]
        assert namespace.values["db"].label == "db"
    finally:
        live.close()
