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
  (``%session status``), :func:`autosave_words`, :func:`restore_view` and :func:`save_view` (the
  summaries after a restore and a save), :func:`connection_rows` (``%session connections``),
  :func:`ping_text` (``%session ping``), :func:`history_table` (``%session history``);
- :mod:`.base`: :class:`State`, the one vocabulary of state words, and its :class:`Tone` (the
  colour HTML gives it); :func:`text_table`, the one text table; :class:`Table`,
  :class:`Section`, :class:`Field`, :class:`Pairs` and :class:`Notice`, what views are made of;
- :mod:`.html`: the HTML form of every view (tables, ``<pre>`` for code, JupyterLab's theme
  variables), everything escaped.

Every row has ``cells()`` (the text of each column, under its ``*_HEADERS``) and, where the command
line offers ``--json``, ``as_json()`` (keys are only ever added, never renamed). Counts mean one
thing everywhere: ``variables`` are the values saved, ``skipped`` those that could not be. The
text and the HTML form of a view are rendered from the same dataclass: the text by the view
itself, the HTML by :mod:`.html`. The magic shows both through :mod:`ipysession.display`; the
command line prints text or JSON. Plain Python: no IPython, no traitlets, no I/O.
"""

from __future__ import annotations

from ipysession.presentation.base import (
    Column,
    Field,
    Level,
    Notice,
    Pairs,
    Section,
    State,
    Table,
    Tone,
    problem_json,
    text_table,
    tone_of,
)
from ipysession.presentation.kernel import (
    CONNECTION_HEADERS,
    HISTORY_HEADERS,
    ConnectionRow,
    StatusView,
    SummaryView,
    autosave_words,
    connection_details,
    connection_rows,
    connections_table,
    history_table,
    ping_text,
    restore_notice,
    restore_view,
    save_notice,
    save_view,
    status_view,
)
from ipysession.presentation.replay import (
    LOG_HEADERS,
    log_table,
    replay_consent_json,
    replay_lines,
    replay_notice,
    travel_notice,
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
    "HISTORY_HEADERS",
    "LOG_HEADERS",
    "SESSION_HEADERS",
    "SNAPSHOT_HEADERS",
    "VARIABLE_HEADERS",
    "Column",
    "ConnectionRow",
    "Field",
    "Level",
    "Notice",
    "Pairs",
    "Section",
    "SessionRow",
    "ShowView",
    "SnapshotRow",
    "State",
    "StatusView",
    "SummaryView",
    "Table",
    "Tone",
    "autosave_words",
    "connection_details",
    "connection_rows",
    "connections_table",
    "history_table",
    "log_table",
    "ping_text",
    "problem_json",
    "replay_consent_json",
    "replay_lines",
    "replay_notice",
    "restore_notice",
    "restore_view",
    "save_notice",
    "save_view",
    "session_rows",
    "sessions_table",
    "show_view",
    "snapshot_rows",
    "snapshots_table",
    "status_view",
    "text_table",
    "tone_of",
    "travel_notice",
]
