"""A cell that changes nothing a restore brings back makes no generation.

`%session status`, `list`, `snapshots`, `show`, `%history` and cells that only read (`print(a)`,
`a`) used to make a generation each: their history line was the only change, and every cell
handed a snapshot to the writer. Now such a cell's line is kept in the workspace and saved with
the next change, or at shutdown.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

import ipysession
from ipysession.extension import get_manager
from ipysession.session.manager import SessionManager
from tests.builders import wait_for
from tests.shell import ipython_shell, restart, run

READ_ONLY = [
    "%session status",
    "%session list",
    "%session snapshots",
    "%session show",
    "%history -l 3",
    "print(a)",
    "a",
    "len(a)",
]


def manager_of(shell: Any) -> SessionManager:
    manager = get_manager(shell)
    assert manager is not None
    return manager


def settled(manager: SessionManager) -> int:
    """The newest generation once the writer has nothing pending."""
    wait_for(
        lambda: manager.last_generation is not None and not manager.status().pending,
        "autosave wrote what is pending",
    )
    assert manager.last_generation is not None
    return manager.last_generation


@pytest.fixture
def shell() -> Iterator[Any]:
    with ipython_shell(autosave_interval=0.0) as shell:
        ipysession.load_ipython_extension(shell)
        yield shell


def test_cells_that_only_read_write_no_generation(shell: Any) -> None:
    manager = manager_of(shell)
    run(shell, "a = [1, 2, 3]")
    first = settled(manager)
    for cell in READ_ONLY:
        run(shell, cell)
        assert not manager.status().pending, cell
    assert settled(manager) == first
    assert [g.number for g in manager.store.generations(manager.name)] == [first]


def test_their_history_is_saved_with_the_next_change(shell: Any) -> None:
    manager = manager_of(shell)
    run(shell, "a = [1, 2, 3]")
    first = settled(manager)
    run(shell, "%session status")
    run(shell, "print(a)")
    run(shell, "a.append(4)")  # a change: one generation, carrying the lines before it
    assert settled(manager) == first + 1
    history = [e.source for e in manager.store.read(manager.name).session.history]
    assert history[-3:] == ["%session status", "print(a)", "a.append(4)"]


def test_a_read_only_last_cell_is_saved_at_shutdown(shell: Any) -> None:
    manager = manager_of(shell)
    run(shell, "a = 1")
    settled(manager)
    run(shell, "print(a)")
    restart(shell)
    manager = manager_of(shell)
    history = [e.source for e in manager.store.read(manager.name).session.history]
    assert history[-1] == "print(a)"
    assert shell.user_ns["a"] == 1


def test_a_cell_that_rebinds_an_equal_value_still_counts_as_no_change(shell: Any) -> None:
    manager = manager_of(shell)
    run(shell, "a = 'same'")
    first = settled(manager)
    run(shell, "a = 'same'")
    run(shell, "b = 2")
    assert settled(manager) == first + 1
    assert set(manager.store.read(manager.name).session.variables) == {"a", "b"}
