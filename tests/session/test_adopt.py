"""A renamed or moved notebook: the kernel for the new path lists the old session, and
`%session adopt NAME` moves it here and restores it. Through a real in-process IPython shell and
the real store; the notebook's path is forced with the `session_name` option.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import ipysession
from ipysession.extension import get_manager
from ipysession.session.manager import SessionManager
from tests.builders import wait_for
from tests.shell import ipython_shell, run


def manager_of(shell: Any) -> SessionManager:
    manager = get_manager(shell)
    assert manager is not None
    return manager


@pytest.fixture
def old_path(tmp_path: Path) -> str:
    """A notebook that had a session saved, then was renamed (its file is gone)."""
    notebook = tmp_path / "analysis.ipynb"
    notebook.write_text("{}")
    with ipython_shell(session_name=str(notebook), autosave_interval=0.05) as shell:
        ipysession.load_ipython_extension(shell)
        manager = manager_of(shell)
        run(shell, "a = 41\nb = 'kept'")
        wait_for(
            lambda: (manager.last_generation or 0) >= 1 and not manager.status().pending,
            "autosave wrote generation 1",
        )
        session_id = manager.workspace.session_id(manager.name)
    notebook.rename(tmp_path / "report.ipynb")
    assert session_id
    return str(notebook)


def test_a_new_kernel_lists_the_orphan_and_adopt_brings_it_back(
    old_path: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    new_path = str(tmp_path / "report.ipynb")
    with ipython_shell(session_name=new_path, autosave_interval=0.05) as shell:
        capsys.readouterr()
        ipysession.load_ipython_extension(shell)
        said = capsys.readouterr().out
        assert f"no saved session '{new_path}' yet" in said
        assert "analysis.ipynb" in said
        assert "%session adopt NAME" in said
        assert "a" not in shell.user_ns
        manager = manager_of(shell)
        shell.run_line_magic("session", "adopt analysis.ipynb")
        said = capsys.readouterr().out
        assert "Adopted session" in said
        assert shell.user_ns["a"] == 41
        assert shell.user_ns["b"] == "kept"
        assert not manager.store.exists(old_path)
        assert manager.store.read(new_path).session.name == new_path
        assert manager.orphans() == []


def test_adopt_is_refused_when_this_notebook_has_older_work(
    old_path: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    new_path = str(tmp_path / "report.ipynb")
    with ipython_shell(session_name=new_path) as shell:
        ipysession.load_ipython_extension(shell)
        run(shell, "c = 3")
        manager_of(shell).save()
    # A later kernel for the same notebook: its session holds an earlier kernel's work.
    with ipython_shell(session_name=new_path) as shell:
        ipysession.load_ipython_extension(shell)
        manager = manager_of(shell)
        assert shell.user_ns["c"] == 3
        capsys.readouterr()
        shell.run_line_magic("session", f"adopt {old_path}")
        captured = capsys.readouterr()
        assert "exists already" in captured.out + captured.err
        assert "nothing was adopted" in captured.out + captured.err
        assert manager.store.exists(old_path)
        assert "a" not in shell.user_ns


def test_adopt_replaces_a_session_only_this_kernel_wrote(old_path: str, tmp_path: Path) -> None:
    new_path = str(tmp_path / "report.ipynb")
    with ipython_shell(session_name=new_path) as shell:
        ipysession.load_ipython_extension(shell)
        manager = manager_of(shell)
        run(shell, "c = 3")
        manager.save()  # autosave would have done it before the user read the notice
        shell.run_line_magic("session", "adopt analysis.ipynb")
        assert (shell.user_ns["a"], shell.user_ns["c"]) == (41, 3)
        manager.save()
        saved = manager.store.read(new_path).session
        assert {"a", "b", "c"} <= set(saved.variables)
        assert not manager.store.exists(old_path)


def test_no_notice_when_no_notebook_is_gone(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with ipython_shell(session_name=str(tmp_path / "fresh.ipynb")) as shell:
        capsys.readouterr()
        ipysession.load_ipython_extension(shell)
        assert "no saved session" not in capsys.readouterr().out


def test_adopt_is_in_the_magic_help(capsys: pytest.CaptureFixture[str]) -> None:
    with ipython_shell() as shell:
        ipysession.load_ipython_extension(shell)
        capsys.readouterr()
        shell.run_line_magic("session", "adopt -h")
        out = capsys.readouterr().out
        assert "Move session NAME" in out
        assert "ipysession rename OLD NEW" in out
