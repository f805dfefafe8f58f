"""Views of replay and time travel: what a restore rebuilt by replaying cells
(:func:`replay_lines`, part of the restore summary), ``%session replay`` (:func:`replay_notice`),
``%session undo``/``checkout`` (:func:`travel_notice`) and ``%session log`` (:func:`log_table`)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

from ipysession.presentation.base import Level, Notice, Table

if TYPE_CHECKING:
    from ipysession.session.reports import ReplayOutcome, TravelReport
    from ipysession.session.timeline import Step

__all__ = [
    "LOG_HEADERS",
    "log_table",
    "replay_consent_json",
    "replay_lines",
    "replay_notice",
    "travel_notice",
]

LOG_HEADERS = ("", "cell", "time", "changed")


def _cells(cells: Sequence[int]) -> str:
    return ("cell " if len(cells) == 1 else "cells ") + ", ".join(str(c) for c in cells)


def _names(outcome: ReplayOutcome) -> str:
    types = outcome.types or ("",) * len(outcome.names)
    shown = []
    for name, type_name in zip(outcome.names, types, strict=False):
        short = type_name.removeprefix("builtins.")
        shown.append(f"{name} ({short})" if short else name)
    return ", ".join(shown)


def _seconds(seconds: float) -> str:
    if seconds < 0.01:
        return f"{seconds * 1000:.1f} ms"
    return f"{seconds * 1000:.0f} ms" if seconds < 1 else f"{seconds:.1f} s"


def replay_lines(outcomes: Sequence[ReplayOutcome]) -> list[str]:
    """One line per group: rebuilt (names, cells, time), waiting, off, failed, impossible."""
    from ipysession.session.reports import ReplayState

    lines: list[str] = []
    for outcome in outcomes:
        names = _names(outcome)
        args = " ".join(outcome.names)
        state = outcome.state
        if state is ReplayState.REBUILT:
            lines.append(
                f"Rebuilt {names} by replaying {_cells(outcome.cells)} "
                f"in {_seconds(outcome.seconds)}."
            )
        elif state is ReplayState.WAITING:
            lines.append(
                f"Not rebuilt: {names}: replaying {_cells(outcome.cells)} needs your consent, "
                f"as {outcome.reason}. `%session replay {args}` asks first; "
                f"`%session replay {args} --yes` runs them."
            )
        elif state is ReplayState.OFF:
            lines.append(
                f"Not rebuilt: {names} ({outcome.reason}): `%session replay {args}` replays "
                f"{_cells(outcome.cells)}."
            )
        elif state is ReplayState.FAILED:
            lines.append(
                f"Could not rebuild {names} by replaying {_cells(outcome.cells)}: "
                f"{outcome.reason}. The rest stands; run those cells again by hand."
            )
        else:
            lines.append(f"Cannot rebuild {names}: {outcome.reason}.")
        for cell, what in outcome.left_out:
            lines.append(
                f"  cell {cell} also used {args} but was not replayed, as it {what}: run it "
                "again if you need what it did"
            )
    return lines


def replay_consent_json(outcomes: Sequence[ReplayOutcome]) -> list[dict[str, object]]:
    """The groups waiting for consent, for the JupyterLab extension's dialog: each group's names
    (with their types), the cells a replay runs and why it asks (``reason``, e.g. "cell 3 writes
    files (open(..., 'a'))")."""
    return [
        {
            "names": list(outcome.names),
            "label": _names(outcome),
            "cells": list(outcome.cells),
            "reason": outcome.reason,
        }
        for outcome in outcomes
    ]


def replay_notice(outcomes: Sequence[ReplayOutcome], session: str) -> Notice:
    """What ``%session replay`` did."""
    from ipysession.session.reports import ReplayState

    if not outcomes:
        return Notice(
            (
                f"ipysession: nothing to rebuild in session '{session}': every value a restore "
                "could not bring back is here, or none was named.",
            )
        )
    lines = [f"ipysession: replay in session '{session}':", *replay_lines(outcomes)]
    ok = all(o.state is ReplayState.REBUILT for o in outcomes)
    return Notice(tuple(lines), Level.INFO if ok else Level.WARNING)


def travel_notice(report: TravelReport) -> Notice:
    """What ``%session undo`` or ``checkout`` did, and how to go back."""
    parts = []
    if report.restored:
        parts.append(f"put back {', '.join(report.restored)}")
    if report.removed:
        parts.append(f"removed {', '.join(report.removed)}")
    done = "; ".join(parts) if parts else "nothing differed"
    lines = [
        f"ipysession: session '{report.session}' is as it was {report.target}: {done} "
        f"({_seconds(report.seconds)}). `%session checkout -` goes back to before this."
    ]
    if report.left:
        lines.append(f"Left as they are ({len(report.left)}):")
        lines.extend(f"  {name}: {why}" for name, why in report.left)
    return Notice(tuple(lines), Level.WARNING if report.left else Level.INFO)


def log_table(steps: Sequence[Step], head: int) -> Table:
    """``%session log``: each cell that changed something, oldest first; ``*`` marks now."""
    rows = []
    counts = {step.index: step.count for step in steps}
    for step in steps:
        changed = []
        for name, value in sorted(step.after.items()):
            changed.append(f"-{name}" if value == (None, None) else name)
        what = ", ".join(changed)
        if step.travelled_to is not None:
            went = counts.get(step.travelled_to)
            first = steps[0].count
            where = f"after cell {went}" if went is not None else f"before cell {first}"
            what = f"(back to {where}) {what}"
        rows.append(
            (
                "*" if step.index == head else "",
                str(step.count),
                time.strftime("%H:%M:%S", time.localtime(step.time)),
                what,
            )
        )
    empty = "No cell has changed a variable in this kernel yet (a restore starts afresh)."
    return Table(LOG_HEADERS, tuple(rows), empty)
