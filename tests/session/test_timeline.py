"""Time travel per cell: `%session undo`, `log` and `checkout` in a real in-process shell, and the
timeline's own rules (parents, memory bound) on records."""

from __future__ import annotations

from typing import Any

import pytest

import ipysession
from ipysession.errors import CaptureError
from ipysession.extension import get_manager
from ipysession.model import VariableRecord
from ipysession.session.timeline import ABSENT, START, Timeline, Value
from tests.shell import ipython_shell, run


def _value(name: str, data: bytes) -> Value:
    record = VariableRecord(
        name=name, type_name="int", size=len(data), encoding="pickle", data=data
    )
    return (record, None)


def test_undo_follows_parents_and_a_travel_step_goes_back_past_its_target() -> None:
    timeline = Timeline(max_bytes=10_000)
    timeline.record(1, {"a": ABSENT}, {"a": _value("a", b"1")})
    timeline.record(2, {"a": _value("a", b"1")}, {"a": _value("a", b"2")})
    timeline.record(3, {"b": ABSENT}, {"b": _value("b", b"3")})
    assert timeline.undo_target(1) == 1
    assert timeline.state_after(1) == {"b": ABSENT}
    assert timeline.undo_target(5) == START
    timeline.travelling(0)  # the cell now running goes to the state after cell 1
    timeline.record(4, {"a": _value("a", b"2"), "b": _value("b", b"3")}, {})
    assert timeline.before_travel == 2
    assert timeline.undo_target(1) == START  # not back to cell 3's state
    assert timeline.state_of_count(2) == 1
    assert timeline.state_of_count(0) == START


def test_the_oldest_steps_go_when_the_timeline_is_over_its_bytes() -> None:
    # Counted: the values each kept step replaced, and the copy of each current value.
    timeline = Timeline(max_bytes=35)
    for count in range(1, 6):
        timeline.record(count, {"x": _value("x", b"0123456789")}, {"x": _value("x", b"z" * 10)})
    assert timeline.nbytes <= 35
    assert [s.count for s in timeline.steps] == [4, 5]
    assert not timeline.reachable(1)
    assert timeline.reachable(timeline.oldest)
    assert timeline.state_of_count(2) is None  # forgotten, not mistaken for the oldest kept
    assert timeline.state_of_count(4) == timeline.steps[0].index

    tiny = Timeline(max_bytes=5)
    tiny.record(1, {"x": ABSENT}, {"x": _value("x", b"0123456789")})
    assert tiny.nbytes <= 5
    assert tiny.steps == []

    off = Timeline(max_bytes=10_000)
    off.record(1, {"x": ABSENT}, {"x": _value("x", b"1")})
    off.max_bytes = 0
    assert off.record(2, {"x": _value("x", b"1")}, {"x": _value("x", b"2")}) is None
    assert off.steps == []
    assert off.nbytes == 0


def _columns(shell: Any) -> list[str]:
    return list(shell.user_ns["df"].columns)


def test_undo_after_a_drop_gives_the_old_dataframe_and_checkout_goes_there_and_back(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with ipython_shell(autosave=False, session_name="nb") as shell:
        ipysession.load_ipython_extension(shell)
        run(shell, "import pandas as pd")
        run(shell, "df = pd.DataFrame({'a': [1, 2], 'b': [3, 4], 'c': [5, 6]})")
        drop_count = shell.execution_count
        run(shell, "df = df.drop(columns=['b'])")
        run(shell, "total = int(df['a'].sum())")
        capsys.readouterr()

        run(shell, "%session undo 2")
        out = capsys.readouterr().out
        assert _columns(shell) == ["a", "b", "c"]
        assert "total" not in shell.user_ns
        assert "put back df; removed total" in out
        assert "`%session checkout -` goes back" in out

        run(shell, "%session checkout -")
        assert _columns(shell) == ["a", "c"]
        assert shell.user_ns["total"] == 3

        run(shell, f"%session checkout {drop_count}")
        assert _columns(shell) == ["a", "c"]
        assert "total" not in shell.user_ns
        run(shell, "%session undo")
        assert _columns(shell) == ["a", "b", "c"]

        capsys.readouterr()
        run(shell, "%session log")
        log = capsys.readouterr().out
        assert "(back to after cell" in log
        assert "-total" in log
        assert "df" in log


def test_values_that_cannot_be_saved_are_left_as_they_are(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with ipython_shell(autosave=False, session_name="nb") as shell:
        ipysession.load_ipython_extension(shell)
        run(shell, "import threading")
        run(shell, "lock = threading.Lock()\nn = 1")
        run(shell, "lock = threading.RLock()\nn = 2")
        capsys.readouterr()
        run(shell, "%session undo")
        out = capsys.readouterr().out
        assert shell.user_ns["n"] == 1
        assert "lock: it could not be saved, so no earlier copy of it was kept" in out


def test_nothing_to_undo_or_out_of_reach_says_what_is_kept() -> None:
    with ipython_shell(autosave=False, session_name="nb") as shell:
        ipysession.load_ipython_extension(shell)
        manager = get_manager(shell)
        with pytest.raises(CaptureError, match="timeline holds no cell yet"):
            manager.undo()
        run(shell, "x = 1")
        with pytest.raises(CaptureError, match="No undo or checkout to go back from"):
            manager.checkout("-")
        with pytest.raises(CaptureError, match="a cell's number or '-'"):
            manager.checkout("abc")
        with pytest.raises(CaptureError, match="1 or more cells"):
            manager.undo(0)
        manager.undo_max_bytes = 0
        run(shell, "x = 2")
        with pytest.raises(CaptureError, match=r"is off \(SessionManager.undo_max_bytes = 0\)"):
            manager.undo()


def test_undo_brings_back_an_import_a_cell_rebound() -> None:
    with ipython_shell(autosave=False, session_name="nb") as shell:
        ipysession.load_ipython_extension(shell)
        run(shell, "import json as j")
        run(shell, "j = 5")
        run(shell, "%session undo")
        import json

        assert shell.user_ns["j"] is json
        run(shell, "%session checkout -")
        assert shell.user_ns["j"] == 5


def test_undo_brings_variables_that_share_objects_back_sharing_them() -> None:
    # `b = a`: the two are saved as one group (co-variables); undoing a cell that changed the
    # shared list must give both names the same old list, not two copies.
    with ipython_shell(autosave=False, session_name="nb") as shell:
        ipysession.load_ipython_extension(shell)
        run(shell, "a = [1, 2]\nb = a\nd = {'x': a}")
        run(shell, "a.append(3)")
        run(shell, "%session undo")
        ns = shell.user_ns
        assert ns["a"] == [1, 2]
        assert ns["b"] is ns["a"]
        assert ns["d"]["x"] is ns["a"]
        ns["a"].append(4)
        assert ns["b"] == [1, 2, 4]
        run(shell, "%session checkout -")
        assert ns["a"] == [1, 2, 3]
        assert ns["b"] is ns["a"]
        assert ns["d"]["x"] is ns["a"]
