"""The session panel's sections in a real JupyterLab, driven in Debian's headless Chromium:
a variable that was not saved shows with its reason and its fix; a connection shows with its
state, and its Disconnect and Reconnect buttons work (the kernel's variable goes and comes
back); no secret reaches the page. A screenshot per step is saved under the test's tmp_path."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.builders import wait_for
from tests.lab.conftest import LabPage
from tests.lab.server import write_notebook

pytestmark = [pytest.mark.kernel, pytest.mark.lab]

SECRET = "tok-51ab-panel-SECRET"


def test_not_saved_and_connections_sections(lab_page: LabPage, tmp_path: Path) -> None:
    lab = lab_page
    lab.artifacts = tmp_path
    db = tmp_path / "shop.db"
    write_notebook(lab.server.root / "sections.ipynb")
    lab.open("sections.ipynb")
    lab.run_cell("gen = (i for i in range(3))\nkept = 1")
    lab.run_cell(f"%session connect shop sqlalchemy 'sqlite:///{db}?token={SECRET}'")
    lab.wait_for_status(lambda text: "saved" in text, "saved")

    lab.page.click(".jp-ipysession-status")
    not_saved = lab.page.locator(".jp-ipysession-not-saved", has_text="gen")
    not_saved.wait_for()
    text = not_saved.inner_text()
    assert "generator" in text
    assert "Fix:" in text
    assert "%session replay gen" in text
    lab.shot("not-saved")

    connection = lab.page.locator(".jp-ipysession-connection", has_text="shop")
    connection.wait_for()
    assert connection.get_attribute("data-state") == "connected"
    assert "bound to `shop`" in connection.inner_text()
    lab.shot("connection")

    connection.locator("button", has_text="Disconnect").click()
    lab.page.locator(".jp-ipysession-connection[data-state='disconnected']").wait_for()
    lab.shot("disconnected")
    assert lab.run_cell("print('shop' in globals())").strip() == "False"

    lab.page.locator(".jp-ipysession-connection", has_text="shop").locator(
        "button", has_text="Reconnect"
    ).click()
    lab.page.locator(".jp-ipysession-connection[data-state='connected']").wait_for()
    lab.shot("reconnected")
    assert lab.run_cell("print(type(shop).__name__)").strip() == "Engine"

    recent = lab.page.locator(".jp-ipysession-recent", has_text="shop")
    recent.wait_for()
    panel = lab.page.locator(".jp-ipysession-panel").inner_text()
    assert "No forks of this session." in panel
    assert SECRET not in panel
    lab.shot("panel")


def test_forks_merge_after_a_preview_and_discard(lab_page: LabPage, tmp_path: Path) -> None:
    lab = lab_page
    lab.artifacts = tmp_path
    write_notebook(lab.server.root / "forks.ipynb")
    lab.open("forks.ipynb")
    lab.run_cell("a = 1")
    lab.wait_for_status(lambda text: "saved" in text, "saved")
    manager = "__import__('ipysession.extension').extension.get_manager(get_ipython())"
    fork = "forks.ipynb (fork abcd1234)"
    lab.run_cell(f"b = 2\n{manager}.save({manager}.name + ' (fork abcd1234)')\ndel b")

    lab.page.click(".jp-ipysession-status")
    row = lab.page.locator(".jp-ipysession-fork", has_text=fork)
    row.wait_for()
    lab.shot("fork-listed")

    row.locator("button", has_text="Merge…").click()
    body = lab.dialog().inner_text()
    lab.shot("merge-preview")
    assert "would keep the fork's variables a, b" in body
    assert "Nothing was changed" in body
    lab.click_dialog_button("Merge")
    wait_for(lambda: "Merged fork" in lab.notifications(), "the merge's notification")
    lab.shot("merged")

    lab.page.locator(".jp-ipysession-fork", has_text=fork).locator(
        "button", has_text="Discard"
    ).click()
    lab.dialog()
    lab.click_dialog_button("Discard")
    lab.page.locator(
        ".jp-ipysession-section-forks", has_text="No forks of this session."
    ).wait_for()
    lab.shot("discarded")
