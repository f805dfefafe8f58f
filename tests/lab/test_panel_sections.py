"""The session panel's sections in a real JupyterLab, driven in Debian's headless Chromium:
a variable that was not saved shows with its reason and its fix; a connection shows with its
state, and its Disconnect and Reconnect buttons work (the kernel's variable goes and comes
back); no secret reaches the page. A screenshot per step is saved under the test's tmp_path."""

from __future__ import annotations

from pathlib import Path

import pytest

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
