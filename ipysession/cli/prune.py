"""The ``ipysession prune`` command: remove old forks and sessions, after a dry run.

Forks pile up: every kernel that found its session held saved its work as a fork
(``'<name> (fork <kernel id>)'``, see :mod:`ipysession.session.forks`). ``prune`` lists the
sessions (or, with ``--forks-only``, the forks) whose newest save is older than ``--older-than``,
and removes them only with ``--yes``. A session a live kernel holds is never removed, whatever
its age: it is listed as kept, naming the kernel.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ipysession.cli.common import EXIT_OK, Context, UsageError
from ipysession.formatting import count
from ipysession.session.discard import DEFAULT_LEASE_TIMEOUT, live_holder
from ipysession.session.forks import fork_parent

if TYPE_CHECKING:
    import argparse

    from ipysession.store import SessionSummary

__all__ = ["cmd_prune", "parse_age"]

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_AGE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")


def parse_age(text: str) -> float:
    """``'90m'``, ``'12h'``, ``'7d'``, ``'2w'`` (or seconds with ``s``) as seconds."""
    match = _AGE.match(text.lower())
    if match is None:
        msg = (
            f"--older-than takes a number and a unit: s, m, h, d or w (e.g. 7d, 12h), not {text!r}"
        )
        raise UsageError(msg)
    return float(match.group(1)) * _UNITS[match.group(2)]


@dataclass(frozen=True)
class _Candidate:
    name: str
    age: float
    held_by: str | None


def _age_text(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.0f} {unit}"
    return f"{seconds:.0f} s"


def _candidates(
    ctx: Context, sessions: list[SessionSummary], older_than: float, *, forks_only: bool
) -> list[_Candidate]:
    now = time.time()
    found = []
    for summary in sessions:
        name = summary.name
        # A session whose newest file does not read has no name to go by: `doctor` is for it.
        if name is None or summary.updated is None:
            continue
        if forks_only and fork_parent(name) is None:
            continue
        age = now - summary.updated
        if age < older_than:
            continue
        holder = live_holder(ctx.root, name, timeout=DEFAULT_LEASE_TIMEOUT)
        found.append(_Candidate(name, age, holder.describe() if holder is not None else None))
    return sorted(found, key=lambda c: c.age, reverse=True)


def cmd_prune(ctx: Context, args: argparse.Namespace) -> int:
    older_than = parse_age(args.older_than)
    store = ctx.store()
    what = "forks" if args.forks_only else "sessions"
    found = _candidates(ctx, store.list(), older_than, forks_only=args.forks_only)
    removable = [c for c in found if c.held_by is None]
    if not found:
        ctx.say(f"No {what} last saved more than {args.older_than} ago.")
        return EXIT_OK
    for candidate in found:
        kept = f"  (kept: in use by {candidate.held_by})" if candidate.held_by else ""
        ctx.say(f"  {candidate.name}  last saved {_age_text(candidate.age)} ago{kept}")
    if not args.yes:
        ctx.say(
            f"Would remove {count(len(removable), what[:-1])}. Nothing was removed: run again "
            "with --yes to remove them."
        )
        return EXIT_OK
    for candidate in removable:
        store.delete(candidate.name)
    ctx.say(f"Removed {count(len(removable), what[:-1])}.")
    return EXIT_OK
