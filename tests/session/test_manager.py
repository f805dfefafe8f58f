"""SessionManager through a real in-process IPython shell: the save and restore entry points, the
one path every change takes to the writer (and its guard), forgetting, layout, history, status.

Sharing a session with other kernels is in test_sharing.py; the extension's hooks and magics in
tests/test_extension.py.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from typing import Any

import pytest
from traitlets import TraitError
from traitlets.config import Config

import ipysession
from ipysession.errors import StoreError
from ipysession.extension import get_manager
from ipysession.session.manager import SessionManager
from tests.builders import wait_for
from tests.session.counting import counted_names
from tests.shell import ipython_shell, restart, run


def manager_of(shell: Any) -> SessionManager:
    manager = get_manager(shell)
    assert manager is not None
    return manager


@pytest.fixture
def shell() -> Iterator[Any]:
    with ipython_shell(autosave_interval=0.05) as shell:
        ipysession.load_ipython_extension(shell)
        yield shell


def saved(manager: SessionManager) -> None:
    wait_for(
        lambda: manager.last_generation is not None and not manager.status().pending,
        "autosave wrote what is pending",
    )


def test_a_cell_is_captured_autosaved_and_counted_in_status(shell: Any) -> None:
    manager = manager_of(shell)
    run(shell, "a = 1\nb = 'two'\nimport json")
    saved(manager)
    status = manager.status()
    assert status.variables == 2
    assert status.history >= 1
    assert status.last_error is None
    assert status.last_save is not None
    on_disk = manager.store.read(manager.name)
    assert on_disk.generation == manager.last_generation
    assert set(on_disk.session.variables) == {"a", "b"}
    assert [i.name for i in on_disk.session.imports] == ["json"]


def test_with_autosave_off_nothing_is_written_until_close() -> None:
    with ipython_shell(autosave=False) as shell:
        ipysession.load_ipython_extension(shell)
        manager = manager_of(shell)
        run(shell, "kept = [1, 2]")
        manager.set_layout({"panels": ["notebook"]})
        assert not manager.status().pending
        assert not manager.has_saved_session()
        restart(shell)  # closing makes the final save of what changed
        assert shell.user_ns["kept"] == [1, 2]
        assert manager_of(shell).layout == {"panels": ["notebook"]}


def test_once_capture_has_stopped_nothing_more_is_saved_on_its_own(shell: Any) -> None:
    manager = manager_of(shell)
    run(shell, "a = 1")
    saved(manager)
    written = manager.last_generation

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("capture exploded")

    manager.workspace.tracker.post_cell = broken  # type: ignore[method-assign]
    for _ in range(5):
        run(shell, "a = 2")  # the cell itself still runs
    assert manager.disabled is not None
    # Neither a layout nor a connection change reaches the writer now, nor does closing.
    manager.set_layout({"panels": []})
    assert not manager.status().pending
    assert manager.forget(["a"]) == ["a"]
    assert not manager.status().pending
    ipysession.unload_ipython_extension(shell)
    assert manager.store.read(manager.name).generation == written


def test_forget_stops_saving_a_name_until_it_is_assigned_again(shell: Any) -> None:
    manager = manager_of(shell)
    run(shell, "a = 1\nb = 2")
    saved(manager)
    assert manager.forget(["a", "a", "nothing_here"]) == ["a"]
    saved(manager)
    assert set(manager.store.read(manager.name).session.variables) == {"b"}
    run(shell, "b = 3")  # another cell does not bring `a` back
    saved(manager)
    assert set(manager.store.read(manager.name).session.variables) == {"b"}


def test_a_forgotten_name_assigned_again_is_saved_and_comes_back_after_a_restart(
    shell: Any,
) -> None:
    manager = manager_of(shell)
    run(shell, "x = 1\ny = [1]\nz = 'kept'")
    run(shell, "%session forget x y")
    run(shell, "print(x, y)\ny.append(2)")  # read and stored through: still forgotten
    saved(manager)
    assert set(manager.store.read(manager.name).session.variables) == {"z"}
    run(shell, "x = 5")
    saved(manager)
    assert set(manager.store.read(manager.name).session.variables) == {"x", "z"}
    restart(shell)
    assert shell.user_ns["x"] == 5
    assert shell.user_ns["z"] == "kept"
    assert "y" not in shell.user_ns


def test_a_name_assigned_before_forget_in_the_same_cell_stays_forgotten(shell: Any) -> None:
    manager = manager_of(shell)
    run(shell, "a = 1\nkeep = 2")
    run(shell, "a = 3\nget_ipython().run_line_magic('session', 'forget a')")
    run(shell, "keep = 4")
    saved(manager)
    restart(shell)
    assert shell.user_ns["keep"] == 4
    assert "a" not in shell.user_ns


def test_a_function_that_assigns_a_forgotten_global_undoes_forget(shell: Any) -> None:
    manager = manager_of(shell)
    run(shell, "n = 1\ndef bump():\n    global n\n    n = n + 1")
    manager.forget(["n"])  # between cells, as the JupyterLab extension does
    run(shell, "n")
    saved(manager)
    assert "n" not in manager.store.read(manager.name).session.variables
    run(shell, "bump()")
    saved(manager)
    restart(shell)
    assert shell.user_ns["n"] == 2


def test_an_explicit_save_under_another_name_leaves_this_kernels_session_alone(
    shell: Any,
) -> None:
    manager = manager_of(shell)
    run(shell, "x = 'copy me'")
    report = manager.save("a copy", checkpoint="first")
    assert report.session == "a copy"
    assert report.checkpoint == "first"
    assert report.variables == 1
    assert report.path is not None
    assert manager.name != "a copy"
    copy = manager.store.read("a copy").session
    assert set(copy.variables) == {"x"}
    assert manager.store.read("a copy", checkpoint="first").session.variables.keys() == {"x"}


def test_an_explicit_save_reports_the_generation_it_wrote(shell: Any) -> None:
    manager = manager_of(shell)
    run(shell, "x = 1")
    report = manager.save()
    assert report.generation is not None
    assert report.generation == manager.store.read(manager.name).generation
    assert report.skipped == []


def test_restore_says_when_there_is_nothing_and_refuses_unknown_parts(shell: Any) -> None:
    manager = manager_of(shell)
    report = manager.restore("no such session")
    assert not report.found
    assert report.variables == []
    with pytest.raises(ValueError, match="unknown part"):
        manager.restore(only=["variables", "moods"])


def test_restore_brings_back_only_the_parts_and_names_asked_for(shell: Any) -> None:
    manager = manager_of(shell)
    run(shell, "a = 1\nb = 2\nimport json")
    generation = manager.save().generation
    run(shell, "del a, b, json")
    report = manager.restore(generation=generation, only=["variables"], variables=["a"])
    assert report.variables == ["a"]
    assert report.imports == []
    assert shell.user_ns["a"] == 1
    assert "b" not in shell.user_ns
    assert "json" not in shell.user_ns
    assert manager.last_restore is report


def test_layout_and_history_come_back_after_a_restart(shell: Any) -> None:
    manager = manager_of(shell)
    manager.set_layout({"panels": ["notebook", "console"]})
    run(shell, "needle = 'in the haystack'")
    saved(manager)
    restart(shell)
    manager = manager_of(shell)
    assert manager.layout == {"panels": ["notebook", "console"]}
    found = manager.search_history(grep="needle")
    assert [entry.source for entry in found] == ["needle = 'in the haystack'"]
    assert shell.user_ns["needle"] == "in the haystack"


def test_exclude_patterns_apply_from_the_next_cell(shell: Any) -> None:
    manager = manager_of(shell)
    manager.exclude = ["tmp_*"]
    run(shell, "tmp_scratch = 1\nkeep = 2")
    saved(manager)
    assert set(manager.store.read(manager.name).session.variables) == {"keep"}


@pytest.mark.parametrize("bad", [math.inf, -math.inf, math.nan, -1.0, 86_401.0])
def test_the_autosave_interval_refuses_what_the_writer_could_never_keep(bad: float) -> None:
    accepted = "from 0 (after every cell) to 86400 (a day)"
    with pytest.raises(TraitError, match=re.escape(accepted)):
        SessionManager(config=Config({"SessionManager": {"autosave_interval": bad}}))
    manager = SessionManager()
    with pytest.raises(TraitError, match=re.escape(accepted)):
        manager.autosave_interval = bad
    with pytest.raises(ValueError, match=re.escape(accepted)):
        manager.set_autosave(enabled=False, interval=bad)
    # A refused interval changes nothing, not even the on/off half of the call.
    assert (manager.autosave, manager.autosave_interval) == (True, 5.0)
    manager.close(final_save=False)


def test_the_autosave_interval_accepts_zero_and_a_day() -> None:
    manager = SessionManager(config=Config({"SessionManager": {"autosave_interval": 0.0}}))
    assert manager.autosave_interval == 0.0
    manager.set_autosave(enabled=False, interval=86_400)
    assert (manager.autosave, manager.autosave_interval) == (False, 86_400.0)
    manager.close(final_save=False)


# --- thousands of names: linear, proven by counting comparisons, never by timing -----------------

NAMES = 2000
#: Comparisons allowed per name: each set or dict lookup of it compares about once, and a path
#: makes a handful (forget: the tracker's state, its seen set, the records); a list scan compares
#: with every earlier element, NAMES / 2 = 1000 per name on average.
PER_NAME = 10


def test_the_tally_counts_list_lookups_and_hardly_any_set_lookups() -> None:
    names, compared = counted_names(NAMES)
    assert f"v{NAMES - 1}" in names
    assert compared.count == NAMES
    compared.count = 0
    assert f"v{NAMES - 1}" in set(names)
    assert compared.count <= 1


def test_restoring_thousands_of_chosen_variables_compares_each_name_a_few_times(
    shell: Any,
) -> None:
    manager = manager_of(shell)
    # Autosave off: with the fixture's 50 ms interval, a slow machine would save the 'changed'
    # values below before the restore reads the newest generation.
    manager.set_autosave(enabled=False)
    run(shell, "\n".join(f"v{i} = {i}" for i in range(NAMES)) + "\nimport json as v0_json")
    manager.save()
    run(shell, "\n".join(f"v{i} = 'changed'" for i in range(NAMES)))
    names, compared = counted_names(NAMES)
    report = manager.restore(variables=names)
    assert len(report.variables) == NAMES
    assert all(shell.user_ns[f"v{i}"] == i for i in range(NAMES))
    assert report.imports == []  # the import of v0_json was not asked for
    assert compared.count <= PER_NAME * NAMES, f"{compared.count} comparisons: quadratic"


def test_forgetting_thousands_of_names_compares_each_name_a_few_times(shell: Any) -> None:
    manager = manager_of(shell)
    run(shell, "\n".join(f"v{i} = {i}" for i in range(NAMES)))
    names, compared = counted_names(NAMES)
    assert manager.forget(names) == [f"v{i}" for i in range(NAMES)]
    assert compared.count <= PER_NAME * NAMES, f"{compared.count} comparisons: quadratic"


@pytest.mark.parametrize("label", ["", "   ", "no/slashes"])
def test_a_save_with_an_invalid_checkpoint_label_writes_nothing(shell: Any, label: str) -> None:
    manager = manager_of(shell)
    manager.set_autosave(enabled=False)
    run(shell, "a = 1")
    with pytest.raises(StoreError, match="Invalid checkpoint label"):
        manager.save(checkpoint=label)
    assert not manager.store.exists(manager.name)
