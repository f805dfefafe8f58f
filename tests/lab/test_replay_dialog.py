"""The replay question in a real JupyterLab (issue 14: a cell with side effects is replayed only
with consent; "with the JupyterLab extension: a dialog"), driven in Debian's headless Chromium."""

from __future__ import annotations

import pytest

from tests.builders import wait_for
from tests.lab.conftest import UI_TIMEOUT, LabPage
from tests.lab.server import write_notebook

pytestmark = [pytest.mark.kernel, pytest.mark.lab]


def test_a_value_made_by_a_cell_that_writes_a_file_is_replayed_after_yes(
    lab_page: LabPage,
) -> None:
    lab = lab_page
    log = lab.server.root / "replay-log.txt"
    write_notebook(lab.server.root / "replay.ipynb")
    lab.open("replay.ipynb")
    assert lab.run_cell("import threading").strip() == ""
    lab.run_cell(
        "guard = threading.Lock()\n"
        "with open('replay-log.txt', 'a') as out:\n"
        "    out.write('once\\n')"
    )
    lab.wait_for_status(lambda text: "saved" in text, "saved")

    lab.menu("Kernel", "Restart Kernel…")
    lab.dialog()
    lab.click_dialog_button("Restart")

    # Asked once, before any cell runs; nothing ran yet.
    body = lab.dialog().inner_text()
    lab.shot("replay-dialog")
    assert "Rebuild values by replaying their cells?" in body
    assert "guard (" in body
    assert "writes files (open(..., 'a'))" in body
    assert log.read_text() == "once\n"
    lab.click_dialog_button("Replay")

    wait_for(lambda: log.read_text() == "once\nonce\n", "the cell replayed", UI_TIMEOUT)
    assert lab.run_cell("print(guard.acquire(blocking=False))").strip() == "True"
    lab.shot("replayed")
    wait_for(
        lambda: "Rebuilt guard" in lab.panel_notices(),
        "the replay's summary kept in the session panel",
        UI_TIMEOUT,
    )
