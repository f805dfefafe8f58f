"""The notebook's layout kept with its session and re-applied in a new page and a new kernel:
collapsed cells, the active cell, the scroll position, the session panel and its width, and
the linked console and output view beside the notebook, each where it was (a real
``jupyter lab``, Debian's Chromium, the kernel read through a second client)."""

from __future__ import annotations

import ast
from typing import Any

from tests.builders import wait_for
from tests.kernels import MANAGER
from tests.lab.conftest import UI_TIMEOUT, LabPage

# What the page shows, described as the test checks it: the notebook found by its class (the
# current widget may be its console), each companion placed from the rectangles.
DESCRIBE = """() => {
    const app = window.jupyterapp;
    const main = Array.from(app.shell.widgets('main'));
    const panel = main.find(w => w.hasClass('jp-NotebookPanel'));
    const box = panel.node.getBoundingClientRect();
    const companions = main.filter(w => w !== panel).map(w => {
        const r = w.node.getBoundingClientRect();
        const output = w.content && w.content.hasClass && w.content.hasClass('jp-LinkedOutputView');
        return {
            kind: w.hasClass('jp-ConsolePanel') ? 'console' : output ? 'output' : w.id,
            cell: output ? w.content.index : null,
            below: r.top >= box.bottom - 8,
            right: r.left >= box.right - 8,
        };
    });
    const cells = panel.content.widgets;
    const where = hidden => cells.flatMap((c, i) => (hidden(c) ? [i] : []));
    const side = document.getElementById('ipysession-panel');
    return {
        companions,
        inputs: where(c => c.inputHidden),
        outputs: where(c => c.outputHidden === true),
        active: panel.content.activeCellIndex,
        scrollTop: panel.content.outerNode.scrollTop,
        sideOpen: !!side && side.offsetWidth > 0,
        sideWidth: side ? side.getBoundingClientRect().width : 0,
    };
}"""

# Run a command with the notebook active (the console or output view may be current).
ON_NOTEBOOK = """async ([command, cell]) => {
    const app = window.jupyterapp;
    const panel = Array.from(app.shell.widgets('main')).find(w => w.hasClass('jp-NotebookPanel'));
    app.shell.activateById(panel.id);
    panel.content.activeCellIndex = cell;
    const args = command === 'notebook:create-console' ? {activate: false} : {};
    await app.commands.execute(command, args);
}"""

# Move the output view right of the notebook, as dragging its tab there does.
OUTPUT_VIEW_RIGHT = """() => {
    const app = window.jupyterapp;
    const main = Array.from(app.shell.widgets('main'));
    const panel = main.find(w => w.hasClass('jp-NotebookPanel'));
    const view = main.find(
        w => w.content && w.content.hasClass && w.content.hasClass('jp-LinkedOutputView')
    );
    app.shell.add(view, 'main', {ref: panel.id, mode: 'split-right'});
    app.shell.activateById(panel.id);
}"""


def _kernel_value(lab: LabPage, notebook: str, expression: str) -> Any:
    """Evaluate ``expression`` in the notebook's kernel through a second client, as a console
    attached to it would (the page's own cells would move the active cell)."""
    from jupyter_client.blocking.client import BlockingKernelClient

    (session,) = [
        s
        for s in lab.server.api("GET", "sessions")
        if s["path"] == notebook and s["type"] == "notebook"
    ]
    connection = lab.server.home / "jupyter-runtime" / f"kernel-{session['kernel']['id']}.json"
    client = BlockingKernelClient(connection_file=str(connection))
    client.load_connection_file()
    client.start_channels()
    try:
        client.wait_for_ready(timeout=60)
        reply = client.execute_interactive(
            "", user_expressions={"value": f"repr({expression})"}, timeout=60
        )
        text = reply["content"]["user_expressions"]["value"]["data"]["text/plain"]
        return ast.literal_eval(ast.literal_eval(text))
    finally:
        client.stop_channels()


def _kept_layout(lab: LabPage) -> dict[str, Any]:
    return _kernel_value(lab, "layout.ipynb", f"{MANAGER}.layout") or {}


def _page(lab: LabPage) -> dict[str, Any]:
    return dict(lab.page.evaluate(DESCRIBE))


