"""In a real Jupyter kernel, ``%session`` views and the restore summary reach the frontend with
both forms: ``text/html`` (a real table, code in ``<pre>``) and ``text/plain`` (the text a
terminal shows), in the display data of the cell that asked (issue 16)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.kernels import FAST_AUTOSAVE, CellResult, start_kernel, wait_for_autosave
from tests.test_html import parse, states, tables

pytestmark = pytest.mark.kernel

FUNCTION = "def twice(a):\n    if a:\n        return a * 2\n    return 0\n"


def bundle(result: CellResult) -> dict[str, Any]:
    """The one display carrying ipysession's HTML in this cell's output."""
    found = [o["data"] for o in result.outputs if "text/html" in o.get("data", {})]
    assert len(found) == 1, result.outputs
    data: dict[str, Any] = found[0]
    assert set(data) == {"text/plain", "text/html"}
    return data


def test_status_history_and_the_restore_summary_are_html_and_text(tmp_path: Path) -> None:
    with start_kernel(tmp_path, FAST_AUTOSAVE) as kernel:
        kernel.run(f"x = 1\n{FUNCTION}")
        wait_for_autosave(kernel)

        status = bundle(kernel.run("%session status"))
        assert status["text/plain"].splitlines()[2] == "State:     ok"
        tree = parse(status["text/html"])
        fields = tables(tree)[0]
        assert ["State", "ok"] in fields
        assert any(row[0] == "Budgets" for row in fields)
        assert states(tree) == {"ok": "good"}

        history = bundle(kernel.run("%session history"))
        tree = parse(history["text/html"])
        sources = [pre.text().rstrip("\n") for pre in tree.find_all("pre")]
        assert f"x = 1\n{FUNCTION}".rstrip("\n") in sources  # indentation kept, in <pre>

        kernel.kill_hard()
        first = kernel.run("y = 2")  # the summary waits for the first cell after a restart
        summary = bundle(first)
        assert summary["text/plain"].startswith("ipysession: restored ")
        assert "(imports " in summary["text/plain"]
        assert ", replay 0 ms, connections " in summary["text/plain"]
        assert "ipysession-restore" in parse(summary["text/html"]).attrs["class"].split()
        assert kernel.value("twice(21)") == 42
