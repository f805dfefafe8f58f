"""Real servers for the connection tests, started on 127.0.0.1 by the test session itself.

- :mod:`tests.servers.postgres`: a private PostgreSQL cluster (Debian's ``postgresql`` package,
  ``initdb``/``pg_ctl``) with a password role;
- :mod:`tests.servers.dask`: a Dask scheduler and one worker, as processes (the ``dask`` CLI);
- :mod:`tests.servers.jupyter`: a ``jupyter_server`` with a token and its own Jupyter dirs.

Each is a :class:`~tests.servers.process.Server`: ``stop()`` and ``start()`` again on the same
port (for down/up scenarios), ``down()`` as a context manager, ``close()`` safe twice. The pytest
fixtures are in :mod:`tests.servers.fixtures` (session-scoped; a conftest imports them). A server
that cannot start fails the test that needs it with the reason (:class:`ServerUnavailable`),
never a silent skip.
"""

from __future__ import annotations
