"""Connections to other systems (a remote kernel, a database, a cluster) that outlive a restart.

:mod:`.records` keeps what is saved of a connection (parameters, sealed secrets, history);
:mod:`.reconnector` reconnects records in the background and watches the live objects;
:mod:`.live` binds what came back into the user's namespace between cells; :mod:`.backends` holds
the protocol and the built-in backends. No IPython here: the manager and the ``%session`` magic
call in.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ipysession.connections.live import ConnectionSet, ConnectionSettings
from ipysession.connections.status import ConnectionState

if TYPE_CHECKING:
    from ipysession.connections.reconnector import Reconnector

__all__ = ["ConnectionSet", "ConnectionSettings", "ConnectionState", "Reconnector"]


def __getattr__(name: str) -> Any:
    # The Reconnector is imported when first asked for: a kernel with no connection never is.
    if name == "Reconnector":
        from ipysession.connections.reconnector import Reconnector

        return Reconnector
    msg = f"module {__name__!r} has no attribute {name!r}"
    raise AttributeError(msg)
