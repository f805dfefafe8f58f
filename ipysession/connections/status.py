"""Where a connection stands: :class:`ConnectionState`, the state words.

Apart from :mod:`.reconnector` (which reports a :class:`~.reconnector.ConnectionStatus` with
one of them) so that what reads a state (the connection set, the views of ``%session status``)
does not import the Reconnector and its threads: a kernel with no connection never needs them
(tests/test_import_cost.py).
"""

from __future__ import annotations

import enum

__all__ = ["ConnectionState"]


class ConnectionState(str, enum.Enum):
    """Where a connection stands."""

    CONNECTING = "connecting"
    CONNECTED = "connected"
    RETRYING = "retrying"
    FAILED = "failed"
    DISCONNECTED = "disconnected"

    def __str__(self) -> str:
        return self.value
