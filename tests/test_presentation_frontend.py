"""The state and notice messages the JupyterLab extension gets (presentation/frontend.py)."""

from __future__ import annotations

import json

import pytest

from ipysession.presentation.base import Level, Notice
from ipysession.presentation.frontend import notice_message, restore_counts, state_message
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


def test_notices_keep_their_level_or_get_one_from_their_words() -> None:
    notice = notice_message(Notice(("a", "b"), Level.WARNING), kind="restore")
    assert notice == {"type": "notice", "kind": "restore", "level": "warning", "text": "a\nb"}
    assert notice_message("ipysession could not save the session: x")["level"] == "error"
    assert notice_message("ipysession created its master key in /k")["level"] == "info"
    assert notice_message("ipysession: session 'a' is in use by k1")["level"] == "warning"
