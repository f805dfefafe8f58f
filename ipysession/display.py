"""Everything ipysession shows a user goes through here: HTML in notebooks, text in terminals.

A :class:`Message` carries both forms; :func:`show` hands it to IPython's display machinery, which
sends ``text/html`` and ``text/plain`` to a notebook and prints the plain text in a terminal. The
renderers turn manager reports into messages; they never see a secret (records arrive redacted).
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ipysession.formatting import format_size, format_time
from ipysession.session.reports import RestoreReport, SaveReport, Status

__all__ = [
    "Message",
    "format_size",
    "format_time",
    "render_restore",
    "render_save",
    "render_status",
    "render_table",
    "show",
    "text_message",
]


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


def text_message(text: str, *, level: str = "info") -> Message:
    colour = {"info": "#1f6feb", "warning": "#9a6700", "error": "#cf222e"}.get(level, "#1f6feb")
    body = "<br>".join(html.escape(line) for line in text.splitlines())
    return Message(
        text=text,
        html=f'<div style="border-left:3px solid {colour};padding-left:6px">{body}</div>',
    )


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms"


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def render_restore(
    report: RestoreReport, connection_states: Mapping[str, str] | None = None
) -> Message:
    """One line when everything came back; otherwise the same line plus every skip and why."""
    if not report.found:
        return text_message(f"ipysession: no saved session '{report.session}' yet.")
    where = (
        f"checkpoint '{report.checkpoint}'"
        if report.checkpoint
        else f"generation {report.generation}"
    )
    parts = [
        _count(len(report.variables), "variable"),
        _count(len(report.imports), "import"),
    ]
    if report.preferences:
        parts.append(_count(len(report.preferences), "setting"))
    if report.cwd:
        parts.append(f"cwd {report.cwd}")
    if report.history:
        parts.append(_count(report.history, "history cell"))
    if report.layout:
        parts.append("layout")
    states = connection_states or {}
    if report.connections:
        shown = ", ".join(f"{n} ({states.get(n, 'connecting')})" for n in report.connections)
        parts.append(f"connections: {shown}")
    headline = (
        f"ipysession: restored '{report.session}' ({where}): {', '.join(parts)} "
        f"in {_ms(report.seconds)}."
    )
    lines = [headline]
    if report.skipped:
        lines.append(f"Not restored ({len(report.skipped)}):")
        lines.extend(f"  {item}: {reason}" for item, reason in report.skipped)
    if report.problems:
        lines.append("Problems with session files (older generation used):")
        lines.extend(f"  {problem}" for problem in report.problems)
    if report.skipped or report.problems:
        lines.append("Run `%session status` to see this again.")
    level = "warning" if report.skipped or report.problems else "info"
    return text_message("\n".join(lines), level=level)


def render_save(report: SaveReport) -> Message:
    target = (
        f"checkpoint '{report.checkpoint}'"
        if report.checkpoint
        else (f"generation {report.generation}")
    )
    text = (
        f"ipysession: saved '{report.session}' ({target}): {_count(report.variables, 'variable')}"
    )
    if report.path:
        text += f" to {report.path}"
    if report.skipped:
        text += f"\nNot saved ({len(report.skipped)}):\n" + "\n".join(
            f"  {name}: {reason}" for name, reason in report.skipped
        )
    return text_message(text, level="warning" if report.skipped else "info")


def render_status(status: Status) -> Message:
    state = "off" if not status.autosave else f"every {status.autosave_interval:g} s"
    lines = [
        f"Session:   {status.session}",
        f"Stored in: {status.root} (key: {status.key})",
        f"Autosave:  {state}; last save {format_time(status.last_save)}"
        + (f" (generation {status.last_generation})" if status.last_generation else "")
        + (" — a change is waiting to be written" if status.pending else ""),
        f"Captured:  {_count(status.variables, 'variable')}, "
        f"{_count(status.history, 'history cell')}",
    ]
    lines.extend(_sharing_lines(status))
    if status.disabled:
        lines.append(f"Capture is OFF after repeated errors: {status.disabled}")
    if status.last_error:
        lines.append(f"Last save failed: {status.last_error}")
    if status.skipped:
        lines.append(f"Not saved ({len(status.skipped)}):")
        lines.extend(f"  {name}: {reason}" for name, reason in status.skipped)
    if status.connections:
        lines.append(f"Connections ({len(status.connections)}):")
        for row in status.connections:
            error = f" — {row['last_error']}" if row["last_error"] else ""
            lines.append(f"  {row['name']}: {row['state']} ({row['target']}){error}")
    if status.restore is not None:
        lines.append("Last restore:")
        lines.extend(f"  {line}" for line in render_restore(status.restore).text.splitlines())
    level = "warning" if status.disabled or status.last_error else "info"
    return text_message("\n".join(lines), level=level)


def _sharing_lines(status: Status) -> list[str]:
    """Who holds the session (the lease), fork or read-only mode, and merges."""
    holder = status.lease_holder
    if status.read_only:
        who = holder.describe() if holder is not None else "another kernel"
        lease = f"read-only: {who} uses this session; this kernel never saves to it"
    elif status.lease_problem:
        lease = f"could not be taken ({status.lease_problem}); saves still merge safely"
    elif holder is None:
        lease = "not taken yet (taken at the first save)"
    elif status.lease_ours:
        lease = (
            f"held by this kernel, {holder.describe()}, since {format_time(holder.started)}; "
            f"heartbeat {format_time(holder.heartbeat)}"
        )
    else:
        lease = f"held by {holder.describe()}"
    lines = [f"Lease:     {lease}"]
    if status.fork_of:
        lines.append(f"Fork of:   '{status.fork_of}' (another kernel holds it)")
    if status.merges:
        lines.append(
            f"Merges:    {status.merges} save(s) merged with other kernels' changes"
            + (f"; last: {status.last_merge}" if status.last_merge else "")
        )
    return lines


def render_table(
    headers: Sequence[str], rows: Sequence[Sequence[object]], *, empty: str
) -> Message:
    """A plain-text table for terminals and an HTML table for notebooks."""
    if not rows:
        return text_message(empty)
    cells = [[str(c) for c in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) for i, h in enumerate(headers)]
    text_lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    text_lines.append("  ".join("-" * w for w in widths))
    text_lines.extend(
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells
    )
    head = "".join(f"<th style='text-align:left'>{html.escape(h)}</th>" for h in headers)
    body = "".join(
        "<tr>"
        + "".join(f"<td style='text-align:left'>{html.escape(c)}</td>" for c in row)
        + "</tr>"
        for row in cells
    )
    return Message(
        text="\n".join(text_lines),
        html=f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>",
    )
