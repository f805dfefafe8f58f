"""Connection records: make and update, history, most recently used first, the table."""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from pathlib import Path
from typing import Any

import pytest

from ipysession.connections.reconnector import ConnectionState
from ipysession.connections.records import (
    connect_record,
    describe_record,
    make_record,
    mru_order,
    record_failure,
    record_success,
    update_record,
)
from ipysession.errors import BackendNotFound, ConnectFailed, InvalidSpec
from ipysession.model import ConnectionRecord, ConnectionStats
from ipysession.presentation import connection_rows
from tests.connections.peers import (
    SECRET,
    factory_record,
    sqlite_record,
    unreachable_kernel,
)


def test_connection_state_values() -> None:
    assert [s.value for s in ConnectionState] == [
        "connecting",
        "connected",
        "retrying",
        "failed",
        "disconnected",
    ]
    assert str(ConnectionState.FAILED) == "failed"
    assert f"{ConnectionState.RETRYING}" == "retrying"
    assert ConnectionState("connected") is ConnectionState.CONNECTED


def test_mru_order() -> None:
    def rec(name: str, last_used: float | None, created: float) -> ConnectionRecord:
        return ConnectionRecord(
            name=name, kind="factory", stats=ConnectionStats(created=created, last_used=last_used)
        )

    records = {
        r.name: r
        for r in [
            rec("old", 100.0, 1.0),
            rec("never-new", None, 50.0),
            rec("recent", 300.0, 2.0),
            rec("never-old", None, 10.0),
            rec("middle", 200.0, 3.0),
        ]
    }
    assert [r.name for r in mru_order(records)] == [
        "recent",
        "middle",
        "old",
        "never-new",
        "never-old",
    ]
    assert mru_order(list(records.values()))[0].name == "recent"


def test_record_success_and_failure() -> None:
    record = ConnectionRecord(name="db", kind="sqlalchemy", secrets={"password": SECRET})
    record_success(record, now=1000.0)
    record_success(record)
    assert record.stats.successes == 2
    assert record.stats.last_used is not None
    assert record.stats.last_used > 1000.0
    record_failure(record, f"login with {SECRET} refused")
    assert record.stats.failures == 1
    assert record.stats.last_error == "login with *** refused"


def test_make_and_update_record_keep_history(tmp_path: Path) -> None:
    record = make_record(
        "db", "sqlalchemy", f"sqlite:///{tmp_path / 'a.db'}", variable="engine", auto=False
    )
    assert (record.name, record.kind, record.variable, record.auto) == (
        "db",
        "sqlalchemy",
        "engine",
        False,
    )
    record_success(record, now=5.0)
    moved = update_record(record, f"sqlite:///{tmp_path / 'b.db'}")
    assert moved.params["url"].endswith("b.db")
    assert (moved.variable, moved.auto, moved.stats.successes, moved.stats.last_used) == (
        "engine",
        False,
        1,
        5.0,
    )
    assert moved.stats is not record.stats
    with pytest.raises(BackendNotFound):
        make_record("x", "no-such-kind", "spec")
    with pytest.raises(InvalidSpec):
        make_record("x", "sqlalchemy", None)


def test_connect_record_updates_history_and_redacts(
    peer: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="ipysession")
    good = factory_record("good", "make", password=SECRET)
    obj = connect_record(good, timeout=5.0)
    assert obj.label == "good"
    assert good.stats.successes == 1
    bad = factory_record("bad", "refuse", password=SECRET)
    with pytest.raises(ConnectFailed) as info:
        connect_record(bad, timeout=5.0)
    assert SECRET not in str(info.value)
    assert "bob:***" in str(info.value)
    assert bad.stats.failures == 1
    assert "bob:***" in (bad.stats.last_error or "")
    assert SECRET not in caplog.text


def test_describe_record_never_raises() -> None:
    broken = ConnectionRecord(name="b", kind="sqlalchemy", params={"url": 42})  # type: ignore[dict-item]
    assert isinstance(describe_record(broken), str)


