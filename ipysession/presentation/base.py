"""What every view is made of: the state words, notice levels, tables, sections and notices."""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ipysession.store import FileProblem

__all__ = ["Level", "Notice", "Section", "State", "Table", "known", "problem_json", "text_table"]


class State(str, enum.Enum):
    """The state of a session or one of its files, in the words both faces print.

    The file states are the store's problem kinds (``ipysession list --json`` has always written
    them); the sharing states say how this kernel shares its session with others.
    """

    OK = "ok"
    CORRUPT = "corrupt"
    WRONG_KEY = "wrong-key"
    NEWER_FORMAT = "newer-format"
    UNREADABLE = "unreadable"
    #: Another kernel holds the lease; this one saves by merging.
    IN_USE = "in use"
    #: Another kernel holds the lease and this kernel never saves to the session.
    READ_ONLY = "read-only"
    #: Another kernel held the lease, so this kernel saves to a session of its own.
    FORK = "fork"

    def __str__(self) -> str:
        return self.value

    @classmethod
    def of_file(cls, problem: FileProblem | None) -> State:
        """``ok``, or the kind of problem the store found with a file."""
        return cls.OK if problem is None else cls(problem.kind)


class Level(str, enum.Enum):
    """How a notice is shown: the colour of its bar in a notebook."""

    INFO = "info"
    WARNING = "warning"
    ERROR = "error"


# --- tables -------------------------------------------------------------------------------------


def text_table(headers: Sequence[str], rows: Sequence[Sequence[object]], indent: str = "") -> str:
    """Columns padded to their widest cell, under a header and a line of dashes."""
    cells = [[str(c) for c in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) for i, h in enumerate(headers)]

    def line(values: Sequence[str]) -> str:
        return indent + "  ".join(v.ljust(w) for v, w in zip(values, widths, strict=True)).rstrip()

    return "\n".join([line(headers), line(["-" * w for w in widths]), *map(line, cells)])


@dataclass(frozen=True)
class Table:
    """Rows of text under headers; ``empty`` is said instead when there are none."""

    headers: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    empty: str
    notes: tuple[str, ...] = ()

    def text(self, indent: str = "") -> str:
        body = text_table(self.headers, self.rows, indent) if self.rows else indent + self.empty
        return "\n\n".join([body, *self.notes]) if self.rows and self.notes else body


def known(value: int | None, *, readable: bool = True) -> str:
    """A count, or ``?`` where the file it comes from does not read."""
    return "?" if value is None or not readable else str(value)


@dataclass(frozen=True)
class Section:
    """A titled part of a view: lines of text, then an optional table."""

    title: str
    lines: tuple[str, ...] = ()
    table: Table | None = None

    def text(self) -> str:
        parts = [self.title, *(f"  {line}" for line in self.lines)]
        if self.table is not None and self.table.rows:
            parts.append(self.table.text(indent="  "))
        return "\n".join(parts)


@dataclass(frozen=True)
class Notice:
    """Lines for the user, and how loudly to show them."""

    lines: tuple[str, ...]
    level: Level = Level.INFO

    @property
    def text(self) -> str:
        return "\n".join(self.lines)


def problem_json(problem: FileProblem) -> dict[str, Any]:
    return {
        "path": str(problem.path),
        "kind": str(problem.kind),
        "message": problem.message,
        "quarantined_to": str(problem.quarantined_to) if problem.quarantined_to else None,
    }
