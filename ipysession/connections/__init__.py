"""Connections to other systems (a remote kernel, a database, a cluster) that outlive a restart.

:mod:`.records` keeps what is saved of a connection (parameters, sealed secrets, history);
:mod:`.reconnector` reconnects records in the background and watches the live objects;
:mod:`.live` binds what came back into the user's namespace between cells; :mod:`.backends` holds
the protocol and the built-in backends. No IPython here: the manager and the ``%session`` magic
call in.
"""

from __future__ import annotations

from ipysession.connections.live import ConnectionSet, ConnectionSettings
from ipysession.connections.reconnector import ConnectionState, Reconnector

__all__ = ["ConnectionSet", "ConnectionSettings", "ConnectionState", "Reconnector"]
