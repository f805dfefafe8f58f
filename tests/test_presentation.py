"""The views both faces show, built from plain records: no shell, no store on disk."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from ipysession.errors import FileProblem, ProblemKind
from ipysession.model import ConnectionRecord, ConnectionStats
from ipysession.presentation import (
    SESSION_HEADERS,
    SNAPSHOT_HEADERS,
    State,
    Table,
    connection_rows,
    restore_notice,
    save_notice,
    session_rows,
    sessions_table,
    show_view,
    snapshot_rows,
    status_view,
    text_table,
)
from ipysession.session.lease import LeaseHolder
from ipysession.session.reports import RestoreReport, SaveReport, Status
from ipysession.store import CheckpointInfo, GenerationInfo, SessionSummary
from tests.builders import CONN_SECRET, ENV_SECRET, make_session

PATH = Path("/store/sessions/nb-1a2b")


def summary(**fields: Any) -> SessionSummary:
    values: dict[str, Any] = {
        "name": "nb",
        "slug": "nb-1a2b",
        "path": PATH,
        "updated": 1_700_000_000.0,
        "size_bytes": 1536,
        "generations": 3,
        "variables": 5,
        "skipped": 2,
        "connections": 1,
        "newest_readable": 3,
    }
    return SessionSummary(**{**values, **fields})


def problem(kind: ProblemKind) -> FileProblem:
    return FileProblem(PATH / "gen-3.ipys", kind, f"the file is {kind}")


def status(**fields: Any) -> Status:
    values: dict[str, Any] = {
        "session": "nb",
        "root": "/store",
        "key": "file",
        "autosave": True,
        "autosave_interval": 2.0,
        "last_save": None,
        "last_generation": None,
        "last_error": None,
        "pending": False,
        "variables": 5,
        "skipped": [("g", "generator objects cannot be saved"), ("lock", "TypeError: no")],
        "history": 3,
        "restore": None,
        "disabled": None,
    }
    return Status(**{**values, **fields})


# --- state words and tables ---------------------------------------------------------------------


@pytest.mark.parametrize("kind", list(ProblemKind))
def test_a_file_problem_reads_as_the_word_the_json_has_always_used(kind: ProblemKind) -> None:
    state = State.of_file(problem(kind))
    assert str(state) == kind.value
    assert State.of_file(None) is State.OK


def test_text_table_pads_columns_and_drops_trailing_spaces() -> None:
    text = text_table(["name", "n"], [["a", 1], ["long name", 22]], indent="  ")
    assert text.splitlines() == [
        "  name       n",
        "  ---------  --",
        "  a          1",
        "  long name  22",
    ]


def test_an_empty_table_says_so_and_notes_follow_rows() -> None:
    assert Table(("a",), (), "Nothing here.", ("a note",)).text() == "Nothing here."
    assert Table(("a",), (("x",),), "-", ("a note",)).text().endswith("x\n\na note")


# --- list ---------------------------------------------------------------------------------------


def test_session_row_counts_saved_and_skipped_variables() -> None:
    [row] = session_rows([summary()], current="nb")
    cells = dict(zip(SESSION_HEADERS, row.cells(), strict=True))
    assert cells["session"] == "nb (this kernel)"
    assert (cells["variables"], cells["skipped"], cells["state"]) == ("5", "2", "ok")
    assert cells["size"] == "1.5 KiB"
    doc = row.as_json()
    assert (doc["variables"], doc["skipped"], doc["state"], doc["problem"]) == (5, 2, "ok", None)


def test_a_session_that_does_not_read_is_named_by_its_slug() -> None:
    unreadable = summary(name=None, newest_readable=None, problem=problem(ProblemKind.WRONG_KEY))
    [row] = session_rows([unreadable], current="nb")
    cells = dict(zip(SESSION_HEADERS, row.cells(), strict=True))
    assert cells["session"] == "? (nb-1a2b)"
    assert (cells["variables"], cells["skipped"], cells["connections"]) == ("?", "?", "?")
    assert cells["state"] == "wrong-key"
    assert row.as_json()["problem"]["kind"] == "wrong-key"
    assert "ipysession doctor" in sessions_table([row], empty="-").text()


def test_a_session_whose_newest_generation_is_corrupt_says_where_it_falls_back() -> None:
    damaged = summary(newest_readable=2, problem=problem(ProblemKind.CORRUPT))
    [row] = session_rows([damaged])
    assert row.state is State.CORRUPT
    assert row.cells()[-1] == "corrupt (falls back to generation 2)"
    assert row.as_json()["state"] == "corrupt"  # the text starts with the JSON's word


# --- snapshots ----------------------------------------------------------------------------------


def test_snapshot_rows_generations_then_checkpoints() -> None:
    generations = [
        GenerationInfo(2, PATH / "gen-2.ipys", 100, 2.0, 2.5, 4, 5, skipped=2),
        GenerationInfo(1, PATH / "gen-1.ipys", 90, 1.0, writer_run_id="9f8e7d6c5b4a3210"),
        GenerationInfo(3, PATH / "gen-3.ipys", 9, 3.0, problem=problem(ProblemKind.CORRUPT)),
    ]
    checkpoints = [CheckpointInfo("before", PATH / "before.ipys", 80, 1.5, 1.6, 3, 4, skipped=0)]
    rows = snapshot_rows(generations, checkpoints)
    table = [dict(zip(SNAPSHOT_HEADERS, row.cells(), strict=True)) for row in rows]
    assert [t["snapshot"] for t in table] == [
        "generation 2",
        "generation 1",
        "generation 3",
        "checkpoint before",
    ]
    assert (table[0]["variables"], table[0]["skipped"], table[0]["state"]) == ("5", "2", "ok")
    assert table[1]["written by"] == "run 9f8e7d6c"  # no host recorded: the run that wrote it
    assert (table[2]["cells"], table[2]["variables"], table[2]["state"]) == ("?", "?", "corrupt")
    assert rows[3].as_json()["checkpoint"] == "before"
    assert rows[3].as_json()["generation"] is None


# --- show ---------------------------------------------------------------------------------------


def test_show_view_redacts_and_counts_like_list() -> None:
    session = make_session("nb", complete=True)
    view = show_view(session, generation=2, path=PATH / "gen-2.ipys")
    text = view.text()
    rendered = text + json.dumps(view.document)
    assert CONN_SECRET not in rendered
    assert ENV_SECRET not in rendered
    assert "API_TOKEN=***" in text
    assert "Variables (1 saved, 1 skipped)" in text
    assert "skipped: open file handles are not saved" in text
    assert [v["state"] for v in view.document["variables"]] == ["saved", "skipped"]


# --- connections --------------------------------------------------------------------------------


def test_connection_rows_most_recently_used_first_without_secrets() -> None:
    records = {
        "never": ConnectionRecord(
            "never", "jupyter", params={"kernel": "k1"}, stats=ConnectionStats(created=5.0)
        ),
        "recent": ConnectionRecord(
            "recent",
            "sqlalchemy",
            params={"url": "postgresql://ada@db/prod"},
            secrets={"password": CONN_SECRET},
            stats=ConnectionStats(created=1.0, last_used=9.0, successes=2, failures=1),
        ),
    }
    rows = connection_rows(records, {"recent": "connected"})
    assert [r.name for r in rows] == ["recent", "never"]
    assert [r.state for r in rows] == ["connected", "disconnected"]
    assert CONN_SECRET not in repr([r.cells() for r in rows])


# --- status, restore, save ----------------------------------------------------------------------


def test_status_view_counts_the_same_way_as_list() -> None:
    view = status_view(status())
    assert (view.state, view.variables, view.skipped) == (State.OK, 5, 2)
    assert "State:     ok" in view.notice.lines
    assert "Captured:  5 variables, 2 skipped, 3 history cells" in view.notice.lines
    assert "  g: generator objects cannot be saved" in view.notice.lines


@pytest.mark.parametrize(
    ("fields", "state"),
    [
        ({"read_only": True}, State.READ_ONLY),
        ({"fork_of": "nb"}, State.FORK),
        ({"lease_holder": LeaseHolder("other-host", 7, kernel_id="k2")}, State.IN_USE),
        (
            {"lease_holder": LeaseHolder("here", 1, kernel_id="k1"), "lease_ours": True},
            State.OK,
        ),
    ],
)
def test_status_view_sharing_states(fields: dict[str, Any], state: State) -> None:
    view = status_view(status(**fields))
    assert view.state is state
    assert f"State:     {state}" in view.notice.lines


def test_restore_and_save_notices_list_what_was_skipped() -> None:
    report = RestoreReport("nb", generation=3, variables=["a"], skipped=[("g", "not saved")])
    notice = restore_notice(report, {})
    assert notice.lines[0].startswith("ipysession: restored 'nb' (generation 3): 1 variable, ")
    assert "  g: not saved" in notice.lines
    assert notice.level.value == "warning"

    moved = RestoreReport(
        "nb",
        generation=3,
        variables=["model"],
        placed=[("model", "1.0 GiB of tensors saved on cuda:0, restored on cpu: no cuda:0 here")],
    )
    notice = restore_notice(moved, {})
    assert notice.level.value == "warning"
    assert notice.lines[1].startswith("Restored on another device (1; move them with .to(device)")
    assert "SessionManager.device_map" in notice.lines[1]
    assert notice.lines[2] == (
        "  model: 1.0 GiB of tensors saved on cuda:0, restored on cpu: no cuda:0 here"
    )
    assert notice.lines[-1] == "Run `%session status` to see this again."

    saved = save_notice(SaveReport("nb", 4, None, 5, [("g", "not saved"), ("h", "no")]))
    assert saved.lines[0] == "ipysession: saved 'nb' (generation 4): 5 variables, 2 skipped"
    assert restore_notice(RestoreReport("nb", found=False)).lines == (
        "ipysession: no saved session 'nb' yet.",
    )


# --- values loading in the background (issue 15) -----------------------------------------------


def test_status_lists_what_is_still_loading_and_the_summary_counts_it() -> None:
    view = status_view(
        status(loading=[("df", "loading, 410.0 MiB of 1.1 GiB read"), ("emb", "queued, 2.0 GiB")])
    )
    lines = view.notice.lines
    assert any(
        line.startswith("Loading:")
        and "df (loading, 410.0 MiB of 1.1 GiB read); emb (queued, 2.0 GiB)" in line
        and "a cell that names one waits for it" in line
        for line in lines
    )
    assert not any(line.startswith("Loading:") for line in status_view(status()).notice.lines)
    report = RestoreReport(session="nb", generation=3, variables=["a"], loading=["df", "emb"])
    assert "2 values loading in the background" in restore_notice(report).lines[0]


def test_every_name_the_package_lists_comes_from_the_module_its_table_names() -> None:
    import importlib

    import ipysession.presentation as presentation

    homes = presentation._HOMES
    assert sorted(homes) == sorted(presentation.__all__)
    for name, home in homes.items():
        module = importlib.import_module(f"ipysession.presentation.{home}")
        assert getattr(presentation, name) is getattr(module, name)
    with pytest.raises(AttributeError):
        _ = presentation.no_such_view
