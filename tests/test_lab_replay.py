"""The replay question over the real ``ipysession`` comm of a real kernel (issue 14: "a cell that
writes files ... asks first; with the JupyterLab extension: a dialog"). The state the extension
gets right after a restart names the values waiting for consent; its "Replay" answer rebuilds
them, running the side effect once more; nothing runs without that answer."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.kernels import FAST_AUTOSAVE, start_kernel
from tests.lab_comm import ask, restarted_and_subscribed

pytestmark = pytest.mark.kernel

GUARD_CELL = "guard = threading.Lock()\nwith open('log.txt', 'a') as out:\n    out.write('once\\n')"


def test_the_state_asks_and_the_answer_replays(tmp_path: Path) -> None:
    with start_kernel(tmp_path, FAST_AUTOSAVE, env={"IPYSESSION_NAME": "replay"}) as kernel:
        client, comm, reply = restarted_and_subscribed(kernel, "import threading", GUARD_CELL)
        log = tmp_path / "work" / "log.txt"
        [group] = reply["state"]["replay"]
        assert set(group["names"]) == {"guard", "out"}
        [cell] = group["cells"]
        assert group["reason"].startswith(f"cell {cell} writes files (open(..., 'a'))")
        assert "guard (" in group["label"]
        # Asking ran nothing.
        assert log.read_text() == "once\n"
        assert kernel.value("'guard' in globals()") is False

        refused = ask(client, comm, {"action": "replay", "names": [], "id": 2})
        assert refused["status"] == "error"
        assert "'names' must be a non-empty list" in refused["reason"]

        done = ask(client, comm, {"action": "replay", "names": group["names"], "id": 3})
        assert done["status"] == "ok", done
        assert "Rebuilt guard" in done["summary"]
        assert done["state"]["replay"] == []
        assert kernel.value("guard.acquire(blocking=False)") is True
        assert log.read_text() == "once\nonce\n"


def test_nothing_to_ask_when_every_value_came_back(tmp_path: Path) -> None:
    with start_kernel(tmp_path, FAST_AUTOSAVE, env={"IPYSESSION_NAME": "no-replay"}) as kernel:
        # A lock made by a cell that only computes is rebuilt at restore without asking.
        _client, _comm, reply = restarted_and_subscribed(
            kernel, "import threading\nlock = threading.Lock()"
        )
        assert reply["state"]["replay"] == []
        assert kernel.value("lock.acquire(blocking=False)") is True
