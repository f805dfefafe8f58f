"""Large values restored in the background (issue 15), in a real in-process IPython shell (a
terminal: no kernel event loop, so values arrive at the next cell) over a real store.

The background source goes through the one arrivals mechanism: a cell that names a loading value
waits and sees it whole, a cell that names none runs while it is still loading, a cell that calls
a notebook function reading it waits too, and a damaged blob fails only its variable.

To hold a value "still loading" for as long as a test needs, without depending on the machine's
speed, ``SessionStore.read_blob`` is wrapped so that reading the large value's blobs waits on a
gate the test opens: the only thing replaced here, and only in timing (the real read runs).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import ipysession
from ipysession.capture.references import names_reached
from ipysession.errors import CorruptFile
from ipysession.extension import get_manager
from ipysession.session.loading import LoadState
from ipysession.store import SessionStore
from tests.builders import assert_uses_decrypted_memory, wait_for
from tests.shell import ipython_shell, restart, run

np = pytest.importorskip("numpy")

#: 8 MB: over the threshold the tests set (1 MiB); ``small`` stays far under it.
CELLS = (
    "import numpy as np\n"
    "big = np.arange(1_000_000, dtype=np.float64)\n"
    "small = {'kept': True}\n"
    "def total():\n"
    "    return helper() + 1\n"
    "def helper():\n"
    "    return float(big.sum())\n"
)
EXPECTED = float(np.arange(1_000_000, dtype=np.float64).sum())


class Gate:
    """Holds reads of blobs larger than 1 MiB until ``open()``; optionally fails them."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.opened = threading.Event()
        self.fail: Exception | None = None
        self.held = 0
        real: Callable[..., memoryview] = SessionStore.read_blob

        def read_blob(store: SessionStore, name: str, blob_id: str) -> memoryview:
            data = real(store, name, blob_id)
            if len(data) > 1024 * 1024:
                self.held += 1
                self.opened.wait(120)
                if self.fail is not None:
                    raise self.fail
            return data

        monkeypatch.setattr(SessionStore, "read_blob", read_blob)

    def open_soon(self) -> None:
        """Open the gate from another thread once the main thread waits in a cell."""
        threading.Timer(0.2, self.opened.set).start()


@pytest.fixture
def shell() -> Iterator[Any]:
    with ipython_shell(autosave_interval=0.0, background_restore_bytes=1024 * 1024) as shell:
        ipysession.load_ipython_extension(shell)
        run(shell, CELLS)
        run(shell, "%session save")
        yield shell


def test_a_cell_naming_none_runs_while_one_naming_it_waits_and_sees_it_whole(
    shell: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    gate = Gate(monkeypatch)
    restart(shell)
    manager = get_manager(shell)
    assert manager.last_restore is not None
    # The functions that read big are large too (pickled by value with what they read).
    assert manager.last_restore.loading == ["big", "helper", "total"]
    assert "small" in shell.user_ns
    assert "big" not in shell.user_ns
    # A cell that names no loading value runs now, the value still held at the gate.
    run(shell, "other = small['kept']")
    assert shell.user_ns["other"] is True
    assert "big" not in shell.user_ns
    loading = dict(manager.status().loading)
    assert set(loading) == {"big", "helper", "total"}
    status_text = shell.run_cell("%session status", store_history=False)
    assert status_text.success
    # A cell that names it waits, then sees the whole value, in the decrypted memory.
    gate.open_soon()
    run(shell, "s = float(big.sum()); n = len(big)")
    assert (shell.user_ns["s"], shell.user_ns["n"]) == (EXPECTED, 1_000_000)
    assert "big" not in dict(manager.status().loading)
    big = shell.user_ns["big"]
    assert big.flags.writeable
    # Bound in the background, the array still uses the memory its blob was decrypted into.
    assert_uses_decrypted_memory(big)


def test_a_cell_calling_a_notebook_function_that_reads_it_waits(
    shell: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    gate = Gate(monkeypatch)
    restart(shell)
    assert "total" not in shell.user_ns
    # Defined while total is loading, by a cell that names none of the loading values (so it
    # runs at once): later is not loading itself, its code reads one.
    run(shell, 'exec("def later():\\n    return total() * 2")')
    assert "total" not in shell.user_ns
    gate.open_soon()
    # The cell names only later; later's code reads total (whose code reads helper, big).
    run(shell, "r = later()")
    assert shell.user_ns["r"] == (EXPECTED + 1) * 2


def test_in_a_terminal_a_value_read_meanwhile_is_bound_after_the_next_cell(
    shell: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    gate = Gate(monkeypatch)
    gate.opened.set()
    restart(shell)
    manager = get_manager(shell)
    stored = manager.workspace.records["big"]
    wait_for(
        lambda: all(job.state is LoadState.READ for job in manager.loads.jobs),
        "the large value was read",
    )
    # A cell that does not name it runs without waiting for its unpickling: it is bound after.
    run(shell, "seen = 'big' in globals()")
    assert shell.user_ns["seen"] is False
    assert float(shell.user_ns["big"].sum()) == EXPECTED
    # Bound outside any cell: no change of that cell's, so its stored record is kept as it was.
    assert manager.workspace.records["big"] is stored


def test_a_value_the_user_binds_before_it_arrives_keeps_the_users_value(
    shell: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    gate = Gate(monkeypatch)
    restart(shell)
    run(shell, "big = 'mine'")
    gate.opened.set()
    manager = get_manager(shell)
    wait_for(lambda: all(j.done.is_set() for j in manager.loads.jobs), "the read ended")
    run(shell, "1")
    assert shell.user_ns["big"] == "mine"


def test_a_damaged_large_blob_fails_only_its_variable_with_the_reason(
    shell: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    gate = Gate(monkeypatch)
    gate.fail = CorruptFile("Blob abc failed authentication (damaged or tampered with)")
    restart(shell)
    gate.open_soon()
    result = shell.run_cell("print(big)", store_history=True)
    error = result.error_in_exec
    assert error is not None
    assert "'big' could not be restored in the background" in str(error)
    assert "failed authentication" in str(error)
    assert "big" not in shell.user_ns
    run(shell, "assert small == {'kept': True}")
    manager = get_manager(shell)
    assert manager.last_restore is not None
    skipped = dict(manager.last_restore.skipped)
    assert "failed authentication" in skipped["big"]
    # Its record is carried forward: the next kernel can still try it.
    assert "big" in manager.workspace.records
    assert "big" not in dict(manager.status().loading)


def test_off_when_the_threshold_is_zero(shell: Any) -> None:
    shell.config.SessionManager.background_restore_bytes = 0
    restart(shell)
    assert float(shell.user_ns["big"].sum()) == EXPECTED
    assert get_manager(shell).last_restore.loading == []  # type: ignore[union-attr]


def test_names_reached_follows_notebook_functions_and_classes_only() -> None:
    namespace: dict[str, Any] = {"__name__": "__main__"}
    exec(
        "def f():\n    return g()\n"
        "def g():\n    return df\n"
        "class C:\n    def m(self):\n        return other\n"
        "import json\n",
        namespace,
    )
    assert {"f", "g", "df"} <= names_reached({"f"}, namespace)
    assert "other" in names_reached({"C"}, namespace)
    # A library function is not followed.
    assert names_reached({"json"}, namespace) == {"json"}