def test_rows_of_used_failed_and_uninstalled_records(tmp_path: Path) -> None:
    db = sqlite_record("db", tmp_path / "t.db")
    record_success(db, now=time.mktime((2024, 5, 1, 12, 30, 0, 0, 0, -1)))
    kernel = unreachable_kernel("remote")
    record_failure(kernel, f"no heartbeat from key {SECRET}")
    ghost = ConnectionRecord(name="ghost", kind="not-installed", secrets={"token": SECRET})
    rows = connection_rows(
        {r.name: r for r in (kernel, db, ghost)},
        {"db": ConnectionState.CONNECTED, "remote": "failed"},
    )
    # Used ones first; then never-used ones, newest created first.
    assert [r.name for r in rows] == ["db", "ghost", "remote"]
    db_row, ghost_row, kernel_row = rows
    assert db_row.target.startswith("sqlite:///file")
    assert db_row.target.endswith("t.db?uri=true&token=***")
    assert db_row.cells()[3:] == ("connected", "db", "2024-05-01 12:30:00", "1", "0", "")
    assert kernel_row.state == "failed"
    assert kernel_row.last_error == "no heartbeat from key ***"
    assert kernel_row.cells()[5] == "never"
    assert ghost_row.target == "not-installed (backend not installed)"
    assert ghost_row.state == "disconnected"
    assert SECRET not in json.dumps([dataclasses.asdict(row) for row in rows])


# --- causes, advice, one line (issue 13) --------------------------------------------------------


def test_failure_cause_sorts_refused_credentials_from_a_server_that_is_down() -> None:
    from ipysession.connections.records import FailureCause, failure_cause
    from ipysession.errors import BackendNotFound, InvalidSpec

    down = ConnectionRefusedError("[Errno 111] Connection refused")
    assert failure_cause(down) is FailureCause.UNREACHABLE
    assert failure_cause(TimeoutError("timed out")) is FailureCause.UNREACHABLE
    pg = RuntimeError('connection failed: FATAL:  password authentication failed for user "bob"')
    assert failure_cause(pg) is FailureCause.REJECTED
    assert failure_cause(RuntimeError('FATAL:  database "sales" does not exist')) is (
        FailureCause.REJECTED
    )
    assert failure_cause(RuntimeError("HTTP 403: Forbidden")) is FailureCause.REJECTED
    assert failure_cause(InvalidSpec("bad")) is FailureCause.REJECTED
    assert failure_cause(BackendNotFound("none")) is FailureCause.REJECTED


def test_advice_fits_the_cause() -> None:
    from ipysession.connections.records import FailureCause, advice

    assert "`%session reconnect db` tries now" in advice("db", FailureCause.UNREACHABLE)
    assert "%session connect db SPEC" not in advice("db", FailureCause.UNREACHABLE)
    rejected = advice("db", FailureCause.REJECTED)
    assert "`%session connect db SPEC`" in rejected
    assert "reconnect" not in rejected


def test_one_line_folds_psycopg_style_errors() -> None:
    from ipysession.connections.records import one_line

    text = 'connection failed:\n\tFATAL:  password authentication failed\n\tfor user "bob"'
    assert (
        one_line(text) == 'connection failed: FATAL: password authentication failed for user "bob"'
    )
    assert one_line("x" * 500, 20) == "x" * 17 + "..."
    assert one_line(None) == ""


def test_success_clears_the_last_error_and_the_disconnected_mark() -> None:
    from ipysession.connections.records import record_failure, record_success

    record = make_record("db", "factory", "m:f")
    record_failure(record, "down", now=100.0)
    record_failure(record, "still down", now=110.0, count=False)
    assert (record.stats.failures, record.stats.last_error) == (1, "still down")
    assert record.stats.last_error_at == 110.0
    record.disconnected = True
    record_success(record)
    assert record.stats.last_error is None
    assert record.stats.last_error_at is None
    assert not record.disconnected
    again = type(record).from_dict("db", record.to_dict(), "db")
    assert again.disconnected is False
    assert again.stats.last_error_at is None
