"""The ``%session`` magic in a real in-process IPython shell: its subcommands, its usage errors,
and that it says what the ``ipysession`` command says about the same session."""

from __future__ import annotations

import re
from typing import Any

import pytest
from IPython.core.error import UsageError

import ipysession
from ipysession.cli import main as cli_main
from ipysession.extension import get_manager
from ipysession.keys import resolution
from ipysession.presentation import SESSION_HEADERS, SNAPSHOT_HEADERS, State
from ipysession.session.manager import SessionManager
from tests.shell import ipython_shell, run

#: Two values that pickle and two that never do: a generator and a lock.
CELL = (
    "import threading\na = 1\nb = [1, 2, 3]\ng = (i for i in range(3))\nlock = threading.Lock()\n"
)


@pytest.fixture(autouse=True)
def _no_cached_key() -> Any:
    # The CLI resolves the key in this process too: start and end without a cached one.
    resolution.clear_key_cache()
    yield
    resolution.clear_key_cache()


def manager_of(shell: Any) -> SessionManager:
    manager = get_manager(shell)
    assert manager is not None
    return manager


def out_of(capsys: pytest.CaptureFixture[str]) -> str:
    return capsys.readouterr().out


def table_row(text: str, headers: tuple[str, ...], first: str) -> dict[str, str]:
    """The row of a text table whose first cell starts with ``first``, by column header."""
    for line in text.splitlines():
        if line.startswith(first):
            cells = re.split(r"\s{2,}", line.strip())
            assert len(cells) == len(headers), line
            return dict(zip(headers, cells, strict=True))
    raise AssertionError(f"no row starting {first!r} in:\n{text}")


def status_line(text: str, label: str) -> str:
    [line] = [line for line in text.splitlines() if line.startswith(f"{label}:")]
    return line.removeprefix(f"{label}:").strip()


# --- the magic and the command line agree ------------------------------------------------------


