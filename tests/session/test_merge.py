"""Merging two versions of a session saved concurrently (pure functions, no files)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from ipysession.model import (
    ConnectionRecord,
    ConnectionStats,
    HistoryEntry,
    ImportRecord,
    Preferences,
    Session,
    VariableRecord,
    WriterInfo,
)
from ipysession.session.merge import MergeDetails, history_key, merge_sessions


def var(name: str, value: bytes) -> VariableRecord:
    return VariableRecord(name, "bytes", len(value), encoding="pickle", data=value)


def conn(name: str, *, last_used: float | None, created: float = 1.0) -> ConnectionRecord:
    return ConnectionRecord(
        name=name,
        kind="sqlalchemy",
        params={"url": f"sqlite:///{name}-{last_used}.db"},
        stats=ConnectionStats(created=created, last_used=last_used),
    )


def test_history_is_the_union_ordered_by_time_without_duplicates() -> None:
    shared = HistoryEntry("a = 1", 1, 10.0, run_id="r0")
    theirs = Session(
        "nb",
        history=[shared, HistoryEntry("b = 2", 1, 30.0, run_id="rB")],
    )
    ours = Session(
        "nb",
        history=[shared, HistoryEntry("c = 3", 1, 20.0, run_id="rA")],
    )
    result = merge_sessions(theirs, ours)
    assert [e.source for e in result.session.history] == ["a = 1", "c = 3", "b = 2"]
    assert result.details.history_added == 1
    # Neither input changed.
    assert len(theirs.history) == 2
    assert len(ours.history) == 2


def test_history_cap_drops_the_oldest() -> None:
    theirs = Session(
        "nb", history=[HistoryEntry(f"t{i}", i, float(i), run_id="t") for i in range(5)]
    )
    ours = Session("nb", history=[HistoryEntry(f"o{i}", i, i + 0.5, run_id="o") for i in range(5)])
    result = merge_sessions(theirs, ours, max_history=4)
    assert [e.source for e in result.session.history] == ["t3", "o3", "t4", "o4"]
    assert result.details.dropped_history == 6
    assert merge_sessions(theirs, ours, max_history=0).session.history == []


def test_variables_last_writer_wins_and_theirs_only_are_kept() -> None:
    theirs = Session("nb", variables={"x": var("x", b"theirs"), "only_theirs": var("t", b"1")})
    ours = Session("nb", variables={"x": var("x", b"ours"), "only_ours": var("o", b"2")})
    result = merge_sessions(theirs, ours)
    variables = result.session.variables
    assert variables["x"].data == b"ours"
    assert set(variables) == {"x", "only_theirs", "only_ours"}
    assert result.details.variables_kept == ("only_theirs",)
    assert result.details.variables_overridden == ("x",)
    # The same value on both sides is not an override.
    same = merge_sessions(ours, ours)
    assert same.details.variables_overridden == ()


def test_imports_union_and_a_name_is_one_kind() -> None:
    theirs = Session(
        "nb",
        imports=[ImportRecord("np", "numpy"), ImportRecord("pd", "pandas")],
        variables={"j": var("j", b"value")},
    )
    ours = Session(
        "nb",
        imports=[ImportRecord("np", "numpy"), ImportRecord("j", "json")],
        variables={"pd": var("pd", b"not pandas")},
    )
    result = merge_sessions(theirs, ours)
    assert [i.name for i in result.session.imports] == ["np", "j"]
    assert set(result.session.variables) == {"pd"}
    assert result.details.imports_added == ()
    added = merge_sessions(theirs, Session("nb"))
    assert [i.name for i in added.session.imports] == ["np", "pd"]
    assert added.details.imports_added == ("np", "pd")


def test_every_submodule_import_of_a_name_only_they_bind_is_kept() -> None:
    theirs = Session(
        "nb",
        imports=[ImportRecord("scipy", "scipy.stats"), ImportRecord("scipy", "scipy.optimize")],
    )
    added = merge_sessions(theirs, Session("nb"))
    assert [i.module for i in added.session.imports] == ["scipy.stats", "scipy.optimize"]
    assert added.details.imports_added == ("scipy",)


def test_connections_union_with_the_most_recently_used_winning() -> None:
    theirs = Session(
        "nb",
        connections={
            "db": conn("db", last_used=200.0),
            "old": conn("old", last_used=50.0),
            "only_theirs": conn("only_theirs", last_used=None, created=5.0),
        },
    )
    ours = Session(
        "nb",
        connections={"db": conn("db", last_used=100.0), "old": conn("old", last_used=60.0)},
    )
    result = merge_sessions(theirs, ours)
    connections = result.session.connections
    assert connections["db"] is theirs.connections["db"]
    assert connections["old"] is ours.connections["old"]
    assert connections["only_theirs"] is theirs.connections["only_theirs"]
    assert set(result.details.connections_taken) == {"db", "only_theirs"}
    # A tie goes to ours.
    tie = merge_sessions(
        Session("nb", connections={"db": conn("db", last_used=1.0)}),
        Session("nb", connections={"db": conn("db", last_used=1.0)}),
    )
    assert tie.details.connections_taken == ()


def test_preferences_cwd_layout_and_writer_are_ours_extras_are_kept() -> None:
    theirs = Session(
        "nb",
        created=5.0,
        updated=50.0,
        writer=WriterInfo(run_id="them"),
        preferences=Preferences(magics={"precision": "2"}),
        cwd="/theirs",
        layout={"theirs": True},
        extra={"future_field": 1, "both": "theirs"},
    )
    ours = Session(
        "nb",
        created=7.0,
        updated=40.0,
        writer=WriterInfo(run_id="us"),
        preferences=Preferences(magics={"precision": "3"}),
        cwd="/ours",
        layout={"ours": True},
        extra={"both": "ours"},
    )
    merged = merge_sessions(theirs, ours).session
    assert merged.preferences.magics == {"precision": "3"}
    assert merged.cwd == "/ours"
    assert merged.layout == {"ours": True}
    assert merged.writer.run_id == "us"
    assert merged.extra == {"future_field": 1, "both": "ours"}
    assert merged.created == 5.0
    assert merged.updated == 50.0
    assert merge_sessions(Session("nb", created=0.0), ours).session.created == 7.0


def test_summary_names_what_came_from_the_other_writer() -> None:
    details = MergeDetails(
        history_added=2,
        variables_kept=("b",),
        variables_overridden=("x",),
        imports_added=("np",),
        connections_taken=("db",),
        dropped_history=1,
    )
    text = details.summary()
    for part in ("2 history cell", "variable(s) b", "import(s) np", "connection(s) db", "x", "1"):
        assert part in text
    assert "nothing new" in MergeDetails().summary()


entries = st.builds(
    HistoryEntry,
    source=st.text(max_size=5),
    execution_count=st.integers(1, 5),
    time=st.floats(0, 100, allow_nan=False),
    run_id=st.sampled_from(["a", "b", "c"]),
)


@given(st.lists(entries, max_size=15), st.lists(entries, max_size=15))
def test_no_history_entry_of_either_side_is_lost(
    theirs: list[HistoryEntry], ours: list[HistoryEntry]
) -> None:
    merged = merge_sessions(Session("nb", history=theirs), Session("nb", history=ours))
    keys = [history_key(e) for e in merged.session.history]
    assert len(keys) == len(set(keys))
    assert set(keys) == {history_key(e) for e in theirs + ours}
    times = [e.time for e in merged.session.history]
    assert times == sorted(times)
    # Merging again with either side changes nothing (what the next writer will do).
    again = merge_sessions(Session("nb", history=theirs), merged.session).session
    assert [history_key(e) for e in again.history] == keys
