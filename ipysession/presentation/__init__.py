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
- :mod:`.frontend`: the messages of the JupyterLab extension's comm (:func:`state_message`,
  :func:`notice_message`, :func:`raised_message`, the panel's sections), and :class:`Deferred`,
  what waits for the first cell; :mod:`.merging`: :func:`merge_preview` (``%session merge``);
- :mod:`.html`: the HTML form of every view (tables, ``<pre>`` for code, JupyterLab's theme
  variables), everything escaped.

Every row has ``cells()`` (the text of each column, under its ``*_HEADERS``) and, where the command
line offers ``--json``, ``as_json()`` (keys are only ever added, never renamed). Counts mean one
thing everywhere: ``variables`` are the values saved, ``skipped`` those that could not be. The
text and the HTML form of a view are rendered from the same dataclass: the text by the view
itself, the HTML by :mod:`.html`. The magic shows both through :mod:`ipysession.display`; the
command line prints text or JSON. Plain Python: no IPython, no traitlets, no I/O.

Each name is imported from its module when first asked for (PEP 562): a kernel that shows only
its restore summary imports :mod:`.kernel` and :mod:`.base`, not every view of the command line.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
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
    from ipysession.presentation.frontend import (
        Deferred,
        FrontendState,
        Said,
        connection_json,
        forks_json,
        loading_json,
        not_saved_rows,
        notice_message,
        raised_message,
        recent_json,
        restore_counts,
        state_message,
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
    from ipysession.presentation.merging import (
        MergePreview,
        fork_discarded,
        merge_preview,
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
    "Deferred",
    "Field",
    "FrontendState",
    "Level",
    "MergePreview",
    "Notice",
    "Pairs",
    "Said",
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
    "connection_json",
    "connection_rows",
    "connections_table",
    "fork_discarded",
    "forks_json",
    "history_table",
    "loading_json",
    "log_table",
    "merge_preview",
    "not_saved_rows",
    "notice_message",
    "ping_text",
    "problem_json",
    "raised_message",
    "recent_json",
    "replay_consent_json",
    "replay_lines",
    "replay_notice",
    "restore_counts",
    "restore_notice",
    "restore_view",
    "save_notice",
    "save_view",
    "session_rows",
    "sessions_table",
    "show_view",
    "snapshot_rows",
    "snapshots_table",
    "state_message",
    "status_view",
    "text_table",
    "tone_of",
    "travel_notice",
]

#: The module that defines each name of ``__all__``.
_HOMES = {
    "CONNECTION_HEADERS": "kernel",
    "Column": "base",
    "ConnectionRow": "kernel",
    "DOCTOR_NOTE": "stored",
    "Deferred": "frontend",
    "Field": "base",
    "FrontendState": "frontend",
    "HISTORY_HEADERS": "kernel",
    "LOG_HEADERS": "replay",
    "Level": "base",
    "MergePreview": "merging",
    "Notice": "base",
    "Pairs": "base",
    "SESSION_HEADERS": "stored",
    "SNAPSHOT_HEADERS": "stored",
    "Said": "frontend",
    "Section": "base",
    "SessionRow": "stored",
    "ShowView": "stored",
    "SnapshotRow": "stored",
    "State": "base",
    "StatusView": "kernel",
    "SummaryView": "kernel",
    "Table": "base",
    "Tone": "base",
    "VARIABLE_HEADERS": "stored",
    "autosave_words": "kernel",
    "connection_details": "kernel",
    "connection_json": "frontend",
    "connection_rows": "kernel",
    "connections_table": "kernel",
    "fork_discarded": "merging",
    "forks_json": "frontend",
    "history_table": "kernel",
    "loading_json": "frontend",
    "log_table": "replay",
    "merge_preview": "merging",
    "not_saved_rows": "frontend",
    "notice_message": "frontend",
    "ping_text": "kernel",
    "problem_json": "base",
    "raised_message": "frontend",
    "recent_json": "frontend",
    "replay_consent_json": "replay",
    "replay_lines": "replay",
    "replay_notice": "replay",
    "restore_counts": "frontend",
    "restore_notice": "kernel",
    "restore_view": "kernel",
    "save_notice": "kernel",
    "save_view": "kernel",
    "session_rows": "stored",
    "sessions_table": "stored",
    "show_view": "stored",
    "snapshot_rows": "stored",
    "snapshots_table": "stored",
    "state_message": "frontend",
    "status_view": "kernel",
    "text_table": "base",
    "tone_of": "base",
    "travel_notice": "replay",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        msg = f"module {__name__!r} has no attribute {name!r}"
        raise AttributeError(msg)
    value = getattr(importlib.import_module(f"{__name__}.{home}"), name)
    globals()[name] = value  # asked once
    return value
