"""The ``%session`` magic in a real in-process IPython shell: its subcommands, its usage errors,
and that it says what the ``ipysession`` command says about the same session."""

from __future__ import annotations

import random
import re
import shlex
from typing import Any

import pytest
from IPython.core.error import UsageError

import ipysession
from ipysession.cli import main as cli_main
from ipysession.extension import get_manager
from ipysession.keys import resolution
from ipysession.magics import split_line
from ipysession.presentation import SESSION_HEADERS, SNAPSHOT_HEADERS, State
from ipysession.session.manager import SessionManager
from tests.session.counting import counted_names
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
        doc = shell.object_inspect_text("%session")  # what `%session?` shows
        for command in ("save", "restore", "list", "show", "status", "snapshots", "connections"):
            assert re.search(rf"^    {command}\b", doc, re.MULTILINE), command
        result = shell.run_cell("%session snapshots -h")
        assert result.success
        assert "usage: %session snapshots" in capsys.readouterr().out


# --- long lines: taken literally, split in linear time ------------------------------------------

SPLIT_SAMPLES = [
    "",
    "  save  ",
    "save 'my session' --checkpoint first",
    'save "a \\"quoted\\" name" --checkpoint "x\\\\y"',
    "save it\\'s",
    "restore --vars a,b,c --only variables,imports",
    "save ''",
    "save a''b \"\"",
    'connect db sqlalchemy "postgresql://u:pa$$w@h/db?x={y}"',
    "save 'a\tb'\t\tx\r\ny",
    "save non\xa0breaking",
    "save 'unclosed",
    'save "unclosed \\',
    "save trailing\\",
    'save "a\\nb"',
]


def test_lines_split_as_shlex_splits_them() -> None:
    rng = random.Random(11)
    alphabet = ["a", " ", "\t", "\n", "'", '"', "\\", "$", "{", ",", "\xa0", "é"]
    fuzzed = ["".join(rng.choices(alphabet, k=rng.randrange(12))) for _ in range(5000)]
    for line in SPLIT_SAMPLES + fuzzed:
        try:
            expected: object = shlex.split(line)
        except ValueError as exc:
            expected = str(exc)
        try:
            got: object = split_line(line)
        except ValueError as exc:
            got = str(exc)
        assert got == expected, repr(line)


