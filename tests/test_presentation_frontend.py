"""The state and notice messages the JupyterLab extension gets (presentation/frontend.py)."""

from __future__ import annotations

import json

import pytest

from ipysession.presentation.base import Level, Notice
from ipysession.presentation.frontend import (
    notice_message,
    raised_message,
    restore_counts,
    state_message,
)
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
