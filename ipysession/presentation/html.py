"""The HTML form of every view, rendered from the same dataclasses as the text form.

Notebooks used to get the text in a ``<div>`` with ``<br>`` between lines (issue 16), which
collapsed the spaces that align columns and the indentation of history cells. Here:

- tables are ``<table>`` (headers in ``<th>``), cells left-aligned (JupyterLab right-aligns
  table cells by default) and ``white-space: pre-wrap``, so a fork row's indent and a reason's
  line breaks stay;
- source code (history cells, imports) is in ``<pre>``, whitespace kept, in the code font;
- a state is its word, coloured by its :class:`~ipysession.presentation.base.Tone`; the word is
  always there, so the state reads without colour (and where a sanitizer drops ``style``);
- every colour, border and font is a JupyterLab CSS variable (``--jp-...``) with a VS Code one
  (``--vscode-...``) and a value as fallbacks, so dark themes work and other frontends still get
  readable colours; the fallback values read on light and dark backgrounds alike;
- every piece of text is escaped (:func:`html.escape`, quotes too): a variable, session or
  connection name cannot inject markup. Secrets never reach this module: views arrive redacted.

The look is one ``<style scoped>`` element per message whose rules all sit under
``div.ipysession`` (as pandas scopes its DataFrame HTML), and classes on the elements: a style
on every cell made 2000 history rows 2.8 MB. Only the frame (its bar and font) is inline, so a
message still reads as one where a sanitizer drops the style element (an untrusted notebook):
the tables, the state words and ``<pre>`` remain.
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from ipysession.presentation.base import (
    Column,
    Field,
    Level,
    Notice,
    Pairs,
    Section,
    Table,
    Tone,
    tone_of,
)
from ipysession.presentation.kernel import PROBLEMS_TITLE, StatusView, SummaryView

if TYPE_CHECKING:
    # Named only in a signature: a kernel's restore summary does not import the stored views.
    from ipysession.presentation.stored import ShowView

__all__ = [
    "LEVEL_TONES",
    "STYLE",
    "TONE_COLOURS",
    "notice_html",
    "show_html",
    "status_html",
    "summary_html",
    "table_html",
]

#: Each tone's colour: JupyterLab's variable, then VS Code's, then a value that reads on light
#: and dark backgrounds.
TONE_COLOURS = {
    Tone.GOOD: "var(--jp-success-color1, var(--vscode-testing-iconPassed, #2da44e))",
    Tone.INFO: "var(--jp-info-color1, var(--vscode-textLink-foreground, #1f83d8))",
    Tone.WARNING: "var(--jp-warn-color1, var(--vscode-editorWarning-foreground, #c98a00))",
    Tone.ERROR: "var(--jp-error-color1, var(--vscode-errorForeground, #e5484d))",
    Tone.NEUTRAL: "var(--jp-ui-font-color2, var(--vscode-descriptionForeground, #8b949e))",
}

#: The bar beside a notice, by its level.
LEVEL_TONES = {Level.INFO: Tone.INFO, Level.WARNING: Tone.WARNING, Level.ERROR: Tone.ERROR}

_BORDER = "var(--jp-border-color2, var(--vscode-editorWidget-border, rgba(128,128,128,0.35)))"
_HEAD_BACKGROUND = "var(--jp-layout-color2, rgba(128,128,128,0.12))"
_CODE_FONT = (
    "font-family:var(--jp-code-font-family, var(--vscode-editor-font-family, monospace));"
    "font-size:var(--jp-code-font-size, 12px)"
)

# One style element per message, every rule under div.ipysession so nothing leaks into the page,
# as pandas' DataFrame HTML does. Classes rather than a style on every cell: 2000 history rows
# are 0.2 MB of text, and were 2.8 MB of HTML with inline styles. "div.ipysession td" also
# outranks JupyterLab's ".jp-RenderedHTMLCommon td" (right-aligned cells).
_SCOPE = "div.ipysession"
STYLE = "".join(
    [
        f"{_SCOPE} table{{border-collapse:collapse;margin:2px 0;font-size:inherit;color:inherit}}",
        f"{_SCOPE} th,{_SCOPE} td{{text-align:left;vertical-align:top;padding:2px 8px;"
        f"border-bottom:1px solid {_BORDER};white-space:pre-wrap}}",
        f"{_SCOPE} thead th{{background:{_HEAD_BACKGROUND};font-weight:600}}",
        f"{_SCOPE} tbody th{{font-weight:600;white-space:nowrap}}",
        f"{_SCOPE} pre{{margin:0;padding:0;background:transparent;{_CODE_FONT}}}",
        f"{_SCOPE} pre.ipysession-code{{white-space:pre}}",
        f"{_SCOPE} pre.ipysession-lines{{white-space:pre-wrap}}",
        f"{_SCOPE} .ipysession-line{{white-space:pre-wrap;margin:2px 0}}",
        f"{_SCOPE} .ipysession-title{{font-weight:600;margin:6px 0 2px}}",
        f"{_SCOPE} .ipysession-state{{font-weight:600}}",
        *(f"{_SCOPE} .ipysession-{tone.value}{{color:{TONE_COLOURS[tone]}}}" for tone in Tone),
    ]
)


def _e(text: str) -> str:
    return html.escape(text, quote=True)


def _box(kind: str, level: Level, body: str) -> str:
    """The frame of every message: a bar in the level's colour, the theme's font and colour.

    The frame's own look is inline, so it survives where a sanitizer drops the style element."""
    colour = TONE_COLOURS[LEVEL_TONES[level]]
    style = (
        f"border-left:3px solid {colour};padding:2px 0 2px 8px;margin:2px 0;"
        "font-family:var(--jp-ui-font-family, var(--vscode-font-family, sans-serif));"
        "font-size:var(--jp-content-font-size1, 13px);line-height:1.45;"
        "color:var(--jp-content-font-color1, inherit)"
    )
    return (
        f'<div class="ipysession ipysession-{kind} ipysession-level-{level.value}" '
        f'style="{style}"><style scoped>{STYLE}</style>{body}</div>'
    )


