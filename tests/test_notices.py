"""ipysession never writes into the output of a cell that did not ask for it (issue 11).

The demo failed on a machine without an OS keyring: the one-time notice "ipysession created its
master key in ..." was printed under whatever user cell happened to run during the first save.
In a kernel, notices now go to ``%session status`` and the log; a ``%session`` cell shows them.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ipysession.extension import _asks_for_session
from tests.builders import wait_for
from tests.kernels import CellResult, Kernel, start_kernel

pytestmark = pytest.mark.kernel

MANAGER = "__import__('ipysession.extension').extension.get_manager(get_ipython())"
# No OS keyring: the first save creates a key file and says so once.
NO_KEYRING = (
    'c.SessionManager.key_backend = "auto"',
    "c.SessionManager.autosave_interval = 0.2",
)
NO_KEYRING_ENV = {"PYTHON_KEYRING_BACKEND": "keyring.backends.fail.Keyring"}


def saved_generation(kernel: Kernel) -> int:
    """Ask as a frontend would (a silent user expression): no cell runs, no cell output."""
    kc = kernel.client
    kc.execute("", silent=True, user_expressions={"g": f"{MANAGER}.status().last_generation"})
    reply = kc.get_shell_msg(timeout=60)
    text = reply["content"]["user_expressions"]["g"]["data"]["text/plain"]
    return 0 if text == "None" else int(text)


def everything_shown(result: CellResult) -> str:
    return result.stdout + result.stderr + json.dumps(result.outputs)


def test_a_notice_raised_while_user_cells_run_stays_out_of_them(tmp_path: Path) -> None:
    with start_kernel(tmp_path, *NO_KEYRING, env=NO_KEYRING_ENV) as kernel:
        shown: list[str] = []

        def user_cell() -> None:
            i = len(shown)
            shown.append(everything_shown(kernel.run(f"x{i} = {i}\nprint('cell', {i})")))

        # User cells keep running while the first save (which creates the key) happens.
        wait_for(lambda: user_cell() or saved_generation(kernel) >= 1, "the first save")
        for _ in range(3):
            user_cell()
        # Every user cell shows exactly what it printed, nothing from ipysession.
        assert shown == [f"cell {i}\n" + "[]" for i in range(len(shown))]

        status = kernel.run("%session status").text
        assert "Notices (" in status
        assert "created its master key" in status
        assert str(tmp_path / "config") in status


def test_a_session_cell_shows_the_notices_it_raised(tmp_path: Path) -> None:
    with start_kernel(tmp_path, *NO_KEYRING, env=NO_KEYRING_ENV) as kernel:
        # The key is first needed by this explicit save: the cell that asked hears about it.
        shown = kernel.run("z = 1\n%session save").text
        assert "created its master key" in shown


@pytest.mark.parametrize(
    ("source", "asks"),
    [
        ("%session status", True),
        ("x = 1\n  %session save --checkpoint a", True),
        ("session = make_session()", False),
        ("print('%session')", False),
        ("", False),
        (None, False),
    ],
)
def test_which_cells_ask(source: str | None, asks: bool) -> None:
    assert _asks_for_session(source) is asks
