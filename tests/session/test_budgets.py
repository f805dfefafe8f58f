"""Size budgets that fit the machine (issue 17), and what a value over them says.

The rule (:func:`derive_budgets`) is tested on numbers; the measuring on this machine's real
memory and disk; the manager and the magic in a real in-process shell, where the setting a
skipped value's reason names is run as written and then keeps the value.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

import pytest
from traitlets import TraitError

import ipysession
from ipysession.capture.describe import GiB, MiB, budget_hint, fitting_budget
from ipysession.extension import get_manager
from ipysession.presentation import status_view
from ipysession.session import budgets
from ipysession.session.budgets import (
    CEILING_VARIABLE,
    FLOOR,
    Budgets,
    derive_budgets,
    free_disk,
    machine_budgets,
)
from ipysession.session.manager import SessionManager
from ipysession.store.fileformat import DEFAULT_MAX_VALUE_BYTES
from tests.shell import ipython_shell, restart, run

#: Other processes write to the disk between two measurements: a quarter of 4 GiB written.
DISK_DRIFT = 1 * GiB

# --- the rule -----------------------------------------------------------------------------------


def test_a_large_machine_gets_large_budgets() -> None:
    # 64 GiB of memory, 2 TiB free: memory decides (a quarter and a half of it).
    derived = derive_budgets(64 * GiB, 2048 * GiB, where="/data")
    assert derived.max_variable_bytes == 16 * GiB
    assert derived.max_session_bytes == 32 * GiB
    assert derived.source == "derived from 64.0 GiB of memory and 2048.0 GiB free under /data"


def test_a_nearly_full_disk_limits_the_budgets() -> None:
    # An eighth and a quarter of 40 GiB free: less than the memory's shares.
    derived = derive_budgets(64 * GiB, 40 * GiB)
    assert derived.max_variable_bytes == 5 * GiB
    assert derived.max_session_bytes == 10 * GiB


def test_one_variable_never_gets_more_than_a_blob_may_hold() -> None:
    # 2 TiB of memory and 100 TiB of disk: a quarter would be 512 GiB, which no reader accepts.
    derived = derive_budgets(2048 * GiB, 100 * 1024 * GiB)
    assert derived.max_variable_bytes == CEILING_VARIABLE == DEFAULT_MAX_VALUE_BYTES
    assert derived.max_session_bytes == 1024 * GiB


def test_budgets_are_never_below_the_fixed_ones_of_earlier_releases() -> None:
    derived = derive_budgets(512 * MiB, 100 * MiB)
    assert derived.max_variable_bytes == 256 * MiB
    assert derived.max_session_bytes == 1 * GiB


def test_budgets_are_whole_mebibytes_and_the_session_holds_its_largest_variable() -> None:
    derived = derive_budgets(10 * GiB + 12345, None)
    assert derived.max_variable_bytes % MiB == 0
    assert derived.max_session_bytes % MiB == 0
    assert derived.max_session_bytes >= derived.max_variable_bytes
    assert "free under" not in derived.source


def test_nothing_measured_means_the_fixed_budgets_and_says_so() -> None:
    assert derive_budgets(None, None) is FLOOR
    assert (FLOOR.max_variable_bytes, FLOOR.max_session_bytes) == (256 * MiB, 1 * GiB)
    assert "could not be measured" in FLOOR.source


# --- measuring this machine ---------------------------------------------------------------------


def test_this_machine_is_measured_under_the_store(tmp_path: Path) -> None:
    root = tmp_path / "not" / "made" / "yet"  # before the first save creates it
    free, where = free_disk(root)
    assert where == str(tmp_path)
    assert free is not None
    assert free > 0
    memory = budgets.memory_bytes()
    assert memory is not None  # Linux: sysconf, or the cgroup's limit
    measured = machine_budgets(root)
    # The same rule on what the machine says now (free disk moves: compare the rule, not bytes).
    expected = derive_budgets(memory, shutil.disk_usage(tmp_path).free, where=str(tmp_path))
    assert measured.max_variable_bytes >= FLOOR.max_variable_bytes
    assert abs(measured.max_session_bytes - expected.max_session_bytes) <= DISK_DRIFT
    assert measured.source.startswith("derived from ")


def test_a_cgroup_limit_below_the_physical_memory_is_the_memory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A container's limit file, written here: /sys/fs/cgroup cannot be changed by a test.
    limit = tmp_path / "memory.max"
    limit.write_text("1073741824\n")
    monkeypatch.setattr(budgets, "_CGROUP_FILES", (limit,))
    assert budgets.memory_bytes() == 1 * GiB
    limit.write_text("max\n")  # cgroup v2: no limit
    assert budgets.memory_bytes() != 1 * GiB


# --- the value that fits ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("size", "value", "expression"),
    [
        (int(1.2 * GiB), 2 * GiB, "2 * 1024**3"),
        (300 * MiB, 310 * MiB, "310 * 1024**2"),
        (2 * MiB, 3 * MiB, "3 * 1024**2"),
        (1, 1 * MiB, "1 * 1024**2"),
    ],
)
def test_the_value_that_fits_is_round_with_a_little_room(
    size: int, value: int, expression: str
) -> None:
    assert fitting_budget(size) == (value, expression)
    assert eval(expression) == value  # what the message asks users to run
    assert value > size


def test_the_hint_is_a_line_to_run() -> None:
    assert budget_hint("max_variable_bytes", int(1.2 * GiB), "saves it") == (
        "`%config SessionManager.max_variable_bytes = 2 * 1024**3` (2.0 GiB) saves it"
    )


# --- the manager --------------------------------------------------------------------------------


def test_unset_budgets_are_the_machines_and_set_ones_win(tmp_path: Path) -> None:
    manager = SessionManager(root=str(tmp_path / "store"))
    machine = machine_budgets(tmp_path / "store")
    assert manager.max_variable_bytes == 0  # the default: derive
    derived = manager.budgets()
    assert derived.max_variable_bytes >= FLOOR.max_variable_bytes
    assert abs(derived.max_session_bytes - machine.max_session_bytes) <= DISK_DRIFT
    assert manager.budgets() is derived  # measured once per kernel
    manager.max_variable_bytes = 5 * MiB
    mixed = manager.budgets()
    assert mixed.max_variable_bytes == 5 * MiB
    assert mixed.max_session_bytes == derived.max_session_bytes
    assert mixed.source.startswith("max_variable_bytes set, the other derived from")
    manager.max_session_bytes = 7 * MiB
    assert manager.budgets() == Budgets(5 * MiB, 7 * MiB, "set in the configuration")


@pytest.mark.parametrize("bad", [-1, -(2**40)])
def test_a_negative_budget_is_refused(bad: int) -> None:
    manager = SessionManager()
    with pytest.raises(TraitError, match="max_variable_bytes must be a number of bytes"):
        manager.max_variable_bytes = bad


def test_status_says_which_budgets_are_in_force_and_where_they_come_from() -> None:
    with ipython_shell(autosave=False, max_session_bytes=3 * GiB) as shell:
        ipysession.load_ipython_extension(shell)
        manager = get_manager(shell)
        assert manager is not None
        lines = status_view(manager.status()).notice.lines
        [line] = [line for line in lines if line.startswith("Budgets:")]
        assert re.fullmatch(
            r"Budgets:   \d+\.\d (MiB|GiB) per variable, 3\.0 GiB per session "
            r"\(max_session_bytes set, the other derived from .* of memory and .* free under .*\)",
            line,
        ), line


# --- over budget: what was left out, and the one setting that keeps it ---------------------------


def _skipped(manager: Any) -> dict[str, str]:
    return dict(manager.status().skipped)


def test_a_value_over_its_budget_says_the_setting_and_running_it_keeps_the_value(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with ipython_shell(autosave=False, max_variable_bytes=1 * MiB) as shell:
        ipysession.load_ipython_extension(shell)
        manager = get_manager(shell)
        assert manager is not None
        run(shell, "big = bytes(3 * 1024 * 1024)\nsmall = 1")
        reason = _skipped(manager)["big"]
        assert "over the per-variable limit of 1.0 MiB" in reason
        [command] = re.findall(r"`(%config [^`]+)`", reason)
        assert command == "%config SessionManager.max_variable_bytes = 4 * 1024**2"
        run(shell, "%session save")
        saved = capsys.readouterr().out
        assert "Not saved (1):" in saved
        assert command in saved  # the save's summary names it too
        run(shell, command)  # exactly what the message says
        assert manager.max_variable_bytes == 4 * MiB
        run(shell, "%session save")  # the value itself did not change
        assert "big" not in _skipped(manager)
        restart(shell)
        assert shell.user_ns["big"] == bytes(3 * 1024 * 1024)


def test_a_session_over_its_budget_names_the_total_that_keeps_everything() -> None:
    with ipython_shell(autosave=False, max_session_bytes=2 * MiB) as shell:
        ipysession.load_ipython_extension(shell)
        manager = get_manager(shell)
        assert manager is not None
        run(shell, "a = bytes(900 * 1024)\nb = bytes(900 * 1024)\nc = bytes(900 * 1024)")
        skipped = _skipped(manager)
        assert len(skipped) == 1
        [reason] = skipped.values()
        assert "would take the session over its limit of 2.0 MiB" in reason
        [command] = re.findall(r"`(%config [^`]+)`", reason)
        assert reason.endswith("keeps them all")
        run(shell, command)
        run(shell, "a = bytes(900 * 1024)\nb = bytes(900 * 1024)\nc = bytes(900 * 1024)")
        assert _skipped(manager) == {}


def test_config_reaches_the_manager_only_while_it_is_loaded() -> None:
    with ipython_shell(autosave=False) as shell:
        ipysession.load_ipython_extension(shell)
        manager = get_manager(shell)
        assert manager is not None
        run(shell, "%config SessionManager.max_history = 7")
        assert manager.max_history == 7
        ipysession.unload_ipython_extension(shell)
        assert manager not in shell.configurables