def _state(text: str) -> str:
    """``text`` with the state word it opens with coloured; the rest as it is."""
    word, tone = tone_of(text)
    if not word:
        return _e(text)
    badge = f'<span class="ipysession-state ipysession-{tone.value}">{_e(word)}</span>'
    return badge + _e(text[len(word) :])


def _code(text: str) -> str:
    return f'<pre class="ipysession-code">{_e(text)}</pre>'


def _aligned(text: str) -> str:
    return f'<pre class="ipysession-lines">{_e(text)}</pre>'


def _line(text: str, *, tone: Tone | None = None) -> str:
    classes = "ipysession-line" + (f" ipysession-{tone.value}" if tone is not None else "")
    return f'<div class="{classes}">{_e(text)}</div>'


def _title(text: str) -> str:
    return f'<div class="ipysession-title">{_e(text)}</div>'


def _cell(text: str, column: Column) -> str:
    if column is Column.CODE:
        return f"<td>{_code(text)}</td>"
    return f"<td>{_state(text) if column is Column.STATE else _e(text)}</td>"


def _table(
    headers: Sequence[str], rows: Iterable[Sequence[str]], columns: Sequence[Column] = ()
) -> str:
    def column(index: int) -> Column:
        return columns[index] if index < len(columns) else Column.TEXT

    head = "".join(f'<th scope="col">{_e(h)}</th>' for h in headers)
    body = "".join(
        "<tr>" + "".join(_cell(c, column(i)) for i, c in enumerate(row)) + "</tr>" for row in rows
    )
    return (
        '<table class="ipysession-table">'
        f"<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
    )


def _fields(fields: Sequence[Field]) -> str:
    """Label/value pairs as a two-column table, the labels as row headers."""
    rows = "".join(
        f'<tr><th scope="row">{_e(f.label.rstrip(":"))}</th>'
        f"<td>{_state(f.value) if f.state else _e(f.value)}</td></tr>"
        for f in fields
    )
    return f'<table class="ipysession-fields"><tbody>{rows}</tbody></table>'


def _pairs(pairs: Pairs) -> str:
    return _title(pairs.title.rstrip(":")) + _table(pairs.headers, pairs.items)


def _table_body(table: Table) -> str:
    if not table.rows:
        return _line(table.empty)
    notes = "".join(_line(note) for note in table.notes)
    return _table(table.headers, table.rows, table.columns) + notes


# --- the views ----------------------------------------------------------------------------------


def table_html(table: Table, *, kind: str = "table") -> str:
    """``list``, ``snapshots``, ``connections``, ``history``: one table (or what ``empty`` says)."""
    return _box(kind, Level.INFO, _table_body(table))


def notice_html(notice: Notice, *, kind: str = "notice") -> str:
    """A message's lines, whitespace kept (indented reasons stay indented)."""
    return _box(kind, notice.level, _line(notice.text))


def _summary_body(view: SummaryView) -> str:
    parts = [_line(view.headline), *(_line(p) for p in view.paragraphs)]
    if view.skipped is not None:
        parts.append(_pairs(view.skipped))
    parts.extend(_line(line) for line in view.replay)
    if view.placed is not None:
        parts.append(_pairs(view.placed))
    if view.problems:
        parts.append(_title(PROBLEMS_TITLE.rstrip(":")))
        parts.append(_table(("problem",), [(p,) for p in view.problems]))
    if view.footer:
        parts.append(_line(view.footer))
    return "".join(parts)


def summary_html(view: SummaryView, *, kind: str = "restore") -> str:
    """The summary after a restore or a save (``kind``): the headline, then tables of what was
    skipped and why."""
    return _box(kind, view.level, _summary_body(view))


def status_html(view: StatusView) -> str:
    """``%session status``: the fields as a table, the state coloured, then each section."""
    parts = [_fields(view.fields)]
    parts.extend(_line(alert, tone=Tone.ERROR) for alert in view.alerts)
    if view.not_saved is not None:
        parts.append(_pairs(view.not_saved))
    if view.connections:
        parts.append(_title(f"Connections ({len(view.connections)})"))
        parts.append(
            _table(
                ("name", "state", "target", "last error"),
                [(r.name, r.state, r.target, r.last_error) for r in view.connections],
                (Column.TEXT, Column.STATE, Column.TEXT, Column.TEXT),
            )
        )
    if view.restore is not None:
        parts.append(_title("Last restore"))
        parts.append(f'<div style="padding-left:8px">{_summary_body(view.restore)}</div>')
    if view.notices:
        parts.append(_title(f"Notices ({len(view.notices)}, oldest first)"))
        parts.append(_table(("time", "notice"), view.notices))
    return _box("status", view.level, "".join(parts))


def _section(section: Section) -> str:
    parts = [_title(section.title)]
    if section.fields:
        parts.append(_fields(section.fields))
    if section.lines:
        lines = "\n".join(section.lines)
        # Code as code; other lines are aligned with spaces (a connection's "params  ..."),
        # which only a fixed-width font keeps aligned.
        parts.append(_code(lines) if section.code else _aligned(lines))
    if section.table is not None and section.table.rows:
        parts.append(_table_body(section.table))
    return "".join(parts)


def show_html(view: ShowView) -> str:
    """``show``: each section titled, its fields and tables as tables, imports as code."""
    return _box("show", Level.INFO, "".join(_section(s) for s in view.sections))
