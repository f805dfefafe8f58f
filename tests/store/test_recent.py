"""The user-wide recent-connections list: sealed, most recent first, at most 20, and an
unreadable list is an empty one."""

from __future__ import annotations

from pathlib import Path

from ipysession.connections.records import make_record, record_failure
from ipysession.keys.crypto import MasterKey
from ipysession.store.recent import LIMIT, RECENT_FILE, RecentConnections
from tests.builders import KEY

SECRET = "recent-pw-3b9e71c2"


def test_records_come_back_sealed_most_recent_first_and_bounded(tmp_path: Path) -> None:
    recent = RecentConnections(tmp_path, KEY)
    assert recent.records() == []
    for n in range(LIMIT + 5):
        recent.remember(make_record(f"c{n}", "sqlalchemy", f"sqlite:///{n}.db?token={SECRET}"))
    again = make_record("c3", "sqlalchemy", f"postgresql://bob:{SECRET}@db/sales")
    record_failure(again, "OperationalError: connection refused")
    recent.remember(again)
    names = [r.name for r in recent.records()]
    assert len(names) == LIMIT
    assert names[0] == "c3"
    assert names[1] == f"c{LIMIT + 4}"
    assert "c0" not in names  # the oldest fell off
    got = recent.get("c3")
    assert got is not None
    assert got.secrets == again.secrets  # the secret comes back (for a connect), sealed on disk
    assert got.stats.last_error == "OperationalError: connection refused"
    assert SECRET.encode() not in (tmp_path / RECENT_FILE).read_bytes()


def test_a_list_sealed_with_another_key_counts_as_empty_and_is_replaced(tmp_path: Path) -> None:
    RecentConnections(tmp_path, KEY).remember(make_record("old", "factory", "m:f"))
    other = RecentConnections(tmp_path, MasterKey(b"another key, 32 bytes long......"))
    assert other.records() == []
    other.remember(make_record("new", "factory", "m:g"))
    assert [r.name for r in other.records()] == ["new"]
