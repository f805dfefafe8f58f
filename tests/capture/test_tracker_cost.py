"""The tracker's per-cell work grows with what the cell touched, not with the namespace.

Counted in operations (:class:`~ipysession.capture.tracker.Counters`), never timed. The cheaper
path must still report what a cell rebinds, deletes and creates, through its source or through
functions it calls; what no source shows is reported by the next full pass, as documented.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from ipysession.capture.tracker import ChangeSet, ChangeTracker, Counters
from ipysession.extension import get_manager, load_ipython_extension
from tests.shell import ipython_shell, run

MANY = 10_000


def cell(
    tracker: ChangeTracker, ns: dict[str, Any], source: str, run: str | None = None
) -> ChangeSet:
    """One cell as the extension sees it; ``run`` is code the source does not show."""
    tracker.pre_cell(ns)
    exec(compile(run if run is not None else source, "<cell>", "exec"), ns)
    return tracker.post_cell(ns, source)


def namespace(size: int) -> dict[str, Any]:
    ns: dict[str, Any] = {"__name__": "__main__"}
    exec("import json", ns)
    for i in range(size):
        ns[f"small{i}"] = [i]
    ns["n"] = 0
    return ns


def synced(size: int) -> tuple[ChangeTracker, dict[str, Any]]:
    ns = namespace(size)
    tracker = ChangeTracker()
    tracker.sync(ns)
    return tracker, ns


def work_of(tracker: ChangeTracker, ns: dict[str, Any], source: str) -> Counters:
    tracker.counters = Counters()
    cell(tracker, ns, source)
    return tracker.counters


@pytest.mark.parametrize(
    "source",
    ["n += 1", "small5.append(1)", "x = small7[0] + n", "def f():\n    global n\n    n = 2\nf()"],
)
def test_a_small_cell_costs_the_same_in_10_and_10000_names(source: str) -> None:
    few = work_of(*synced(10), source)
    many = work_of(*synced(MANY), source)
    assert many == few
    assert many.full_id_checks == 0
    assert many.full_key_scans == 0
    assert many.ids_checked <= 4
    assert many.keys_walked <= 4


def test_rebinding_and_deletion_in_the_source() -> None:
    tracker, ns = synced(MANY)
    changes = cell(tracker, ns, "small3 = [0]\ndel small4")
    assert changes.changed == {"small3"}
    assert changes.deleted == {"small4"}
    assert "small4" not in tracker.tracked
    assert tracker.counters.full_id_checks == 0


def test_new_names_are_found_at_the_end_of_the_namespace() -> None:
    tracker, ns = synced(MANY)
    # Added where the source does not show it (a callback, a thread): still a new key.
    changes = cell(tracker, ns, "pass", run="globals()['later'] = [1]")
    assert changes.changed == {"later"}
    assert tracker.counters.full_key_scans == 0
    # A name deleted and bound again by the cell moves last: the walk goes on past it.
    changes = cell(
        tracker, ns, "del small1\nsmall1 = [1]", run="del small1\nsmall1 = [1]\nlate2 = [2]"
    )
    assert changes.changed == {"small1", "late2"}


def test_functions_the_cell_calls_are_read_for_global_stores() -> None:
    tracker, ns = synced(MANY)
    cell(
        tracker,
        ns,
        "def inner():\n    global small8, small9, made\n"
        "    small8 = [8, 8]\n    made = [1]\n    del small9\n"
        "def outer():\n    inner()\n"
        "class Maker:\n    def __init__(self):\n        global small10\n        small10 = None\n",
    )
    changes = cell(tracker, ns, "outer()")
    assert changes.changed == {"small8", "made"}
    assert changes.deleted == {"small9"}
    changes = cell(tracker, ns, "obj = Maker()")
    assert changes.changed == {"obj", "small10"}
    assert tracker.counters.full_id_checks == 0


@pytest.mark.parametrize(
    "source",
    [
        "exec('small2 = [22]')",
        "globals()['small2'] = [22]",
        "def sneaky():\n    globals()['small2'] = [22]\nsneaky()",
        "get_ipython = lambda: None\nexec('small2 = [22]')",
    ],
)
def test_an_opaque_cell_checks_every_name(source: str) -> None:
    tracker, ns = synced(MANY)
    changes = cell(tracker, ns, source)
    assert "small2" in changes.changed
    assert tracker.counters.full_id_checks == 1


def test_a_star_import_finds_every_new_name() -> None:
    tracker, ns = synced(100)
    changes = cell(tracker, ns, "from json import *")
    assert {"dumps", "loads"} <= changes.changed
    assert tracker.counters.full_key_scans == 1


def test_what_no_source_shows_is_found_by_the_next_full_pass() -> None:
    tracker, ns = synced(MANY)
    unseen = "small11 = [0]\ndel small12\nsmall13.append(13)"
    changes = cell(tracker, ns, "pass", run=unseen)
    assert not changes
    full = tracker.full_pass(ns)
    assert {"small11", "small13"} <= full.changed
    assert full.deleted == {"small12"}
    # A deep pass reports every variable for re-capture, whatever the fingerprints saw.
    assert set(tracker.full_pass(ns, deep=True).changed) == tracker.tracked


def test_a_change_through_an_alias_marks_every_name_of_the_object() -> None:
    tracker, ns = synced(MANY)
    cell(tracker, ns, "alias = small14")
    changes = cell(tracker, ns, "alias[0] = 99")
    assert changes.changed == {"alias", "small14"}


def test_forget_and_new_patterns_are_looked_at_by_the_next_cell() -> None:
    tracker, ns = synced(100)
    tracker.forget("small1")
    assert cell(tracker, ns, "pass").changed == {"small1"}
    tracker.exclude = ["small2*"]
    changes = cell(tracker, ns, "pass")
    assert {"small2", "small20"} <= changes.deleted
    tracker.exclude = []
    changes = cell(tracker, ns, "pass")
    assert {"small2", "small20"} <= changes.changed


def test_a_real_shell_captures_rebinding_through_a_function(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("IPYSESSION_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("IPYSESSION_CONFIG_DIR", str(tmp_path / "config"))
    with ipython_shell(session_name="percell", autorestore="never") as shell:
        run(shell, f"for _k in range({MANY}):\n    globals()[f'v{{_k}}'] = [_k]")
        load_ipython_extension(shell)
        manager = get_manager(shell)
        assert manager is not None
        workspace = manager.workspace
        run(shell, "def bump():\n    global v7\n    v7 = ['bumped']")
        workspace.tracker.counters = Counters()
        run(shell, "bump()")
        assert workspace.tracker.counters.full_id_checks == 0
        assert workspace.tracker.counters.ids_checked < 10
        record = workspace.records["v7"]
        assert record.data is not None
        assert b"bumped" in record.data
        run(shell, "del v8")
        assert "v8" not in workspace.records


def test_rebound_names_what_was_assigned_anew_never_what_was_only_read_or_stored_through() -> None:
    tracker, ns = synced(10)
    cell(tracker, ns, "def bump():\n    global n\n    n = n + 1")
    assert cell(tracker, ns, "print(small1)\nsmall2.append(3)\nsmall3[0] = 9").rebound == set()
    assert cell(tracker, ns, "small1 = [1]\nbump()").rebound == {"small1", "n"}
    # What no source shows is found by its new id() (an opaque cell checks every name).
    assert cell(tracker, ns, "exec('small4 = [4]')").rebound == {"small4"}
    assert cell(tracker, ns, "small5 = 5\ndel small5").rebound == set()
