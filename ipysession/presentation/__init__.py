"""What the ``%session`` magic and the ``ipysession`` command show, built in one place.

The magic and the command line used to build their own rows from the same records, and they
drifted apart (the state column, the name of a session that does not read, the variable counts).
Here each view is built once; the faces only render it:

- :mod:`.stored`: what is on disk, from the store's records
  (:class:`~ipysession.store.SessionSummary`, :class:`~ipysession.store.GenerationInfo`,
  :class:`~ipysession.store.CheckpointInfo`):
  :func:`session_rows` (``list``), :func:`snapshot_rows` (``snapshots``), :func:`show_view`
  (``show``);
- :mod:`.kernel`: this kernel's session, from the manager's reports
  (:mod:`ipysession.session.reports`) and connection records: :func:`status_view`
  (``%session status``), :func:`autosave_words`, :func:`restore_notice`, :func:`save_notice`,
  :func:`connection_rows` (``%session connections``);
- :mod:`.base`: :class:`State`, the one vocabulary of state words; :func:`text_table`, the one
  text table; :class:`Table`, :class:`Section` and :class:`Notice`, what views are made of.

Every row has ``cells()`` (the text of each column, under its ``*_HEADERS``) and, where the command
line offers ``--json``, ``as_json()`` (keys are only ever added, never renamed). Counts mean one
thing everywhere: ``variables`` are the values saved, ``skipped`` those that could not be. The
magic turns views into HTML and text through :mod:`ipysession.display`; the command line prints
text or JSON. Plain Python: no IPython, no traitlets, no I/O.
"""

from __future__ import annotations

from ipysession.presentation.base import (
    Level,
    Notice,
    Section,
    State,
    Table,
    problem_json,
    text_table,
)
from ipysession.presentation.kernel import (
    CONNECTION_HEADERS,
    ConnectionRow,
    StatusView,
    autosave_words,
    connection_details,
    connection_rows,
    connections_table,
    restore_notice,
    save_notice,
    status_view,
)
from ipysession.presentation.stored import (
    DOCTOR_NOTE,
    SESSION_HEADERS,
    SNAPSHOT_HEADERS,
    VARIABLE_HEADERS,
    SessionRow,
    ShowView,
    SnapshotRow,
    session_rows,
    sessions_table,
    show_view,
    snapshot_rows,
    snapshots_table,
)

__all__ = [
    "CONNECTION_HEADERS",
    "DOCTOR_NOTE",
    "SESSION_HEADERS",
    "SNAPSHOT_HEADERS",
    "VARIABLE_HEADERS",
    "ConnectionRow",
    "Level",
    "Notice",
    "Section",
    "SessionRow",
    "ShowView",
    "SnapshotRow",
    "State",
    "StatusView",
    "Table",
    "autosave_words",
    "connection_details",
    "connection_rows",
    "connections_table",
    "problem_json",
    "restore_notice",
    "save_notice",
    "session_rows",
    "sessions_table",
    "show_view",
    "snapshot_rows",
    "snapshots_table",
    "status_view",
    "text_table",
]
