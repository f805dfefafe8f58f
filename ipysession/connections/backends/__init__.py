"""Connection backends: the protocol, the registry, and the built-in backends.

``jupyter`` (a remote Jupyter kernel by its connection file), ``jupyter_server`` (a kernel on a
Jupyter Server or Enterprise Gateway, over HTTP and WebSocket; ``ipysession[gateway]``),
``sqlalchemy`` (any SQLAlchemy URL; ``ipysession[sql]``), ``dask`` (a Dask scheduler;
``ipysession[dask]``) and ``factory`` (any ``module:callable``) are built in; third parties
register more under the entry-point group ``ipysession.backends``. See
:mod:`ipysession.connections.backends.base` for the protocol and the options every backend
understands. Importing this package is cheap: a backend module imports its library
(jupyter_client, SQLAlchemy, distributed, websocket-client) only when it connects.
"""

from __future__ import annotations

from ipysession.connections.backends.base import (
    ENTRY_POINT_GROUP,
    Backend,
    Liveness,
    available_backends,
    call_with_timeout,
    check_options,
    get_backend,
    liveness,
    redact_text,
)

__all__ = [
    "ENTRY_POINT_GROUP",
    "Backend",
    "Liveness",
    "available_backends",
    "call_with_timeout",
    "check_options",
    "get_backend",
    "liveness",
    "redact_text",
]
