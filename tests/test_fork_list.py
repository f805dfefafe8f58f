"""``list`` (the magic's and the command line's): forks under the session they fork, with their
age, so a user sees at a glance which work a fork holds and how old it is."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ipysession.presentation import sessions_table
from ipysession.presentation.stored import format_age, session_rows
from ipysession.session.forks import fork_name
from ipysession.store import SessionSummary

NOW = 1_700_000_000.0


def summary(name: str, updated: float) -> SessionSummary:
    values: dict[str, Any] = {
        "name": name,
        "slug": name.replace(" ", "-"),
        "path": Path("/store/sessions") / name.replace(" ", "-"),
        "updated": updated,
        "size_bytes": 1536,
        "generations": 3,
        "variables": 5,
        "skipped": 0,
        "connections": 0,
        "newest_readable": 3,
    }
    return SessionSummary(**values)


def test_forks_follow_their_parent_with_their_age() -> None:
    fork = fork_name("a.ipynb", "1a2b3c4d-0000")
    fork_of_fork = fork_name(fork, "99999999")
    orphan = fork_name("gone.ipynb", "5e5e5e5e")
    rows = session_rows(
        [
            summary(fork, NOW - 3 * 3600),
            summary("b.ipynb", NOW - 60),
            summary(orphan, NOW - 2 * 86400),
            summary("a.ipynb", NOW - 30),
            summary(fork_of_fork, NOW - 90),
        ],
        now=NOW,
    )
    assert [r.summary.name for r in rows] == [
        "b.ipynb",
        orphan,  # its parent is not listed: it stays a row of its own, by its full name
        "a.ipynb",
        fork,
        fork_of_fork,
    ]
    text = sessions_table(rows, empty="none").text()
    assert f"  └ {fork}, 3 h old" in text
    assert f"  └ {fork_of_fork}, 1 min old" in text
    assert rows[1].cells()[0] == orphan
    assert rows[3].as_json()["fork_of"] == "a.ipynb"
    assert rows[3].as_json()["age_seconds"] == 3 * 3600
    assert rows[1].as_json()["fork_of"] == "gone.ipynb"
    assert rows[0].as_json()["fork_of"] is None


def test_ages_read_in_the_largest_whole_unit() -> None:
    assert format_age(45) == "45 s"
    assert format_age(12 * 60 + 5) == "12 min"
    assert format_age(3 * 3600) == "3 h"
    assert format_age(2 * 86400 + 5) == "2 d"
    assert format_age(-5) == "0 s"  # a clock that moved back never reads as negative
