"""The ``ipysession`` comm of a real kernel, spoken to as the JupyterLab extension does: subscribe
(right after a restart, before any cell runs) and ask, passing over the state and notice messages
the kernel pushes meanwhile. Shared by tests/test_lab_link.py and tests/test_lab_replay.py."""

from __future__ import annotations

from typing import Any

from tests.capture.test_frontend import Client
from tests.kernels import Kernel, wait_for_autosave


def subscribe(kernel: Kernel, **fields: Any) -> tuple[Client, str, dict[str, Any]]:
    client = Client(kernel.client)
    comm = client.open({"action": "subscribe", "id": 1, **fields})
    reply = client.reply(comm)
    assert reply["status"] == "ok", reply
    assert reply["id"] == 1
    return client, comm, reply


def restarted_and_subscribed(kernel: Kernel, *cells: str) -> tuple[Client, str, dict[str, Any]]:
    """Run ``cells``, wait until they are saved, restart the kernel and subscribe at once, before
    any cell runs: the extension's first moments after a restart."""
    for cell in cells:
        kernel.run(cell)
    wait_for_autosave(kernel)
    kernel.restart()
    return subscribe(kernel)


def ask(
    client: Client, comm: str, data: dict[str, Any], into: list[Any] | None = None
) -> dict[str, Any]:
    """A request's reply, passing over the state and notice messages pushed meanwhile (kept in
    ``into``, with the reply, when given)."""
    client.send(comm, data)
    while True:
        reply = client.reply(comm)
        if into is not None:
            into.append(reply)
        if reply.get("id") == data["id"]:
            return reply
        assert reply.get("type") in ("state", "notice"), reply
