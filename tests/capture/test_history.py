"""Input history: recorded from a real shell's events, merged across runs, searched."""

from __future__ import annotations

import logging
import os
import re
import time
from pathlib import Path
from typing import Any

import pytest

from ipysession.capture.history import HistoryRecorder, ipython_keeps_history, search
from ipysession.errors import CaptureError
from ipysession.model import HistoryEntry, Session
from tests.shell import ShellFactory


def attach(shell: Any, recorder: HistoryRecorder) -> HistoryRecorder:
    shell.events.register("pre_run_cell", recorder.pre_run_cell)
    shell.events.register("post_run_cell", recorder.post_run_cell)
    return recorder


def entry(source: str, count: int, run_id: str = "old", when: float = 1.0) -> HistoryEntry:
    return HistoryEntry(source=source, execution_count=count, time=when, run_id=run_id)


# --- recording from shell events ----------------------------------------------------------------


def test_records_each_cell_with_count_time_and_outcome(make_shell: ShellFactory) -> None:
    shell = make_shell()
    recorder = attach(shell, HistoryRecorder("run-1"))
    before = time.time()
    shell.run_cell("x = 1", store_history=True)
    shell.run_cell("1 / 0", store_history=True)
    shell.run_cell("%precision 2", store_history=True)
    shell.run_cell("def f(:\n    pass", store_history=True)
    after = time.time()

    entries = recorder.entries
    assert [e.source for e in entries] == [
        "x = 1",
        "1 / 0",
        "%precision 2",
        "def f(:\n    pass",
    ]
    assert [e.execution_count for e in entries] == [1, 2, 3, 4]
    assert [e.success for e in entries] == [True, False, True, False]
    assert {e.run_id for e in entries} == {"run-1"}
    assert all(before <= e.time <= after for e in entries)
    assert [e.time for e in entries] == sorted(e.time for e in entries)
    # The counts are the ones IPython shows: its raw input history has the same cell at n.
    raw = shell.history_manager.input_hist_raw
    assert all(raw[e.execution_count] == e.source for e in entries)


def test_skips_empty_silent_and_unstored_cells(make_shell: ShellFactory) -> None:
    shell = make_shell()
    recorder = attach(shell, HistoryRecorder("run-1"))
    shell.run_cell("", store_history=True)
    shell.run_cell("   \n\n", store_history=True)
    shell.run_cell("a = 1", store_history=True, silent=True)
    shell.run_cell("b = 2", store_history=False)
    shell.run_cell("c = 3", store_history=True)
    assert [e.source for e in recorder.entries] == ["c = 3"]


def test_exit_lines_are_not_recorded() -> None:
    recorder = HistoryRecorder("run-1")
    for line in ("exit", "quit", "exit()", "  quit(0) "):
        assert recorder.record(line, execution_count=1) is None
    assert recorder.record("exit_code = 3", execution_count=2) is not None
    assert [e.source for e in recorder.entries] == ["exit_code = 3"]


def test_nested_run_cell_records_the_outer_cell(make_shell: ShellFactory) -> None:
    shell = make_shell()
    recorder = attach(shell, HistoryRecorder("run-1"))
    shell.run_cell("get_ipython().run_cell('inner = 1')\nouter = 2", store_history=True)
    shell.run_cell("after = 3", store_history=True)
    assert [e.source for e in recorder.entries] == [
        "get_ipython().run_cell('inner = 1')\nouter = 2",
        "after = 3",
    ]
    assert shell.user_ns["inner"] == 1


def test_redact_is_applied_before_anything_is_kept(make_shell: ShellFactory) -> None:
    def redact(source: str) -> str:
        return re.sub(r"password=\w+", "password=***", source)

    shell = make_shell()
    recorder = attach(shell, HistoryRecorder("run-1", redact=redact))
    shell.run_cell("connect(password=hunter2)", store_history=True)
    assert [e.source for e in recorder.entries] == ["connect(password=***)"]
    assert [e.source for e in recorder.take_delta()] == ["connect(password=***)"]


def test_a_failing_redact_drops_the_cell_and_never_breaks_it(
    make_shell: ShellFactory, caplog: pytest.LogCaptureFixture
) -> None:
    def redact(source: str) -> str:
        if "secret" in source:
            raise RuntimeError("cannot redact")
        return source

    shell = make_shell()
    recorder = attach(shell, HistoryRecorder("run-1", redact=redact))
    with caplog.at_level(logging.WARNING, logger="ipysession"):
        result = shell.run_cell("token = 'secret-xyz'", store_history=True)
    assert result.success
    assert shell.user_ns["token"] == "secret-xyz"
    shell.run_cell("y = 1", store_history=True)
    assert [e.source for e in recorder.entries] == ["y = 1"]
    assert "not recorded" in caplog.text
    assert "secret-xyz" not in caplog.text


# --- delta and cap ------------------------------------------------------------------------------


def test_take_delta_hands_each_entry_out_once(make_shell: ShellFactory) -> None:
    shell = make_shell()
    recorder = attach(shell, HistoryRecorder("run-1"))
    assert recorder.take_delta() == []
    shell.run_cell("a = 1", store_history=True)
    shell.run_cell("b = 2", store_history=True)
    assert [e.source for e in recorder.take_delta()] == ["a = 1", "b = 2"]
    assert recorder.take_delta() == []
    shell.run_cell("c = 3", store_history=True)
    assert [e.source for e in recorder.take_delta()] == ["c = 3"]
    assert [e.source for e in recorder.entries] == ["a = 1", "b = 2", "c = 3"]


