"""What every view is made of: the state words, notice levels, tables, sections and notices."""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ipysession.store import FileProblem

__all__ = [
    "Column",
    "Field",
    "Level",
    "Notice",
    "Pairs",
    "Section",
    "State",
    "Table",
    "Tone",
    "field_line",
    "known",
    "problem_json",
    "text_table",
    "tone_of",
]


class Tone(str, enum.Enum):
    """How a state word is coloured in HTML. The word is always there too: colour only adds."""

    GOOD = "good"
    INFO = "info"
    WARNING = "warning"
    ERROR = "error"
    NEUTRAL = "neutral"


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

    @property
    def tone(self) -> Tone:
        return tone_of(self.value)[1]


#: The words that open a state cell, and their colour: session and file states, connection
#: states (``connections.reconnector.ConnectionState``), a variable's and a cell's outcome.
_TONES: dict[str, Tone] = {
    "ok": Tone.GOOD,
    "connected": Tone.GOOD,
    "saved": Tone.GOOD,
    "in use": Tone.INFO,
    "fork": Tone.INFO,
    "connecting": Tone.INFO,
    "read-only": Tone.WARNING,
    "retrying": Tone.WARNING,
    "skipped": Tone.WARNING,
    "corrupt": Tone.ERROR,
    "wrong-key": Tone.ERROR,
    "newer-format": Tone.ERROR,
    "unreadable": Tone.ERROR,
    "failed": Tone.ERROR,
    "error": Tone.ERROR,
    "disconnected": Tone.NEUTRAL,
}
# Longest first, so "in use" is not read as a word "in".
_WORDS = sorted(_TONES, key=len, reverse=True)


def tone_of(text: str) -> tuple[str, Tone]:
    """The state word ``text`` opens with and its tone; ``("", NEUTRAL)`` when it has none.

    Only a whole word counts: ``"ok"`` opens ``"ok"`` and ``"ok (3)"``, not ``"okay"``.
    """
    for word in _WORDS:
        after = text[len(word) : len(word) + 1]  # "" at the end of the text
        if text.startswith(word) and not (after.isalnum() or after in ("-", "_")):
            return word, _TONES[word]
    return "", Tone.NEUTRAL


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


class Column(str, enum.Enum):
    """What a column holds, which HTML shows: plain text, a state word, or code."""

    TEXT = "text"
    #: Opens with a state word (:func:`tone_of`), coloured in HTML.
    STATE = "state"
    #: Source code: whitespace kept, in the code font.
    CODE = "code"


@dataclass(frozen=True)
class Table:
    """Rows of text under headers; ``empty`` is said instead when there are none.

    ``columns`` says what each column holds (all text when empty); only HTML uses it: the text
    form is the same for every kind."""

    headers: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    empty: str
    notes: tuple[str, ...] = ()
    columns: tuple[Column, ...] = ()

    def column(self, index: int) -> Column:
        return self.columns[index] if index < len(self.columns) else Column.TEXT

    def text(self, indent: str = "") -> str:
        body = text_table(self.headers, self.rows, indent) if self.rows else indent + self.empty
        return "\n\n".join([body, *self.notes]) if self.rows and self.notes else body


def known(value: int | None, *, readable: bool = True) -> str:
    """A count, or ``?`` where the file it comes from does not read."""
    return "?" if value is None or not readable else str(value)


@dataclass(frozen=True)
class Field:
    """One ``label: value`` line of a view; ``state``: the value opens with a state word."""

    label: str
    value: str
    state: bool = False


def field_line(item: Field, width: int) -> str:
    """``item`` as text: the label padded to ``width`` (``"State:     ok"``)."""
    return f"{item.label:<{width}}{item.value}"


@dataclass(frozen=True)
class Pairs:
    """A titled list of ``name: reason`` lines (what was skipped and why)."""

    title: str
    items: tuple[tuple[str, str], ...]
    headers: tuple[str, str] = ("name", "reason")

    def lines(self) -> list[str]:
        return [self.title, *(f"  {name}: {reason}" for name, reason in self.items)]


@dataclass(frozen=True)
class Section:
    """A titled part of a view: fields (labels padded to ``width``), lines of text (``code``:
    source code, shown in the code font), then an optional table."""

    title: str
    lines: tuple[str, ...] = ()
    table: Table | None = None
    fields: tuple[Field, ...] = ()
    width: int = 12
    code: bool = False

    def text(self) -> str:
        parts = [self.title, *(f"  {field_line(f, self.width)}" for f in self.fields)]
        parts.extend(f"  {line}" for line in self.lines)
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
