"""The JupyterLab extension in a real JupyterLab, driven in Debian's headless Chromium.

Each test works as a person would: menus, buttons, dialogs; a screenshot per step is saved under
tests/lab/artifacts/<test>/ (CI keeps them as artefacts).
"""

from __future__ import annotations

import re

import pytest

from tests.builders import wait_for
from tests.kernels import FAST_AUTOSAVE, MANAGER, start_kernel, wait_for_autosave
from tests.lab.conftest import UI_TIMEOUT, LabPage
from tests.lab.server import write_notebook

pytestmark = [pytest.mark.kernel, pytest.mark.lab]


def test_restart_from_kernel_menu_restores_before_any_cell_runs(lab_page: LabPage) -> None:
    lab = lab_page
    lab.open_new("work.ipynb")
    lab.wait_for_status(lambda text: text == "work.ipynb: new", "a new session")
    lab.shot("opened")

    # Build a workspace: variables and an import.
    assert lab.run_cell("answer = 42\nwords = ['a', 'b']").strip() == ""
    assert lab.run_cell("import math\nprint(math.pi > 3)").strip() == "True"
    lab.wait_for_saved()
    lab.shot("saved")

    lab.menu("Kernel", "Restart Kernel…")
    body = lab.dialog().inner_text()
    lab.shot("restart-dialog")
    assert "keeps session 'work.ipynb'" in body
    assert "will be lost" not in body
    lab.click_dialog_button("Restart")

    # Restored, told in the status bar before any cell runs.
    status = lab.wait_for_status(lambda text: "restored" in text, "restored")
    assert re.fullmatch(r"work\.ipynb: restored (\d+) of \1", status), status
    lab.shot("restored-before-any-cell")

    # The summary is a notification, not text under a cell.
    wait_for(
        lambda: "ipysession: restored" in lab.notifications(),
        "a notification with the restore summary",
        UI_TIMEOUT,
    )
    lab.shot("notification")
    assert lab.run_cell("print(answer, words, math.floor(2.5))").strip() == "42 ['a', 'b'] 2"
    assert "ipysession" not in lab.outputs()
    lab.shot("first-cell-after-restart")


def test_panel_lists_snapshots_and_restores_a_checkpoint(lab_page: LabPage) -> None:
    lab = lab_page
    lab.open_new("panel.ipynb")
    lab.run_cell("x = 42")
    lab.wait_for_saved()

    # The status bar item opens the panel, which lists the snapshots.
    lab.page.click(".jp-ipysession-status")
    lab.page.locator(".jp-ipysession-snapshot").first.wait_for()
    lab.shot("panel")

    lab.page.locator(".jp-ipysession-button", has_text="Save checkpoint").click()
    lab.dialog().locator("input").fill("good")
    lab.shot("checkpoint-dialog")
    lab.click_dialog_button("OK")
    checkpoint = lab.page.locator(".jp-ipysession-snapshot", has_text="checkpoint good")
    checkpoint.wait_for()
    lab.shot("checkpoint-listed")

    lab.run_cell("x = 0")
    checkpoint.locator("button", has_text=re.compile("^Restore$")).click()
    wait_for(
        lambda: "restored 'panel.ipynb' (checkpoint 'good')" in lab.notifications(),
        "a notification that the checkpoint was restored",
        UI_TIMEOUT,
    )
    lab.shot("checkpoint-restored")
    assert lab.run_cell("print(x)").strip() == "42"


def test_second_kernel_on_a_held_session_asks_fork_read_only_or_take_over(
    lab_page: LabPage,
) -> None:
    lab = lab_page
    notebook = lab.server.root / "shared.ipynb"
    write_notebook(notebook)
    # Another kernel on the same notebook holds its session (a second server, a console...).
    with start_kernel(
        lab.server.home, FAST_AUTOSAVE, env={"JPY_SESSION_NAME": str(notebook)}
    ) as other:
        other.run("shared = 'from the other kernel'")
        wait_for_autosave(other)

        lab.open("shared.ipynb")
        body = lab.dialog().inner_text()
        lab.shot("conflict-dialog")
        assert "is in use by" in body
        assert "This kernel opened it as a fork" in body
        # The configured on_conflict ('fork') is the default button.
        default = lab.page.locator(".jp-Dialog-button.jp-mod-accept")
        assert default.inner_text().strip() == "Fork"

        lab.click_dialog_button("Take over")
        status = lab.wait_for_status(
            lambda text: text.startswith("shared.ipynb: ") and "fork" not in text, "taken over"
        )
        assert "error" not in status
        assert "read-only" not in status
        lab.shot("taken-over")
        assert lab.run_cell("print(shared)").strip() == "from the other kernel"
        assert other.value(f"{MANAGER}.fork_of") is None
        other.run("after = 1")
        wait_for(
            lambda: other.value(f"{MANAGER}.fork_of") == str(notebook),
            "the other kernel continues as a fork",
            UI_TIMEOUT,
        )


def test_renamed_notebook_finds_its_session_in_a_new_kernel(lab_page: LabPage) -> None:
    lab = lab_page
    lab.open_new("before.ipynb")
    lab.run_cell("kept = 'yes'")
    lab.wait_for_saved()
    lab.page.evaluate("() => window.jupyterapp.shell.currentWidget.context.save()")
    wait_for(
        lambda: "ipysession" in (lab.server.root / "before.ipynb").read_text(),
        "the notebook's metadata keeps its session id",
        UI_TIMEOUT,
    )

    # Not awaited: the command ends when its dialog closes.
    lab.page.evaluate("() => { window.jupyterapp.commands.execute('docmanager:rename'); }")
    lab.dialog().locator("input").fill("after.ipynb")
    lab.shot("rename-dialog")
    lab.click_dialog_button("Rename")
    wait_for(lambda: (lab.server.root / "after.ipynb").exists(), "the notebook is renamed", 60)

    # A new browser page and a new kernel: the kernel is named after the new path.
    lab.open_in_new_kernel("after.ipynb")
    # Adopted, then saved under the new name at once.
    lab.wait_for_status(
        lambda text: text.startswith("after.ipynb: ") and text != "after.ipynb: new",
        "the adopted session",
    )
    wait_for(
        lambda: "was renamed or moved; it took its session" in lab.panel_notices(),
        "a notice that the session followed the notebook",
        UI_TIMEOUT,
    )
    lab.shot("renamed-restored")
    assert lab.run_cell("print(kept)").strip() == "yes"


def test_a_kernel_without_ipysession_shows_nothing(lab_page: LabPage) -> None:
    lab = lab_page
    write_notebook(lab.server.root / "plain.ipynb", kernel="plain")
    lab.page.goto(lab.server.url("lab/tree/plain.ipynb", reset=True))
    lab.page.wait_for_selector(".jp-Notebook")
    lab.page.get_by_text("Python (no ipysession) | Idle").wait_for()
    assert lab.run_cell("print(6 * 7)").strip() == "42"
    # The comm was refused: the item hides, no notification, no dialog, the commands are off.
    wait_for(lambda: lab.status() == "", "the status bar item hides", UI_TIMEOUT)
    lab.shot("plain-kernel")
    assert "ipysession" not in lab.notifications()
    assert lab.page.locator(".jp-Dialog-content").count() == 0
    enabled = lab.page.evaluate(
        "() => window.jupyterapp.commands.isEnabled('ipysession:restart-keep')"
    )
    assert enabled is False
