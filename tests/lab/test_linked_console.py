"""A notebook with a linked console ("New Console for Notebook": the same kernel), after a page
reload that restores both from the workspace.

@jupyterlab/services lets only one connection per kernel handle comms (``KernelManager.connectTo``
gives ``handleComms`` to the first); when the console's connection comes back first, the
notebook's cannot create comms, and the extension must still reach its kernel's ipysession.
"""

from __future__ import annotations

import json
import re
import urllib.request
from typing import Any

import pytest

from tests.builders import wait_for
from tests.lab.conftest import UI_TIMEOUT, LabPage

pytestmark = [pytest.mark.kernel, pytest.mark.lab]

# The notebook panel and the console panel on the page, and whether each one's kernel
# connection handles comms (null while it has none).
CONNECTIONS = """() => {
    const main = Array.from(window.jupyterapp.shell.widgets('main'));
    const kernel = (cls) => {
        const widget = main.find(w => w.hasClass(cls));
        const connection = widget && widget.sessionContext.session
            && widget.sessionContext.session.kernel;
        return connection ? {id: connection.id, handleComms: connection.handleComms} : null;
    };
    return {notebook: kernel('jp-NotebookPanel'), console: kernel('jp-ConsolePanel')};
}"""

# Open the linked console beside the notebook, leaving the notebook active.
CREATE_CONSOLE = """async () => {
    const app = window.jupyterapp;
    const panel = Array.from(app.shell.widgets('main')).find(w => w.hasClass('jp-NotebookPanel'));
    app.shell.activateById(panel.id);
    await app.commands.execute('notebook:create-console', {activate: false});
}"""

COUNT_COMMS = (
    "print(sum(c.target_name == 'ipysession'"
    " for c in get_ipython().kernel.comm_manager.comms.values()))"
)

ACTIVATE_NOTEBOOK = """() => {
    const app = window.jupyterapp;
    const panel = Array.from(app.shell.widgets('main')).find(w => w.hasClass('jp-NotebookPanel'));
    app.shell.activateById(panel.id);
}"""


def _connections(lab: LabPage) -> dict[str, Any]:
    return dict(lab.page.evaluate(CONNECTIONS))


def _workspace_has_console(lab: LabPage) -> bool:
    """Whether the server's saved workspace (what a reload restores) holds the console."""
    server = lab.server
    request = urllib.request.Request(
        f"{server.base}/lab/api/workspaces/default",
        headers={"Authorization": f"token {server.token}"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        workspace = json.loads(response.read())
    return any(key.startswith("console:") for key in workspace.get("data", {}))


def _console_restored_first(lab: LabPage) -> None:
    """Reload until the console's connection is the one handling comms (the bug's condition).

    Which restored panel connects first is up to JupyterLab; a few reloads give both orders.
    """
    for _attempt in range(5):
        lab.page.reload()
        lab.page.wait_for_selector(".jp-Notebook", timeout=UI_TIMEOUT * 1000)
        wait_for(
            lambda: all(_connections(lab).values()),
            "the notebook and the console are connected to their kernel",
            UI_TIMEOUT,
        )
        connections = _connections(lab)
        assert connections["notebook"]["id"] == connections["console"]["id"], connections
        if not connections["notebook"]["handleComms"]:
            return
    pytest.fail(f"the notebook's connection handled comms after every reload: {connections}")


def test_a_linked_console_restored_first_leaves_the_notebook_its_session_state(
    lab_page: LabPage,
) -> None:
    lab = lab_page
    lab.open_new("linked.ipynb")
    lab.run_cell("answer = 42")
    lab.wait_for_saved()
    lab.page.evaluate(CREATE_CONSOLE)
    lab.page.wait_for_selector(".jp-ConsolePanel .jp-CodeConsole-promptCell")
    wait_for(lambda: _workspace_has_console(lab), "the workspace keeps the console", UI_TIMEOUT)
    lab.shot("console-opened")

    _console_restored_first(lab)
    lab.page.evaluate(ACTIVATE_NOTEBOOK)
    lab.shot("reloaded")
    status = lab.wait_for_status(
        lambda text: text.startswith("linked.ipynb:") and "saved" in text, "the session saved"
    )
    assert "…" not in status, status

    lab.page.click(".jp-ipysession-status")  # opens the session panel
    lab.page.locator(".jp-ipysession-snapshot").first.wait_for()
    assert lab.page.locator(".jp-ipysession-section").count() > 0
    lab.shot("panel")

    lab.page.evaluate(ACTIVATE_NOTEBOOK)
    lab.menu("Kernel", "Restart Kernel and Keep Session")
    status = lab.wait_for_status(lambda text: "restored" in text, "restored")
    assert re.fullmatch(r"linked\.ipynb: restored (\d+) of \1", status), status
    lab.shot("restored")
    assert lab.run_cell("print(answer)").strip() == "42"
    # One comm for the notebook in the new kernel, so each state push reaches it once; and the
    # pushes arrive: the next save shows.
    assert lab.run_cell(COUNT_COMMS).strip() == "1"
    lab.run_cell("more = answer + 1")
    lab.wait_for_saved()
    lab.shot("saved-after-restart")
    # Comm handling stays with the console's connection: the extension took nothing from it.
    connections = _connections(lab)
    assert connections["console"]["handleComms"] is True, connections
    assert connections["notebook"]["handleComms"] is False, connections