def test_the_line_is_taken_literally_without_dollar_or_brace_expansion(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # IPython's $name/{expr} expansion of magic lines is quadratic in their length (3 s for
    # 4000 names) and turned "pa$$word {x}" into "pa$word 1".
    with ipython_shell(autosave=False) as shell:
        ipysession.load_ipython_extension(shell)
        manager = manager_of(shell)
        run(shell, "x = 1")
        run(shell, '%session save "pa$$word {x}"')
        assert "saved 'pa$$word {x}'" in out_of(capsys)
        assert manager.store.exists("pa$$word {x}")


def test_forget_with_thousands_of_names_compares_each_name_a_few_times(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    count = 2000
    with ipython_shell(autosave=False) as shell:
        ipysession.load_ipython_extension(shell)
        manager = manager_of(shell)
        run(shell, "\n".join(f"v{i} = {i}" for i in range(0, count, 2)))  # every other one
        names, compared = counted_names(count)
        by_text = {str(name): name for name in names}
        real_forget = manager.forget

        def forget(wanted: Any) -> list[str]:
            # What the magic checks each of its names against: the counted names.
            return [by_text[name] for name in real_forget(wanted)]

        monkeypatch.setattr(manager, "forget", forget)
        run(shell, "%session forget " + " ".join(str(n) for n in names))
        text = out_of(capsys)
        assert text.startswith("ipysession: no longer saving v0, v1, v2, ")
        assert "(Not saved before: v1, v3, v5, " in text
        assert text.rstrip().endswith(f"v{count - 1}.)")
        assert compared.count <= 10 * count, f"{compared.count} comparisons: quadratic"


def test_thousands_of_names_and_a_very_long_name_go_through(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # A smoke check of the whole path (no duration is asserted): each of these took minutes
    # when splitting and expanding the line was quadratic.
    count = 20_000
    with ipython_shell(autosave=False) as shell:
        ipysession.load_ipython_extension(shell)
        manager = manager_of(shell)
        run(shell, "\n".join(f"v{i} = {i}" for i in range(count)))
        run(shell, "%session save")
        run(shell, "\n".join(f"v{i} = None" for i in range(count)))
        out_of(capsys)
        run(shell, "%session restore --vars " + ",".join(f"v{i}" for i in range(count)))
        assert f"): {count} variables, 0 imports" in out_of(capsys)
        assert all(shell.user_ns[f"v{i}"] == i for i in range(count))
        run(shell, "%session forget " + " ".join(f"v{i}" for i in range(count)))
        assert f"v{count - 1}." in out_of(capsys)
        long_name = "n" * 200_000
        run(shell, f"%session save {long_name}")
        assert manager.store.exists(long_name)


# --- what is missing, and what there is ----------------------------------------------------------


@pytest.mark.parametrize("number", ["-1", "0"])
def test_restore_refuses_a_generation_number_below_one(
    capsys: pytest.CaptureFixture[str], number: str
) -> None:
    with ipython_shell(autosave=False) as shell:
        ipysession.load_ipython_extension(shell)
        result = shell.run_cell(f"%session restore --generation {number}")
        assert isinstance(result.error_in_exec, UsageError)
        assert (
            f"argument --generation: generations are numbered from 1 (`%session snapshots` "
            f"lists them), not {number}" in str(result.error_in_exec)
        )
        assert "Traceback" not in capsys.readouterr().err


@pytest.mark.parametrize("number", ["1", "99", str(10**30)])
def test_restore_of_a_generation_that_is_not_there_says_which_there_are(
    capsys: pytest.CaptureFixture[str], number: str
) -> None:
    # Generation 1 is rotated away (two are kept, no older ones); 99 and 10**30 were never
    # written. Each said "no saved session '...' yet" of a session that was right there.
    with ipython_shell(autosave=False, keep_generations=2, retention="") as shell:
        ipysession.load_ipython_extension(shell)
        name = manager_of(shell).name
        for value in range(3):
            run(shell, f"a = {value}")
            run(shell, "%session save" + (" --checkpoint first" if value == 0 else ""))
        out_of(capsys)
        result = shell.run_cell(f"%session restore --generation {number}")
        assert result.success
        # The nearest kept: 2 for the thinned 1; 3 for those past the newest.
        nearest = "2" if number == "1" else "3"
        assert re.fullmatch(
            rf"ipysession: Session '{re.escape(name)}' has no generation {number}\. Nearest "
            rf"kept: {nearest} \(saved \d{{4}}-\d\d-\d\d \d\d:\d\d:\d\d\)\. Its "
            r"generations: 2, 3; its checkpoints: first\. `%session restore --generation N` "
            r"or `--checkpoint LABEL` brings one back; `%session snapshots` shows when each "
            r"was saved",
            out_of(capsys).strip(),
        )
        assert shell.user_ns["a"] == 2  # nothing restored


def test_restore_of_a_checkpoint_that_is_not_there_says_which_there_are(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with ipython_shell(autosave=False) as shell:
        ipysession.load_ipython_extension(shell)
        run(shell, "a = 1")
        run(shell, "%session save other --checkpoint before")
        run(shell, "%session save other --checkpoint after")
        out_of(capsys)
        run(shell, "%session restore other --checkpoint missing")
        assert out_of(capsys).strip() == (
            "ipysession: Session 'other' has no checkpoint 'missing'. Its generations: 1, 2; "
            "its checkpoints: after, before. `%session restore 'other' --generation N` or "
            "`--checkpoint LABEL` brings one back; `%session snapshots 'other'` shows when each "
            "was saved"
        )
        run(shell, "%session restore nothing-here --checkpoint missing")
        assert out_of(capsys).strip() == "ipysession: no saved session 'nothing-here' yet."


@pytest.mark.parametrize("label", ["''", "'   '"])
def test_save_refuses_an_empty_checkpoint_label(
    capsys: pytest.CaptureFixture[str], label: str
) -> None:
    # `--checkpoint ''` saved a generation and no checkpoint, and said nothing about it.
    with ipython_shell(autosave=False) as shell:
        ipysession.load_ipython_extension(shell)
        manager = manager_of(shell)
        run(shell, "a = 1")
        result = shell.run_cell(f"%session save --checkpoint {label}")
        assert isinstance(result.error_in_exec, UsageError)
        assert "argument --checkpoint: a checkpoint needs a LABEL (letters, digits, '.', '_' " in (
            str(result.error_in_exec)
        )
        assert "leave out --checkpoint to save without one" in str(result.error_in_exec)
        assert not manager.store.exists(manager.name)  # nothing saved
        assert "Traceback" not in capsys.readouterr().err
