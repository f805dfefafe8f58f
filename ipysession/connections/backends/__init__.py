"""Connection backends: the protocol, the registry, and the built-in backends.

``jupyter`` (a remote Jupyter kernel), ``sqlalchemy`` (any SQLAlchemy URL; ``ipysession[sql]``)
and ``factory`` (any ``module:callable``) are built in; third parties register more under the
entry-point group ``ipysession.backends``. See :mod:`ipysession.connections.backends.base` for the
protocol and the options every backend understands. Importing this package is cheap: a backend
module imports its library (jupyter_client, SQLAlchemy) only when it connects.
"""

from __future__ import annotations

from ipysession.connections.backends.base import (
    ENTRY_POINT_GROUP,
    Backend,
    available_backends,
    call_with_timeout,
    check_options,
    get_backend,
    redact_text,
)

__all__ = [
    "ENTRY_POINT_GROUP",
    "Backend",
    "available_backends",
    "call_with_timeout",
    "check_options",
    "get_backend",
    "redact_text",
]
