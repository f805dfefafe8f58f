"""Replay: the chains of recorded cells that rebuild values that could not be saved, and running
them (quietly, under a time limit, leaving every other name as restored). Planning is tested on
plain history entries; the rest in a real in-process IPython shell."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

import ipysession
from ipysession.capture.cellnames import cell_names
from ipysession.extension import get_manager
from ipysession.model import HistoryEntry
from ipysession.session.effects import cell_effects
from ipysession.session.replay import NO_CELLS, ReplayCell, ReplayGroup, plan_replay, run_group
from ipysession.session.reports import ReplayState
from tests.shell import ipython_shell, restart, run


def _history(*sources: str, failed: tuple[int, ...] = ()) -> list[HistoryEntry]:
    return [
        HistoryEntry(source=s, execution_count=i + 1, time=float(i), success=i + 1 not in failed)
        for i, s in enumerate(sources)
    ]


def _prepare(position: int, entry: HistoryEntry) -> ReplayCell:
    return ReplayCell(
        position,
        entry.execution_count,
        entry.source,
        cell_names(entry.source),
        cell_effects(entry.source),
    )


def _plan(entries: list[HistoryEntry], targets: list[str], present: set[str]) -> Any:
    return plan_replay(entries, targets, present=present.__contains__, prepare=_prepare)


def test_the_chain_is_the_defining_cell_and_later_cells_using_the_name() -> None:
    entries = _history(
        "import hashlib",
        "h = hashlib.sha256()",
        "n = 3",
        "h.update(b'a')",
        "unrelated = 1",
        "digest = h.hexdigest()",
    )
    plan = _plan(entries, ["h"], {"hashlib", "n", "unrelated", "digest"})
    assert [g.counts for g in plan.groups] == [(2, 4, 6)]
    assert plan.groups[0].targets == ("h",)
    assert plan.groups[0].consent_reason is None


def test_a_missing_input_brings_its_own_chain_and_a_rebound_name_only_its_last_definition() -> None:
    entries = _history(
        "src = iter(range(5))",
        "src = iter(range(10))",
        "g = (x * 2 for x in src)",
        "first = next(g)",
    )
    plan = _plan(entries, ["g"], {"first"})
    assert [g.counts for g in plan.groups] == [(2, 3, 4)]


def test_failed_cells_are_not_replayed_and_no_cell_left_is_said() -> None:
    entries = _history("lock = threading.Lock()", "lock = broken()", failed=(2,))
    plan = _plan(entries, ["lock", "gone"], {"threading"})
    assert [g.counts for g in plan.groups] == [(1,)]
    assert plan.unavailable == {"gone": NO_CELLS}


def test_independent_names_are_separate_groups_and_shared_cells_join_them() -> None:
    entries = _history(
        "a = iter([1]); b = iter([2])",
        "c = iter([3])",
    )
    plan = _plan(entries, ["a", "b", "c"], set())
    assert sorted(g.targets for g in plan.groups) == [("a", "b"), ("c",)]


def test_a_defining_cell_with_side_effects_needs_consent_and_a_later_one_is_left_out() -> None:
    entries = _history(
        "out = open('log.txt', 'w')",
        "con = sqlite3.connect('db.sqlite')",
        "con.execute('insert into t values (1)')",
    )
    plan = _plan(entries, ["out", "con"], {"sqlite3"})
    by_target = {g.targets: g for g in plan.groups}
    assert "cell 1 writes files" in (by_target[("out",)].consent_reason or "")
    con = by_target[("con",)]
    assert con.counts == (2,)
    assert con.consent_reason is None
    assert [c.count for c in con.left_out] == [3]


def _group(*codes: str, targets: tuple[str, ...]) -> ReplayGroup:
    cells = tuple(
        ReplayCell(i, i + 1, code, cell_names(code), cell_effects(code))
        for i, code in enumerate(codes)
    )
    return ReplayGroup(targets=targets, cells=cells)


def test_running_a_group_keeps_only_its_targets_and_prints_nothing(
    capsys: pytest.CaptureFixture[str],
) -> None:
    namespace: dict[str, Any] = {"n": "restored"}
    group = _group("n = 0\ntmp = 5\nprint('noise')", "g = iter(range(n, tmp))", targets=("g",))
    outcome = run_group(group, namespace, time_limit=30)
    assert outcome.state is ReplayState.REBUILT
    assert outcome.cells == (1, 2)
    assert list(namespace["g"]) == [0, 1, 2, 3, 4]
    assert namespace["n"] == "restored"
    assert "tmp" not in namespace
    assert capsys.readouterr().out == ""


def test_a_failing_group_is_reported_and_leaves_nothing_behind() -> None:
    namespace: dict[str, Any] = {}
    group = _group("g = iter([1])", "raise ValueError('no such file')", targets=("g",))
    outcome = run_group(group, namespace, time_limit=30)
    assert outcome.state is ReplayState.FAILED
    assert "cell 2 raised ValueError: no such file" in outcome.reason
    assert "g" not in namespace


def test_a_replay_past_its_time_limit_is_stopped_and_reported() -> None:
    namespace: dict[str, Any] = {"time": time}
    group = _group("g = iter([1])", "while True:\n    time.sleep(0.01)", targets=("g",))
    outcome = run_group(group, namespace, time_limit=0.2)
    assert outcome.state is ReplayState.FAILED
    assert "time limit of 0.2 s" in outcome.reason
    assert "replay_time_limit" in outcome.reason
    assert "g" not in namespace
    # The interrupt was taken by the replay: this test goes on undisturbed.
    time.sleep(0.3)


# --- in a real shell --------------------------------------------------------------------------


def _unpicklable_session(shell: Any, workdir: Path) -> None:
    run(shell, "import hashlib, threading")
    run(shell, "h = hashlib.sha256()\ndisplay('shown once, never by a replay')")
    run(shell, "h.update(b'one')")
    run(shell, "lock = threading.Lock()")
    run(shell, "g = (i * i for i in range(10))")
    run(shell, "first = next(g)")
    run(shell, "h.update(b'two')\ndigest = h.hexdigest()")
    run(
        shell,
        "guard = threading.Lock()\n"
        f"with open({str(workdir / 'out.txt')!r}, 'a') as f:\n    f.write('written once')",
    )
    run(shell, "%session save")


def test_restore_rebuilds_what_only_computes_and_waits_for_consent_for_the_rest(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    with ipython_shell(autosave=False, session_name="nb") as shell:
        ipysession.load_ipython_extension(shell)
        _unpicklable_session(shell, tmp_path)
        (tmp_path / "out.txt").write_text("")  # the cell's write is what consent protects
        capsys.readouterr()
        restart(shell)
        summary = capsys.readouterr().out
        ns = shell.user_ns
        assert ns["h"].hexdigest() == ns["digest"]
        assert "never by a replay" not in summary
        assert ns["lock"].acquire(blocking=False)
        assert next(ns["g"]) == 1  # as far along as the recorded cells took it
        assert "guard" not in ns
        assert (tmp_path / "out.txt").read_text() == ""
        assert "Rebuilt h (_hashlib.HASH) by replaying cells" in summary
        assert "g (generator)" in summary
        # `f`, the closed file of the same cell, cannot be saved either: they go together.
        assert "`%session replay f guard --yes` runs them" in summary
        assert "writes files (open(..., 'a'))" in summary
        # Still not saved, and still rebuilt after the next restart.
        records = get_manager(shell).workspace.records
        assert records["h"].skipped is not None

        capsys.readouterr()
        # The prompt is answered for the user: a test process has no one at its stdin (the
        # kernel test covers a frontend that cannot ask).
        prompts: list[str] = []
        answers = iter(["n", "y"])
        monkeypatch.setattr("builtins.input", lambda p: prompts.append(p) or next(answers))
        run(shell, "%session replay guard")
        assert "--yes` runs them" in capsys.readouterr().out
        assert "guard" not in ns
        assert "cell 8 writes files (open(..., 'a'))" in prompts[0]
        assert prompts[0].endswith("Run them? [y/N] ")
        run(shell, "%session replay guard")
        assert "Rebuilt guard" in capsys.readouterr().out
        assert ns["guard"].acquire(blocking=False)
        assert (tmp_path / "out.txt").read_text() == "written once"


@pytest.mark.parametrize("mode", ["ask", "never"])
def test_replay_ask_or_never_runs_nothing_at_start(
    mode: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with ipython_shell(autosave=False, session_name="nb", replay=mode) as shell:
        ipysession.load_ipython_extension(shell)
        _unpicklable_session(shell, tmp_path)
        capsys.readouterr()
        restart(shell)
        summary = capsys.readouterr().out
        assert "h" not in shell.user_ns
        assert f"SessionManager.replay is '{mode}'" in summary
        assert "`%session replay h` replays cells" in summary
        run(shell, "%session replay h lock")
        out = capsys.readouterr().out
        assert "Rebuilt h" in out
        assert "Rebuilt lock" in out
        assert shell.user_ns["h"].hexdigest() == shell.user_ns["digest"]


def test_a_cell_gone_from_the_history_is_said(capsys: pytest.CaptureFixture[str]) -> None:
    with ipython_shell(autosave=False, session_name="nb", max_history=2) as shell:
        ipysession.load_ipython_extension(shell)
        run(shell, "import threading\nlock = threading.Lock()")
        run(shell, "a = 1")
        run(shell, "b = 2")
        run(shell, "%session save")
        capsys.readouterr()
        restart(shell)
        summary = capsys.readouterr().out
        assert "Cannot rebuild lock (_thread.lock): no cell that assigns it is left" in summary
        assert "max_history" in summary


def test_a_replay_that_fails_at_restore_is_reported_and_the_rest_stands(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "numbers.txt"
    data.write_text("1\n2\n")
    with ipython_shell(autosave=False, session_name="nb") as shell:
        ipysession.load_ipython_extension(shell)
        run(shell, f"lines = (line for line in open({str(data)!r}).read().split())")
        run(shell, "import threading\nlock = threading.Lock()\nkept = 42")
        run(shell, "%session save")
        data.unlink()
        capsys.readouterr()
        restart(shell)
        summary = capsys.readouterr().out
        assert "Could not rebuild lines (generator) by replaying cell 1: cell 1 raised" in summary
        assert "FileNotFoundError" in summary
        assert "The rest stands" in summary
        assert "Rebuilt lock (_thread.lock)" in summary
        assert shell.user_ns["kept"] == 42
        assert "lines" not in shell.user_ns
