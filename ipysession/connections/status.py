"""Where a connection stands: the state words and the status the Reconnector reports.

Apart from :mod:`.reconnector` so that what reads a state (the connection set, the views of
``%session status``) does not import the Reconnector and its threads: a kernel with no
connection never needs them (tests/test_import_cost.py).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from ipysession.connections.records import FailureCause

__all__ = ["ConnectionState", "ConnectionStatus", "short_text"]


class ConnectionState(str, enum.Enum):
    """Where a connection stands."""

    CONNECTING = "connecting"
    CONNECTED = "connected"
    RETRYING = "retrying"
    FAILED = "failed"
    DISCONNECTED = "disconnected"

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class ConnectionStatus:
    """One connection as the Reconnector sees it now (every text redacted)."""

    state: ConnectionState
    message: str
    #: Connect attempts of the current run so far (0 before the first one ends).
    attempt: int = 0
    #: The last error of the current run, and when it happened (epoch seconds).
    error: str = ""
    error_at: float | None = None
    cause: FailureCause | None = None
    #: Whether the quick attempts are used up (the record now heals in the background).
    background: bool = False

    @property
    def progress(self) -> str:
        """A few words for a line that updates in place: "connecting, attempt 2"."""
        if self.state is ConnectionState.CONNECTING:
            return f"connecting, attempt {self.attempt + 1}"
        if self.state is ConnectionState.RETRYING:
            return f"retrying, attempt {self.attempt + 1} (last error: {short_text(self.error)})"
        return str(self.state)


def short_text(text: str, limit: int = 80) -> str:
    folded = " ".join(text.split())
    return folded if len(folded) <= limit else folded[: limit - 3] + "..."
