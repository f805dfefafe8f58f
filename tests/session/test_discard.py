"""Stopping saves: a session deleted under the kernel, `%session delete` of its own session,
`%session discard`, and values whose blob went missing (issue 12).

Through a real in-process IPython shell and the real store; `restart()` does to ipysession what a
kernel restart does (final save, empty namespace, load and restore again).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

import ipysession
from ipysession.errors import SessionInUse
from ipysession.extension import get_manager
from ipysession.session import lease
from ipysession.session.manager import SessionManager
from ipysession.store.blobs import blob_path
from tests.builders import wait_for
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


def saved(manager: SessionManager, generation: int = 1) -> None:
    wait_for(
        lambda: (manager.last_generation or 0) >= generation and not manager.status().pending,
        f"autosave wrote generation {generation}",
    )


def notices(manager: SessionManager) -> str:
    return "\n".join(text for _, text in manager.notices.recent())


def test_a_session_deleted_from_outside_is_never_written_again(shell: Any) -> None:
    manager = manager_of(shell)
    run(shell, "a = 1")
    saved(manager)
    sdir = manager.store.session_dir(manager.name)
    manager.store.delete(manager.name)  # what `ipysession delete --force` does

    run(shell, "b = 2")
    assert "was deleted or renamed from outside this kernel" in notices(manager)
    assert "`%session save` saves them again" in notices(manager)
    restart(shell)  # the final save at shutdown must not bring it back either

    assert not sdir.exists()
    assert "a" not in shell.user_ns
    assert "b" not in shell.user_ns


def test_discard_stops_saving_so_the_next_kernel_starts_empty(shell: Any) -> None:
    manager = manager_of(shell)
    run(shell, "a = 1")
    saved(manager)
    name = manager.name

    removed = manager.discard()
    run(shell, "b = 2")  # changes after the discard are not saved either, not even at shutdown
    restart(shell)

    assert removed is not None
    assert not removed.exists()
    assert not manager_of(shell).store.exists(name)
    assert "a" not in shell.user_ns
    assert "b" not in shell.user_ns


def test_discard_before_anything_was_saved_removes_nothing_and_saves_nothing(
    shell: Any,
) -> None:
    manager = manager_of(shell)
    manager.set_autosave(enabled=False)
    run(shell, "a = 1")
    assert manager.discard() is None
    restart(shell)
    assert "a" not in shell.user_ns


def test_deleting_this_kernels_own_session_is_final(shell: Any) -> None:
    manager = manager_of(shell)
    run(shell, "a = 1")
    saved(manager)
    manager.delete(manager.name)
    run(shell, "b = 2")
    restart(shell)
    assert "a" not in shell.user_ns
    assert "b" not in shell.user_ns


def test_an_explicit_save_after_a_discard_saves_again(shell: Any) -> None:
    manager = manager_of(shell)
    run(shell, "a = 1")
    saved(manager)
    manager.discard()

    report = manager.save()
    run(shell, "b = 2")  # autosave of it is back on
    saved(manager, generation=(report.generation or 0) + 1)
    restart(shell)

    assert shell.user_ns["a"] == 1
    assert shell.user_ns["b"] == 2


def test_deleting_a_session_another_live_kernel_holds_is_refused_unless_forced(
    shell: Any,
) -> None:
    manager = manager_of(shell)
    manager.store.write(manager.snapshot("other"))
    holder = lease.LeaseHolder(host="elsewhere", pid=4242, kernel_id="feedbeef-1", run_id="r")
    lease.acquire(lease.RootDirs(manager.store.root), "other", holder, timeout=60)

    with pytest.raises(SessionInUse, match="in use by kernel feedbeef"):
        manager.delete("other")
    assert manager.store.exists("other")

    manager.delete("other", force=True)
    assert not manager.store.exists("other")
    lease.release(lease.RootDirs(manager.store.root), "other", holder)  # this process forgets it


def test_a_value_whose_blob_went_missing_is_captured_and_stored_again(shell: Any) -> None:
    manager = manager_of(shell)
    run(shell, "big = bytes(range(256)) * 1024")
    saved(manager)
    run(shell, "x = 1")  # the bytes of `big` are dropped: only its blob reference is kept
    saved(manager, generation=2)
    blob_id = manager.store.read(manager.name).session.variables["big"].blob
    assert blob_id is not None
    path = blob_path(manager.store.session_dir(manager.name), blob_id)
    path.unlink()

    run(shell, "y = 2")  # this save finds the blob gone: `big` is saved as skipped
    saved(manager, generation=3)
    run(shell, "z = 3")  # ... and captured again from the live value
    saved(manager, generation=4)

    newest = manager.store.read(manager.name).session.variables["big"]
    assert newest.blob == blob_id
    assert path.exists()
    restart(shell)
    assert shell.user_ns["big"] == bytes(range(256)) * 1024
