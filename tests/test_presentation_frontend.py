"""The state and notice messages the JupyterLab extension gets (presentation/frontend.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ipysession.connections.reconnector import ConnectionState, ConnectionStatus
from ipysession.connections.records import FailureCause
from ipysession.model import ConnectionRecord, ConnectionStats
from ipysession.presentation.base import Level, Notice
from ipysession.presentation.frontend import (
    connection_json,
    forks_json,
    loading_json,
    not_saved_rows,
    notice_message,
    raised_message,
    recent_json,
    restore_counts,
    state_message,
)
from ipysession.session.forks import fork_name
from ipysession.session.notices import NoticeKind, Notices, RaisedNotice
from ipysession.session.reports import RestoreReport, Status


def status(**fields: object) -> Status:
    base: dict[str, object] = {
        "session": "/home/me/work/a.ipynb",
        "root": "/data",
        "key": "file",
        "autosave": True,
        "autosave_interval": 5.0,
        "last_save": None,
        "last_generation": None,
        "last_error": None,
        "pending": False,
        "variables": 2,
        "skipped": [],
        "history": 3,
        "restore": None,
        "disabled": None,
        "session_id": "id1",
    }
    base.update(fields)
    return Status(**base)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("fields", "word"),
    [
        ({}, "new"),
        ({"restore": RestoreReport(session="a", variables=["x"])}, "restored"),
        ({"last_save": 10.0, "restore": RestoreReport(session="a")}, "saved"),
        ({"autosave": False, "last_save": 10.0}, "paused"),
        ({"pending": True, "last_save": 10.0}, "pending"),
        ({"fork_of": "/home/me/work/a.ipynb", "pending": True}, "fork"),
        ({"read_only": True, "fork_of": "x"}, "read-only"),
        ({"last_error": "disk full", "read_only": True}, "error"),
        ({"disabled": "hook errors"}, "error"),
    ],
)
def test_the_state_word_is_the_first_that_holds(fields: dict[str, object], word: str) -> None:
    message = state_message(status(**fields))
    assert message["type"] == "state"
    assert message["state"] == word
    json.dumps(message)  # all JSON: it goes over a comm


def test_restored_counts_items_and_warnings() -> None:
    report = RestoreReport(
        session="a",
        generation=4,
        variables=["x", "y"],
        imports=["np"],
        preferences=["autoreload"],
        skipped=[("gen", "not saved: generator"), ("cwd", "gone")],
        problems=["corrupt: g5"],
    )
    counts = restore_counts(report)
    assert counts is not None
    assert counts["items"] == 4
    assert counts["total"] == 6
    assert counts["variables"] == 2
    assert counts["warnings"] == 3
    assert counts["generation"] == 4
    assert restore_counts(RestoreReport(session="a", found=False)) is None
    assert restore_counts(None) is None


def test_notices_keep_their_level_and_kind_or_get_a_level_from_their_words() -> None:
    notice = notice_message(Notice(("a", "b"), Level.WARNING), NoticeKind.RESTORE)
    assert notice == {"type": "notice", "kind": "restore", "level": "warning", "text": "a\nb"}
    failed = raised_message(
        RaisedNotice("ipysession could not save the session: x", NoticeKind.SAVE)
    )
    assert (failed["level"], failed["kind"]) == ("error", "save")
    created = raised_message(
        RaisedNotice("ipysession created its master key in /k", NoticeKind.KEY)
    )
    assert (created["level"], created["kind"]) == ("info", "key")
    in_use = raised_message(RaisedNotice("ipysession: session 'a' is in use by k1"))
    assert (in_use["level"], in_use["kind"]) == ("warning", "other")


def test_a_notice_raised_by_a_part_of_the_manager_carries_that_parts_kind() -> None:
    notices = Notices()
    seen: list[RaisedNotice] = []
    notices.listener = lambda raised: seen.append(raised) or True
    notices.sink(NoticeKind.CONNECTION)("ipysession: connection 'db' is ready")
    notices.add("ipysession: something else")
    assert [(r.kind, r.text) for r in seen] == [
        (NoticeKind.CONNECTION, "ipysession: connection 'db' is ready"),
        (NoticeKind.OTHER, "ipysession: something else"),
    ]
    assert notices.take() == []  # delivered: nothing waits for a cell
    notices.listener = None
    notices.sink(NoticeKind.KEY)("ipysession: key")
    assert notices.take() == [RaisedNotice("ipysession: key", NoticeKind.KEY)]


PASSWORD = "pw-Zq81-never-shown"


def record(name: str = "db", **fields: object) -> ConnectionRecord:
    values: dict[str, object] = {
        "kind": "sqlalchemy",
        "params": {"url": "postgresql://ada@db.example/prod"},
        "secrets": {"password": PASSWORD},
        "stats": ConnectionStats(created=1.0, last_used=5.0, successes=2, failures=1),
    }
    values.update(fields)
    return ConnectionRecord(name, **values)  # type: ignore[arg-type]


def test_not_saved_rows_split_a_budget_reason_from_its_fix() -> None:
    rows = not_saved_rows(
        [
            (
                "big",
                "numpy.ndarray of 3.0 GiB is over the per-variable limit of 1.0 GiB; "
                "`%config SessionManager.max_variable_bytes = 4 * 1024**3` (4.0 GiB) saves it",
            ),
            ("gen", "generator objects cannot be saved (cannot pickle 'generator' object)"),
        ]
    )
    assert rows[0] == {
        "name": "big",
        "reason": "numpy.ndarray of 3.0 GiB is over the per-variable limit of 1.0 GiB",
        "fix": "`%config SessionManager.max_variable_bytes = 4 * 1024**3` (4.0 GiB) saves it",
    }
    assert rows[1]["reason"].startswith("generator objects cannot be saved")
    assert "`%session replay gen`" in rows[1]["fix"]


def test_a_connection_shows_its_state_and_last_error_never_its_password() -> None:
    failing = record(stats=ConnectionStats(created=1.0, last_error=f"auth failed for {PASSWORD}"))
    status = ConnectionStatus(
        ConnectionState.FAILED,
        f"gave up: password {PASSWORD} rejected",
        error=f"FATAL: password {PASSWORD} rejected",
        error_at=9.0,
        cause=FailureCause.REJECTED,
    )
    data = connection_json(failing, "failed", status)
    assert (data["name"], data["state"], data["kind"]) == ("db", "failed", "sqlalchemy")
    assert data["last_error"].startswith("FATAL: password ")
    assert data["error_at"] == 9.0
    assert data["advice"]
    assert PASSWORD not in json.dumps(data)
    healthy = connection_json(record(), "connected", None)
    assert (healthy["last_error"], healthy["advice"], healthy["error_at"]) == (None, None, None)


def test_recent_connections_say_whether_this_session_has_them() -> None:
    rows = recent_json([record("db"), record("old", stats=ConnectionStats(created=0.5))], {})
    assert [(r["name"], r["state"]) for r in rows] == [
        ("db", "not in this session"),
        ("old", "not in this session"),
    ]
    here = recent_json([record("db")], {"db": "connected"})
    assert here[0]["state"] == "connected"
    assert PASSWORD not in json.dumps(rows + here)


def test_forks_are_those_of_this_session_and_the_session_it_forks() -> None:
    from tests.test_fork_list import summary

    mine = fork_name("a.ipynb", "11111111")
    sibling = fork_name("a.ipynb", "22222222")
    other = fork_name("b.ipynb", "33333333")
    summaries = [summary(n, 10.0) for n in ("a.ipynb", mine, sibling, "b.ipynb", other)]
    listed = forks_json(summaries, {"a.ipynb"}, current="a.ipynb")
    assert [f["name"] for f in listed] == [mine, sibling]
    # From the kernel that saves to `mine`: its parent's other forks, not itself.
    from_fork = forks_json(summaries, {mine, "a.ipynb"}, current=mine)
    assert [f["name"] for f in from_fork] == [sibling]
    assert from_fork[0]["fork_of"] == "a.ipynb"
    assert Path(from_fork[0]["path"]).name


def test_loading_counts_what_is_bound_of_what_went_to_the_background() -> None:
    report = RestoreReport(session="a", loading=["big", "bigger"])
    assert loading_json(status(restore=report)) is None
    loading = loading_json(status(restore=report, loading=[("bigger", "12 of 40 MB")]))
    assert loading == {
        "names": ["bigger"],
        "progress": {"bigger": "12 of 40 MB"},
        "done": 1,
        "total": 2,
    }
    assert state_message(status(restore=report, loading=[("big", "")]))["loading"]["total"] == 2


def test_loading_counts_imports_restored_in_the_background_too() -> None:
    report = RestoreReport(session="a", loading=["df"], importing=["np", "pd"])
    loading = loading_json(status(restore=report, loading=[("pd", "importing pandas")]))
    assert loading is not None
    assert (loading["done"], loading["total"]) == (2, 3)