def test_max_history_drops_the_oldest_first() -> None:
    recorder = HistoryRecorder("run-1", max_history=3)
    for i in range(1, 6):
        recorder.record(f"x = {i}", execution_count=i)
    assert [e.execution_count for e in recorder.entries] == [3, 4, 5]
    assert [e.execution_count for e in recorder.take_delta()] == [3, 4, 5]


def test_max_history_must_not_be_negative() -> None:
    with pytest.raises(ValueError, match="max_history"):
        HistoryRecorder("run-1", max_history=-1)


# --- lineage across restarts --------------------------------------------------------------------


def test_merge_puts_previous_runs_first_and_caps() -> None:
    previous = [entry(f"old {i}", i, run_id="run-0", when=float(i)) for i in range(1, 5)]
    recorder = HistoryRecorder("run-1", max_history=5)
    for i in range(1, 4):
        recorder.record(f"new {i}", execution_count=i)

    lineage = recorder.merge(previous)
    assert [e.source for e in lineage] == ["old 3", "old 4", "new 1", "new 2", "new 3"]
    assert [e.run_id for e in lineage] == ["run-0", "run-0", "run-1", "run-1", "run-1"]
    assert [e.source for e in HistoryRecorder("r", max_history=0).merge(previous)] == []


def test_lineage_survives_two_restarts_through_the_session_document(
    make_shell: ShellFactory,
) -> None:
    stored: list[HistoryEntry] = []
    for run, cells in enumerate((["a = 1", "b = 2"], ["c = 3"], ["d = 4"])):
        shell = make_shell()
        recorder = attach(shell, HistoryRecorder(f"run-{run}"))
        for cell in cells:
            shell.run_cell(cell, store_history=True)
        session = Session(name="s", history=recorder.merge(stored))
        # What the store writes and reads back.
        stored = Session.from_dict(session.to_dict()).history

    assert [(e.run_id, e.execution_count, e.source) for e in stored] == [
        ("run-0", 1, "a = 1"),
        ("run-0", 2, "b = 2"),
        ("run-1", 1, "c = 3"),
        ("run-2", 1, "d = 4"),
    ]


def test_merge_does_not_repeat_entries_this_run_already_saved() -> None:
    recorder = HistoryRecorder("run-1")
    recorder.record("a = 1", execution_count=1)
    first = Session(name="s", history=recorder.merge([entry("old", 1)]))
    stored = Session.from_dict(first.to_dict()).history
    recorder.record("b = 2", execution_count=2)
    lineage = recorder.merge(stored)
    assert [e.source for e in lineage] == ["old", "a = 1", "b = 2"]


# --- search -------------------------------------------------------------------------------------


ENTRIES = [
    entry("import numpy as np", 1),
    entry("df = load('a.csv')", 2),
    entry("df.describe()", 3),
    entry("plot(df)", 4),
    entry("x = np.arange(10)", 5),
]


def test_search_last_n() -> None:
    assert [e.execution_count for e in search(ENTRIES, n=2)] == [4, 5]
    assert [e.execution_count for e in search(ENTRIES, n=10)] == [1, 2, 3, 4, 5]
    assert search(ENTRIES, n=0) == []
    assert search(ENTRIES) == ENTRIES


def test_search_grep_is_a_regex_and_keeps_order() -> None:
    assert [e.execution_count for e in search(ENTRIES, grep=r"\bdf\b")] == [2, 3, 4]
    assert [e.execution_count for e in search(ENTRIES, grep=r"^df")] == [2, 3]
    assert [e.execution_count for e in search(ENTRIES, grep="np", n=1)] == [5]
    assert search(ENTRIES, grep="nothing matches") == []


def test_search_rejects_bad_input_clearly() -> None:
    with pytest.raises(CaptureError, match=r"Invalid --grep pattern '\(unclosed'") as info:
        search(ENTRIES, grep="(unclosed")
    assert info.value.hint is not None
    assert "regular expression" in info.value.hint
    with pytest.raises(CaptureError, match="0 or more"):
        search(ENTRIES, n=-1)


# --- where IPython keeps its own history --------------------------------------------------------


def test_ipython_keeps_history_only_with_a_database_file(
    make_shell: ShellFactory, tmp_path: Path
) -> None:
    assert ipython_keeps_history(make_shell()) is False
    on_disk = make_shell(HistoryManager__hist_file=str(tmp_path / "history.sqlite"))
    assert ipython_keeps_history(on_disk) is True
    disabled = make_shell(
        HistoryManager__hist_file=str(tmp_path / "other.sqlite"), HistoryManager__enabled=False
    )
    assert ipython_keeps_history(disabled) is False


def test_restored_history_is_not_written_into_ipython_history(
    make_shell: ShellFactory, tmp_path: Path
) -> None:
    """Our recorder leaves IPython's own history exactly as IPython wrote it."""
    hist_file = str(tmp_path / "history.sqlite")
    first = make_shell(HistoryManager__hist_file=hist_file)
    recorder = attach(first, HistoryRecorder("run-0"))
    first.run_cell("a = 1", store_history=True)
    first.history_manager.writeout_cache()
    stored = recorder.merge([])

    second = make_shell(HistoryManager__hist_file=hist_file)
    attach(second, HistoryRecorder("run-1")).merge(stored)
    second.run_cell("b = 2", store_history=True)
    second.history_manager.writeout_cache()
    # IPython itself already reaches the previous run's cell; each cell appears once.
    sources = [src for _, _, src in second.history_manager.search("*", raw=True)]
    assert sources.count("a = 1") == 1
    assert sources.count("b = 2") == 1
    assert second.execution_count == 2
    assert os.path.exists(hist_file)
