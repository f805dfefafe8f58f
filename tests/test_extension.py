"""The extension in a real in-process IPython shell: hooks, magics, autorestore, unloading."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any

import pytest

import ipysession
from ipysession.capture import namespace as ns_capture
from ipysession.extension import get_manager
from ipysession.session.manager import SessionManager
from tests.shell import ipython_shell, restart, run


def test_load_save_restart_restore(capsys: pytest.CaptureFixture[str]) -> None:
    with ipython_shell(autosave_interval=0.0) as shell:
        ipysession.load_ipython_extension(shell)
        run(shell, "import json as j\nfrom os import path as p\nx = [1, 2, 3]")
        run(shell, "def f(a):\n    return a * 2")
        restart(shell)
        out = capsys.readouterr().out
        assert "ipysession: restored" in out
        assert shell.user_ns["x"] == [1, 2, 3]
        assert shell.user_ns["f"](21) == 42
        assert shell.user_ns["j"].__name__ == "json"
        assert shell.user_ns["p"].join("a", "b") == "a/b"


def test_reload_never_doubles_hooks() -> None:
    with ipython_shell() as shell:
        before = len(shell.events.callbacks["post_run_cell"])
        ipysession.load_ipython_extension(shell)
        ipysession.load_ipython_extension(shell)  # a second load is a no-op
        assert len(shell.events.callbacks["post_run_cell"]) == before + 1
        shell.run_line_magic("reload_ext", "ipysession")
        assert len(shell.events.callbacks["post_run_cell"]) == before + 1
        ipysession.unload_ipython_extension(shell)
        assert len(shell.events.callbacks["post_run_cell"]) == before
        assert "session" not in shell.magics_manager.magics["line"]
        ipysession.unload_ipython_extension(shell)  # safe twice


def test_failing_hook_never_breaks_a_cell(caplog: pytest.LogCaptureFixture) -> None:
    with ipython_shell() as shell:
        ipysession.load_ipython_extension(shell)
        manager = get_manager(shell)
        assert manager is not None

        def broken(*args: object, **kwargs: object) -> None:
            raise RuntimeError("capture exploded")

        manager.workspace.tracker.post_cell = broken  # type: ignore[method-assign]
        with caplog.at_level(logging.WARNING, logger="ipysession"):
            for i in range(4):
                result = shell.run_cell(f"y = {i}")
                assert result.success
        assert shell.user_ns["y"] == 3
        assert manager.disabled is not None
        assert "capture exploded" in caplog.text
        notices = " ".join(raised.text for raised in manager.notices.take())
        assert notices == "" or "stopped capturing" in notices


def test_autorestore_notify_and_never(capsys: pytest.CaptureFixture[str]) -> None:
    with ipython_shell(autosave_interval=0.0) as shell:
        ipysession.load_ipython_extension(shell)
        run(shell, "kept = 42")
        ipysession.unload_ipython_extension(shell)
        shell.reset(new_session=True)
        capsys.readouterr()
        shell.config.SessionManager.autorestore = "notify"
        ipysession.load_ipython_extension(shell)
        assert "kept" not in shell.user_ns
        assert "%session restore" in capsys.readouterr().out
        run(shell, "%session restore")
        assert shell.user_ns["kept"] == 42
        ipysession.unload_ipython_extension(shell)
        shell.reset(new_session=True)
        shell.config.SessionManager.autorestore = "never"
        capsys.readouterr()
        ipysession.load_ipython_extension(shell)
        assert "kept" not in shell.user_ns
        assert "session" not in capsys.readouterr().out.lower()


def test_session_help_and_usage_errors(capsys: pytest.CaptureFixture[str]) -> None:
    with ipython_shell() as shell:
        ipysession.load_ipython_extension(shell)
        # What `%session?` and a frontend's inspector show (IPython's own inspector).
        doc = shell.object_inspect_text("%session")
        for command in (
            "save",
            "restore",
            "list",
            "show",
            "status",
            "snapshots",
            "delete",
            "history",
            "autosave",
            "forget",
        ):
            assert command in doc
        shell.run_cell("%session --help")
        assert "usage: %session" in capsys.readouterr().out
        result = shell.run_cell("%session restore --generation notanumber")
        assert not result.success
        assert "invalid int value" in capsys.readouterr().err.lower() or result.error_in_exec


def test_status_forget_autosave_and_delete(capsys: pytest.CaptureFixture[str]) -> None:
    with ipython_shell(autosave_interval=0.0) as shell:
        ipysession.load_ipython_extension(shell)
        run(shell, "a = 1\nb = (i for i in range(3))\nsecret_token = 'hunter2'")
        run(shell, "%session forget secret_token")
        run(shell, "%session save")
        run(shell, "%session status")
        out = capsys.readouterr().out
        assert "Not saved" in out
        assert "b:" in out
        assert "generator" in out
        manager = get_manager(shell)
        assert manager is not None
        session = manager.store.read(manager.name).session
        assert "secret_token" not in session.variables
        run(shell, "%session autosave off")
        assert not manager.autosave
        run(shell, "%session autosave 2.5")
        assert manager.autosave
        assert manager.autosave_interval == 2.5
        run(shell, "%session list")
        assert manager.name in capsys.readouterr().out
        run(shell, f"%session delete '{manager.name}' --yes")
        assert not manager.store.exists(manager.name)


def test_checkpoint_and_restore_parts(tmp_path: Path) -> None:
    with ipython_shell(autosave=False) as shell:
        ipysession.load_ipython_extension(shell)
        run(shell, "v = 'first'")
        run(shell, "%session save --checkpoint one")
        run(shell, "v = 'second'")
        run(shell, "%session restore --checkpoint one --only variables")
        assert shell.user_ns["v"] == "first"
        run(shell, "%session save other_name")
        manager = get_manager(shell)
        assert manager is not None
        assert manager.store.exists("other_name")


def test_stored_values_keep_only_their_blob_reference_in_memory() -> None:
    with ipython_shell(autosave_interval=0.0) as shell:
        ipysession.load_ipython_extension(shell)
        run(shell, "big = bytes(range(256)) * 4096  # 1 MiB: stored in a blob")
        manager = get_manager(shell)
        assert manager is not None
        assert manager._writer.flush().error is None
        run(shell, "small = 1")  # the next cell boundary drops the bytes the writer stored
        record = manager.workspace.records["big"]
        assert record.data is None
        assert record.blob is not None
        run(shell, "%session save copy_of_session")
        restart(shell)
        assert shell.user_ns["big"] == bytes(range(256)) * 4096
        copy = manager_of(shell).store.read("copy_of_session").session
        assert copy.variables["big"].blob is not None
        blob = manager_of(shell).store.read_blob("copy_of_session", copy.variables["big"].blob)
        assert len(blob) > 1_000_000


def spy_on_captures(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The names the manager captures (pickles) from now on; capture itself runs unchanged."""
    captured: list[str] = []
    real_capture = ns_capture.capture_value

    def spy(name: str, *args: Any, **kwargs: Any) -> Any:
        captured.append(name)
        return real_capture(name, *args, **kwargs)

    monkeypatch.setattr(ns_capture, "capture_value", spy)
    return captured


