"""A kernel's autosave meets another writer of its session (an `ipysession import`, a kernel
whose lease could not be taken, a second kernel with ``on_conflict = "takeover"`` before it
noticed): the write merges instead of overwriting, the other writer's work is carried in every
later save, and a newer value of theirs is never overwritten by what was carried."""

from __future__ import annotations

import pickle
import time
from collections.abc import Iterator
from typing import Any

import pytest

import ipysession
from ipysession.extension import get_manager
from ipysession.model import HistoryEntry, VariableRecord
from ipysession.session.manager import SessionManager
from ipysession.store import SessionStore
from tests.reliability.faults import wait_for
from tests.shell import ipython_shell, run


@pytest.fixture
def shell() -> Iterator[Any]:
    with ipython_shell(autosave_interval=0.05) as shell:
        ipysession.load_ipython_extension(shell)
        yield shell


def saved_after(shell: Any, code: str) -> SessionManager:
    """Run a cell and wait until autosave wrote it."""
    manager = get_manager(shell)
    assert manager is not None
    before = manager.last_generation
    run(shell, code)
    wait_for(
        lambda: manager.last_generation != before and not manager.status().pending,
        f"autosave after {code!r}",
    )
    time.sleep(0.1)  # a write under way finishes
    return manager


def other_writer(manager: SessionManager, **values: object) -> int:
    """Another process saves the session: its own variables and one history cell."""
    with SessionStore(manager.store.root, key=manager.store.key) as store:
        current = store.read(manager.name)
        session = current.session
        for name, value in values.items():
            data = pickle.dumps(value)
            session.variables[name] = VariableRecord(
                name, type(value).__name__, len(data), encoding="pickle", data=data
            )
        session.history.append(HistoryEntry(f"# other writer {values}", 1, time.time(), True, "o"))
        result = store.write(session, base_generation=current.generation)
        return result.generation


def on_disk(manager: SessionManager) -> dict[str, Any]:
    session = manager.store.read(manager.name).session
    return {n: pickle.loads(r.data) for n, r in session.variables.items() if r.data is not None}


def test_autosave_merges_with_another_writer_and_carries_its_work(shell: Any) -> None:
    manager = saved_after(shell, "mine = 1")
    other_writer(manager, theirs="x")
    saved_after(shell, "mine = 2")
    assert manager.merges == 1
    assert on_disk(manager) == {"mine": 2, "theirs": "x"}
    sources = [h.source for h in manager.store.read(manager.name).session.history]
    assert "mine = 1" in sources
    assert "mine = 2" in sources
    assert any(s.startswith("# other writer") for s in sources)
    assert "theirs" not in shell.user_ns  # their values are kept on disk, not pushed into ours

    # A save without a conflict still holds their work.
    saved_after(shell, "mine = 3")
    assert on_disk(manager) == {"mine": 3, "theirs": "x"}
    assert manager.merges == 1

    # Their newer value is never overwritten by the older one this kernel carried.
    other_writer(manager, theirs="y")
    saved_after(shell, "mine = 4")
    assert manager.merges == 2
    assert on_disk(manager) == {"mine": 4, "theirs": "y"}

    # On a name both wrote, ours is the newer write (theirs stays in the previous generation).
    previous = other_writer(manager, mine=100)
    saved_after(shell, "mine = 5")
    assert on_disk(manager)["mine"] == 5
    kept = manager.store.read(manager.name, generation=previous).session.variables["mine"]
    assert pickle.loads(kept.data or b"") == 100

    text = []
    from ipysession import display

    real = display.show
    display.show = lambda message: text.append(message.text)  # type: ignore[assignment]
    try:
        run(shell, "%session status")
    finally:
        display.show = real  # type: ignore[assignment]
    assert "Merges:    3 save(s) merged with other kernels' changes" in text[0]
    assert "Lease:     held by this kernel" in text[0]

    # Forgetting a name they wrote stops carrying it.
    run(shell, "%session forget theirs")
    saved_after(shell, "mine = 6")
    assert "theirs" not in on_disk(manager)
