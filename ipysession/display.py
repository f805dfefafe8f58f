"""Everything ipysession shows a user goes through here: HTML in notebooks, text in terminals.

A :class:`Message` carries both forms; :func:`show` hands it to IPython's display machinery, which
sends ``text/html`` and ``text/plain`` to a notebook and prints the plain text in a terminal. What
a message says is built by :mod:`ipysession.presentation` (shared with the command line); the
renderers here only give a view its two forms. They never see a secret (views arrive redacted).
"""

from __future__ import annotations

import html
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ipysession.presentation import (
    Notice,
    ShowView,
    StatusView,
    Table,
    restore_notice,
    save_notice,
)
from ipysession.session.reports import RestoreReport, SaveReport

__all__ = [
    "Message",
    "WaitingLine",
    "render_notice",
    "render_restore",
    "render_save",
    "render_show",
    "render_status",
    "render_table",
    "show",
    "text_message",
]

_COLOURS = {"info": "#1f6feb", "warning": "#9a6700", "error": "#cf222e"}


@dataclass(frozen=True)
class Message:
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


def _lines_html(lines: list[str] | tuple[str, ...]) -> str:
    return "<br>".join(html.escape(line) for line in lines)


def text_message(text: str, *, level: str = "info") -> Message:
    colour = _COLOURS.get(level, _COLOURS["info"])
    return Message(
        text=text,
        html=(
            f'<div style="border-left:3px solid {colour};padding-left:6px">'
            f"{_lines_html(text.splitlines())}</div>"
        ),
    )


def render_notice(notice: Notice) -> Message:
    return text_message(notice.text, level=notice.level.value)


def render_restore(
    report: RestoreReport, connection_states: Mapping[str, str] | None = None
) -> Message:
    """One line when everything came back; otherwise the same line plus every skip and why."""
    return render_notice(restore_notice(report, connection_states))


def render_save(report: SaveReport) -> Message:
    return render_notice(save_notice(report))


def render_status(view: StatusView) -> Message:
    return render_notice(view.notice)


def _table_html(table: Table) -> str:
    head = "".join(f"<th style='text-align:left'>{html.escape(h)}</th>" for h in table.headers)
    body = "".join(
        "<tr>"
        + "".join(f"<td style='text-align:left'>{html.escape(c)}</td>" for c in row)
        + "</tr>"
        for row in table.rows
    )
    notes = "".join(f"<p>{html.escape(note)}</p>" for note in table.notes)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>{notes}"


def render_table(table: Table) -> Message:
    """The text table for terminals (the one the command line prints) and an HTML table."""
    if not table.rows:
        return text_message(table.empty)
    return Message(text=table.text(), html=_table_html(table))


def render_show(view: ShowView) -> Message:
    parts = []
    for section in view.sections:
        part = f"<b>{html.escape(section.title)}</b>"
        if section.lines:
            # <pre>: the lines are aligned with spaces, which HTML would otherwise collapse.
            lines = html.escape("\n".join(section.lines))
            part += f"<pre style='margin:0'>{lines}</pre>"
        if section.table is not None and section.table.rows:
            part += _table_html(section.table)
        parts.append(f"<div>{part}</div>")
    return Message(text=view.text(), html="".join(parts))
