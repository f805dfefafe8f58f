"""A session that cannot be read (sealed with another key) makes the kernel save as a fork, as
the user guide says: status says why, a restarted kernel comes back to that fork, and no save
counts as a merge with "other kernels" when there is no other kernel. In a real in-process
shell; Jupyter's kernel id, kept across a restart, is fixed by patching the one function that
reads it from the kernel's connection file."""

from __future__ import annotations

from pathlib import Path

import pytest

import ipysession
from ipysession import extension
from ipysession.extension import get_manager
from ipysession.store import SessionStore
from tests.builders import OTHER_KEY, make_session
from tests.shell import ipython_shell, restart, run


def _status(shell: object, capsys: pytest.CaptureFixture[str]) -> str:
    capsys.readouterr()
    run(shell, "%session status")
    return capsys.readouterr().out


@pytest.fixture
def kernel_id(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setattr(extension, "_kernel_id", lambda: "kernel-0123456789")
    return "kernel-0123456789"


def test_a_wrong_key_fork_says_why_and_claims_no_other_kernel(
    isolated_dirs: Path, kernel_id: str, capsys: pytest.CaptureFixture[str]
) -> None:
    SessionStore(isolated_dirs, key=OTHER_KEY).write(make_session("nb"))
    with ipython_shell(session_name="nb") as shell:
        ipysession.load_ipython_extension(shell)
        run(shell, "a = 1")
        run(shell, "%session save")

        status = _status(shell, capsys)

        assert "State:     fork" in status
        [fork_line] = [line for line in status.splitlines() if line.startswith("Fork of:")]
        assert "different key" in fork_line
        assert "another kernel" not in fork_line
        assert "Merges:" not in status


def test_a_restarted_kernel_comes_back_to_its_wrong_key_fork_without_a_merge(
    isolated_dirs: Path, kernel_id: str, capsys: pytest.CaptureFixture[str]
) -> None:
    SessionStore(isolated_dirs, key=OTHER_KEY).write(make_session("nb"))
    with ipython_shell(session_name="nb") as shell:
        ipysession.load_ipython_extension(shell)
        fork = get_manager(shell).name  # type: ignore[union-attr]
        run(shell, "a = 1")
        run(shell, "%session save")
        capsys.readouterr()

        restart(shell)

        assert "restored its own fork of it" in capsys.readouterr().out
        assert shell.user_ns["a"] == 1  # the fork's work is back in the namespace
        manager = get_manager(shell)
        assert manager is not None
        assert manager.name == fork
        run(shell, "b = 2")
        run(shell, "%session save")
        status = _status(shell, capsys)
        assert "Merges:" not in status
        assert "different key" in status
        # The unreadable session was left exactly as it was: still one generation, other key.
        assert [g.number for g in SessionStore(isolated_dirs, key=OTHER_KEY).generations("nb")] == [
            1
        ]