def _wait_until_applied(lab: LabPage) -> None:
    try:
        lab.page.wait_for_selector(
            ".jp-NotebookPanel[data-ipysession-layout=applied]",
            state="attached",
            timeout=UI_TIMEOUT * 1000,
        )
    except Exception as exc:
        shot = lab.shot("not-applied")
        raise AssertionError(f"the layout is not re-applied (screenshot {shot}): {exc}") from None


def _shown(page: dict[str, Any]) -> list[tuple[str, int | None]]:
    """The companions the page shows, each as often as it shows it."""
    return sorted((c["kind"], c["cell"]) for c in page["companions"])


def _drag_side_panel_wider(lab: LabPage, by: int) -> None:
    """Drag the handle between the main area and the right side area, as a person would."""
    handle = lab.page.locator("#jp-main-split-panel > .lm-SplitPanel-handle:visible").last
    box = handle.bounding_box()
    assert box is not None
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    lab.page.mouse.move(x, y)
    lab.page.mouse.down()
    lab.page.mouse.move(x - by / 2, y, steps=5)
    lab.page.mouse.move(x - by, y, steps=5)
    lab.page.mouse.up()


def test_layout_is_kept_with_the_session_and_reapplied_in_a_new_page(lab_page: LabPage) -> None:
    lab = lab_page
    lab.open_new("layout.ipynb", *(f"cell_{i} = {i}" for i in range(30)))
    lab.run_cell("print('hidden output')")  # cell 30
    lab.run_cell("print('shown in an output view')")  # cell 31
    # Saved without collapsed cells: they come back from the session's layout, not the file.
    lab.page.evaluate("() => window.jupyterapp.commands.execute('docmanager:save')")
    lab.page.evaluate(ON_NOTEBOOK, ["notebook:hide-cell-code", 5])
    lab.page.evaluate(ON_NOTEBOOK, ["notebook:hide-cell-outputs", 30])
    lab.page.evaluate(ON_NOTEBOOK, ["notebook:create-output-view", 31])
    lab.page.evaluate(OUTPUT_VIEW_RIGHT)
    lab.page.evaluate(ON_NOTEBOOK, ["notebook:create-console", 12])
    lab.page.click(".jp-ipysession-status")  # opens the session panel
    default_width = _page(lab)["sideWidth"]
    _drag_side_panel_wider(lab, 150)
    lab.page.evaluate(
        "() => { const n = Array.from(window.jupyterapp.shell.widgets('main'))"
        ".find(w => w.hasClass('jp-NotebookPanel')).content; n.activeCellIndex = 12;"
        " n.scrollTo(300); }"
    )
    before = _page(lab)
    lab.shot("layout-built")
    assert before["inputs"] == [5], before
    assert before["outputs"] == [30], before
    assert before["sideOpen"], before
    assert before["sideWidth"] > default_width + 100, (default_width, before)

    wait_for(
        lambda: (
            len(_kept_layout(lab).get("companions", [])) == 2
            and _kept_layout(lab).get("activeCellIndex") == 12
        ),
        "the kernel keeps the layout",
        UI_TIMEOUT,
    )
    kept = _kept_layout(lab)
    assert kept["version"] == 2
    assert kept["scrollTop"] > 0, kept
    assert kept["collapsed"] == {"inputs": [5], "outputs": [30]}
    assert sorted(kept["companions"], key=lambda c: c["kind"]) == [
        {"kind": "console", "mode": "split-bottom"},
        {"kind": "output", "cell": 31, "mode": "split-right"},
    ]
    assert kept["sidePanel"]["open"] is True
    assert abs(kept["sidePanel"]["width"] - before["sideWidth"]) < 40, (kept, before)
    lab.shot("layout-kept")

    # A new kernel and a new page (as after `ipysession import` on another machine).
    lab.open_in_new_kernel("layout.ipynb")
    _wait_until_applied(lab)
    lab.shot("layout-reapplied")
    after = _page(lab)
    assert _shown(after) == [("console", None), ("output", 31)], after  # each once
    by_kind = {c["kind"]: c for c in after["companions"]}
    assert by_kind["console"]["below"], after
    assert by_kind["output"]["right"], after
    assert after["inputs"] == [5], after
    assert after["outputs"] == [30], after
    assert after["sideOpen"], after
    assert abs(after["sideWidth"] - before["sideWidth"]) < 40, (after, before)
    assert after["scrollTop"] > 0, after