def test_magic_and_cli_show_the_same_state_and_counts_for_one_session(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with ipython_shell(autosave=False) as shell:
        ipysession.load_ipython_extension(shell)
        manager = manager_of(shell)
        name = manager.name
        run(shell, CELL)
        run(shell, "%session save")
        saved = out_of(capsys)
        assert "2 variables, 2 skipped" in saved

        run(shell, "%session status")
        status = out_of(capsys)
        run(shell, "%session list")
        magic_list = table_row(out_of(capsys), SESSION_HEADERS, name)
        run(shell, "%session snapshots")
        magic_snapshots = table_row(out_of(capsys), SNAPSHOT_HEADERS, "generation")

        assert cli_main(["--key-backend", "file", "list"]) == 0
        cli_list = table_row(out_of(capsys), SESSION_HEADERS, name)
        assert cli_main(["--key-backend", "file", "snapshots", name]) == 0
        cli_snapshots = table_row(out_of(capsys), SNAPSHOT_HEADERS, "generation")

    # Every column but the name (the magic marks its own session) reads the same in both faces.
    assert magic_list["session"] == f"{name} (this kernel)"
    assert cli_list["session"] == name
    assert {k: v for k, v in magic_list.items() if k != "session"} == {
        k: v for k, v in cli_list.items() if k != "session"
    }
    assert magic_snapshots == cli_snapshots
    # ...and status counts as list and snapshots do: variables saved, and those skipped.
    assert (cli_list["variables"], cli_list["skipped"]) == ("2", "2")
    assert (cli_snapshots["variables"], cli_snapshots["skipped"]) == ("2", "2")
    assert status_line(status, "Captured").startswith("2 variables, 2 skipped, ")
    assert status_line(status, "State") == cli_list["state"] == cli_snapshots["state"]
    assert cli_list["state"] == str(State.OK)


# --- subcommands --------------------------------------------------------------------------------


def test_save_checkpoint_show_and_snapshots(capsys: pytest.CaptureFixture[str]) -> None:
    with ipython_shell(autosave=False) as shell:
        ipysession.load_ipython_extension(shell)
        run(shell, CELL)
        run(shell, "%session save --checkpoint first")
        assert "(checkpoint 'first'): 2 variables, 2 skipped" in out_of(capsys)
        run(shell, "%session show")
        shown = out_of(capsys)
        assert "Variables (2 saved, 2 skipped)" in shown
        assert "import threading" in shown
        assert re.search(r"g\s+builtins\.generator\s+.*skipped: ", shown)
        run(shell, "%session snapshots")
        snapshots = out_of(capsys)
        assert "generation 1" in snapshots
        assert "checkpoint first" in snapshots


def test_restore_brings_back_chosen_variables(capsys: pytest.CaptureFixture[str]) -> None:
    with ipython_shell(autosave=False) as shell:
        ipysession.load_ipython_extension(shell)
        run(shell, "a = 1\nb = 2")
        run(shell, "%session save")
        run(shell, "a = 'changed'\nb = 'changed'")
        out_of(capsys)
        run(shell, "%session restore --vars a")
        assert "ipysession: restored" in out_of(capsys)
        assert (shell.user_ns["a"], shell.user_ns["b"]) == (1, "changed")


def test_status_history_autosave_and_forget(capsys: pytest.CaptureFixture[str]) -> None:
    with ipython_shell(autosave=False) as shell:
        ipysession.load_ipython_extension(shell)
        manager = manager_of(shell)
        run(shell, CELL)
        run(shell, "%session")  # no command is status
        assert status_line(out_of(capsys), "Session") == manager.name
        run(shell, "%session history --grep Lock")
        history = out_of(capsys)
        assert "lock = threading.Lock()" in history
        assert "(this run)" in history
        run(shell, "%session autosave 2.5")
        assert "autosave is on, at most every 2.5 s" in out_of(capsys)
        run(shell, "%session autosave off")
        assert "autosave is off" in out_of(capsys)
        assert not manager.autosave
        run(shell, "%session forget b nothere")
        forgot = out_of(capsys)
        assert "no longer saving b, nothere" in forgot
        assert "(Not saved before: nothere.)" in forgot
        run(shell, "%session save")
        assert "b" not in manager.store.read(manager.name).session.variables


def test_connections_when_there_are_none(capsys: pytest.CaptureFixture[str]) -> None:
    with ipython_shell(autosave=False) as shell:
        ipysession.load_ipython_extension(shell)
        run(shell, "%session connections")
        assert "No connections." in out_of(capsys)
        run(shell, "%session ping")
        assert "ipysession: no connections." in out_of(capsys)


def test_delete_with_yes(capsys: pytest.CaptureFixture[str]) -> None:
    with ipython_shell(autosave=False) as shell:
        ipysession.load_ipython_extension(shell)
        manager = manager_of(shell)
        run(shell, "a = 1")
        run(shell, "%session save")
        run(shell, f"%session delete '{manager.name}' --yes")
        assert f"Deleted session '{manager.name}'" in out_of(capsys)
        assert not manager.store.exists(manager.name)


def test_a_session_problem_is_a_message_not_a_failed_cell(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with ipython_shell(autosave=False) as shell:
        ipysession.load_ipython_extension(shell)
        result = shell.run_cell("%session show no-such-session")
        assert result.success
        captured = capsys.readouterr()
        assert "ipysession: No session named" in captured.out
        assert "Traceback" not in captured.out + captured.err


@pytest.mark.parametrize(
    ("line", "says"),
    [
        ("%session frobnicate", "invalid choice: 'frobnicate'"),
        ("%session restore --generation notanumber", "invalid int value"),
        ("%session restore --only variables,nonsense", "unknown part nonsense"),
        ("%session restore --generation 1 --checkpoint x", "not allowed with argument"),
        ("%session autosave sometimes", "expected on, off or a number of seconds"),
        ("%session autosave -1", "from 0 (after every cell) to 86400 (a day), not '-1'"),
        ("%session reconnect", "give a connection NAME or --all"),
        ("%session connect db --secret-env password", "--secret-env takes KEY=ENVVAR"),
        ("%session show 'unbalanced", "No closing quotation"),
    ],
)
def test_usage_errors_say_what_is_wrong_without_a_traceback(
    capsys: pytest.CaptureFixture[str], line: str, says: str
) -> None:
    with ipython_shell(autosave=False) as shell:
        ipysession.load_ipython_extension(shell)
        result = shell.run_cell(line)
        assert isinstance(result.error_in_exec, UsageError)
        assert says in str(result.error_in_exec)
        captured = capsys.readouterr()
        assert "Traceback" not in captured.out + captured.err


@pytest.mark.parametrize(
    "setting", ["inf", "Infinity", "nan", "NaN", "-1", "-0.5", "1e300", "86401"]
)
def test_autosave_refuses_an_interval_it_could_never_keep(
    capsys: pytest.CaptureFixture[str], setting: str
) -> None:
    # `inf` never saved again (its deadline is never reached) and `nan` never compares true
    # with a deadline; both were accepted, and status said autosave was on.
    with ipython_shell(autosave=False) as shell:
        ipysession.load_ipython_extension(shell)
        manager = manager_of(shell)
        result = shell.run_cell(f"%session autosave {setting}")
        assert isinstance(result.error_in_exec, UsageError)
        assert str(result.error_in_exec) == (
            "%session autosave: expected on, off or a number of seconds from 0 (after every "
            f"cell) to 86400 (a day), not {setting!r}"
        )
        assert (manager.autosave, manager.autosave_interval) == (False, 5.0)
        captured = capsys.readouterr()
        assert "Traceback" not in captured.out + captured.err


def test_autosave_zero_means_after_every_cell(capsys: pytest.CaptureFixture[str]) -> None:
    # What the trait has always allowed (and the configuration reference uses) the magic allows.
    with ipython_shell(autosave=False) as shell:
        ipysession.load_ipython_extension(shell)
        manager = manager_of(shell)
        run(shell, "%session autosave 0")
        assert "ipysession: autosave is on, after every cell." in out_of(capsys)
        assert (manager.autosave, manager.autosave_interval) == (True, 0.0)
        run(shell, "%session autosave -h")
        assert "from 0 (after every cell) to 86400 (a day)" in out_of(capsys)


def test_help_lists_every_subcommand(capsys: pytest.CaptureFixture[str]) -> None:
    with ipython_shell(autosave=False) as shell:
        ipysession.load_ipython_extension(shell)
        doc = shell.magics_manager.magics["line"]["session"].__doc__
        for command in ("save", "restore", "list", "show", "status", "snapshots", "connections"):
            assert re.search(rf"^    {command}\b", doc, re.MULTILINE), command
        result = shell.run_cell("%session snapshots -h")
        assert result.success
        assert "usage: %session snapshots" in capsys.readouterr().out
