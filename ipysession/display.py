"""Everything ipysession shows a user goes through here: HTML in notebooks, text in terminals.

A :class:`Message` carries both forms; :func:`show` hands it to IPython's display machinery, which
sends ``text/html`` and ``text/plain`` to a notebook and prints the plain text in a terminal. What
a message says is built by :mod:`ipysession.presentation` (shared with the command line); the
renderers here only pair a view's text with its HTML (:mod:`ipysession.presentation.html`: real
tables, code in ``<pre>``, JupyterLab's theme variables, everything escaped). They never see a
secret (views arrive redacted).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ipysession.presentation import html as to_html
from ipysession.presentation.base import Level, Notice, Table
from ipysession.presentation.kernel import StatusView, SummaryView, restore_view, save_view
from ipysession.session.reports import RestoreReport, SaveReport

if TYPE_CHECKING:
    # Named only in a signature: showing a restore summary does not import the stored views.
    from ipysession.presentation.stored import ShowView

__all__ = [
    "Message",
    "WaitingLine",
    "render_notice",
    "render_restore",
    "render_save",
    "render_show",
    "render_status",
    "render_summary",
    "render_table",
    "show",
    "text_message",
]


@dataclass(frozen=True)
class Message:
    """What a user sees, in both forms: ``text`` for terminals, ``html`` for notebooks."""

    text: str
    html: str

    def __repr__(self) -> str:
        return self.text

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(self.text)

    def _repr_html_(self) -> str:
        return self.html

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, str]:
        return {"text/plain": self.text, "text/html": self.html}


def show(message: Message) -> None:
    """Display ``message`` in the current output area (or terminal)."""
    from IPython.display import display

    display(message)  # type: ignore[no-untyped-call]


class WaitingLine:
    """The one line a cell that waits for an arriving name shows, updated in place.

    In a notebook the line is displayed once with a display id and then updated; a terminal
    cannot update a printed line, so there only the first text and the outcome are printed.
    """

    def __init__(self, *, in_place: bool) -> None:
        self._in_place = in_place
        self._handle: Any = None
        self._last = ""

    def update(self, text: str) -> None:
        text = f"ipysession: {text}"
        if text == self._last:
            return
        self._last = text
        if self._handle is None:
            from IPython.display import display

            self._handle = display(text_message(text), display_id=True)  # type: ignore[no-untyped-call]
        elif self._in_place:
            self._handle.update(text_message(text))

    def done(self, text: str) -> None:
        if self._handle is not None and self._in_place:
            self._handle.update(text_message(f"ipysession: {text}"))
        elif self._handle is not None:
            show(text_message(f"ipysession: {text}"))


def text_message(text: str, *, level: str = "info") -> Message:
    """A message that is only text (``level``: info, warning or error): kept as it is in HTML,
    line breaks and indentation included."""
    try:
        notice_level = Level(level)
    except ValueError:
        notice_level = Level.INFO
    return render_notice(Notice(tuple(text.splitlines()), notice_level))


def render_notice(notice: Notice) -> Message:
    return Message(text=notice.text, html=to_html.notice_html(notice))


def render_summary(view: SummaryView, *, kind: str = "restore") -> Message:
    return Message(text=view.notice.text, html=to_html.summary_html(view, kind=kind))


def render_restore(
    report: RestoreReport, connection_states: Mapping[str, str] | None = None
) -> Message:
    """One line when everything came back; otherwise the same line plus every skip and why."""
    return render_summary(restore_view(report, connection_states))


def render_save(report: SaveReport) -> Message:
    return render_summary(save_view(report), kind="save")


def render_status(view: StatusView) -> Message:
    return Message(text=view.notice.text, html=to_html.status_html(view))


def render_table(table: Table) -> Message:
    """The text table for terminals (the one the command line prints) and an HTML table."""
    if not table.rows:
        return Message(text=table.empty, html=to_html.table_html(table))
    return Message(text=table.text(), html=to_html.table_html(table))


def render_show(view: ShowView) -> Message:
    return Message(text=view.text(), html=to_html.show_html(view))