def test_an_explicit_save_checks_large_values_against_their_blob_instead_of_copying(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with ipython_shell(autosave_interval=0.0) as shell:
        ipysession.load_ipython_extension(shell)
        run(shell, "import numpy as np\narr = np.arange(200_000, dtype=float)")
        manager = manager_of(shell)
        assert manager._writer.flush().error is None
        run(shell, "pass")  # the next cell boundary drops the bytes the writer stored
        # The array's data is an out-of-band buffer in a blob of its own (format 3).
        blobs = manager.workspace.records["arr"].blob_refs()
        assert len(blobs) == 1
        captured = spy_on_captures(monkeypatch)
        run(shell, "%session save")
        assert "arr" not in captured  # hashed against its blob, not pickled into memory again
        assert manager.workspace.records["arr"].blob_refs() == blobs
        # A change in place that no fingerprint sample need see is still found by the check.
        run(shell, "def poke(a):\n    a[123_457] = -1.0\npoke(arr)")
        run(shell, "%session save")
        assert "arr" in captured
        restart(shell)
        assert shell.user_ns["arr"][123_457] == -1.0
        assert shell.user_ns["arr"][123_456] == 123_456.0


def test_an_explicit_save_does_not_copy_a_large_value_still_waiting_for_the_writer(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with ipython_shell(autosave_interval=3600.0) as shell:
        ipysession.load_ipython_extension(shell)
        run(shell, "x = 1")  # the first write goes at once; the next waits out the interval
        run(shell, "import numpy as np\narr = np.arange(200_000, dtype=float)")
        manager = manager_of(shell)
        waiting = manager.workspace.records["arr"].data
        assert waiting is not None
        assert manager._writer.pending
        captured = spy_on_captures(monkeypatch)
        run(shell, "%session save")
        assert "arr" not in captured
        assert (
            manager.workspace.records["arr"].data is waiting
            or manager.workspace.records["arr"].blob
        )
        restart(shell)
        assert shell.user_ns["arr"][199_999] == 199_999.0


def test_save_as_another_name_keeps_values_only_held_as_blob_references(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A value that failed to restore (its module is gone) is carried as a blob reference; a save
    under another name must bring the blob along."""
    module = tmp_path / "vanishing_mod.py"
    module.write_text("class Thing:\n    pass\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with ipython_shell(autosave_interval=0.0) as shell:
        ipysession.load_ipython_extension(shell)
        run(shell, "from vanishing_mod import Thing\nbig = (Thing(), bytes(200_000))")
        module.unlink()
        sys.modules.pop("vanishing_mod", None)
        restart(shell)
        assert "big" not in shell.user_ns
        manager = manager_of(shell)
        restore = manager.status().restore
        assert restore is not None
        reasons = dict(restore.skipped)
        assert "vanishing_mod" in reasons["big"]
        run(shell, "%session save elsewhere")
        stored = manager.store.read("elsewhere").session.variables["big"]
        assert stored.blob is not None
        assert len(manager.store.read_blob("elsewhere", stored.blob)) > 200_000


def manager_of(shell: object) -> SessionManager:
    manager = get_manager(shell)
    assert manager is not None
    return manager


def _writer_running(shell: Any) -> bool:
    thread = manager_of(shell)._writer._thread
    return thread is not None and thread.is_alive()


def test_the_writer_thread_runs_from_the_first_change_or_a_restore_taking_the_lease() -> None:
    with ipython_shell(autosave_interval=0.0) as shell:
        ipysession.load_ipython_extension(shell)
        assert not _writer_running(shell)  # nothing saved yet, nothing to write
        run(shell, "x = 1")
        assert _writer_running(shell)  # the first change is written by the thread
        restart(shell)
        # Restored: its lease is this kernel's, and the heartbeat keeps it fresh before any cell.
        assert shell.user_ns["x"] == 1
        assert manager_of(shell).sharing.lease is not None
        assert _writer_running(shell)
