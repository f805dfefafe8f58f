"""What to say when a generation or checkpoint asked for is not there.

Generations are thinned by age and rotated away, labels get mistyped: the message names what is
missing, the generations on either side of the one asked for (with when each was saved), what
there is, and how to pick one of it. Never "no saved session" for a session that exists.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from ipysession.errors import SessionNotFound
from ipysession.formatting import format_time

if TYPE_CHECKING:
    from ipysession.store import GenerationInfo, SessionStore

__all__ = ["missing_snapshot", "nearest_kept"]


def _some(items: Iterable[str], shown: int = 20) -> str:
    """``a, b, c``; past ``shown`` items, the first ones ``and 480 more``; ``none`` for none."""
    listed = list(items)
    if not listed:
        return "none"
    more = len(listed) - shown
    return ", ".join(listed[:shown]) + (f" and {more} more" if more > 0 else "")


def nearest_kept(infos: Sequence[GenerationInfo], generation: int) -> str:
    """`` Nearest kept: 38 (saved ...), 45 (saved ...).``: the generations on either side of
    ``generation`` (one, at either end), for a message; ``""`` when there are none."""
    below = max((i for i in infos if i.number < generation), key=lambda i: i.number, default=None)
    above = min((i for i in infos if i.number > generation), key=lambda i: i.number, default=None)
    found = [i for i in (below, above) if i is not None]
    if not found:
        return ""
    shown = ", ".join(
        f"{i.number} (saved {format_time(i.time or i.mtime, missing='at an unknown time')})"
        for i in found
    )
    return f" Nearest kept: {shown}."


def missing_snapshot(
    store: SessionStore, name: str, generation: int | None, checkpoint: str | None, *, own: bool
) -> SessionNotFound:
    """The error for a generation or checkpoint of ``name`` that is not there (rotated away,
    never written, mistyped); ``own``: ``name`` is this kernel's session (the hint says
    ``%session restore`` without a name)."""
    missing = f"checkpoint '{checkpoint}'" if checkpoint is not None else f"generation {generation}"
    infos = store.generations(name)
    numbers = sorted(info.number for info in infos)
    labels = sorted(info.label for info in store.checkpoints(name))
    # Older generations are thinned by age: the ones on either side are what the user most
    # likely wants instead, with the time that tells them apart.
    nearest = "" if generation is None else nearest_kept(infos, generation)
    msg = (
        f"Session '{name}' has no {missing}.{nearest} Its generations: "
        f"{_some(map(str, numbers))}; its checkpoints: {_some(labels)}"
    )
    which = "" if own else f" '{name}'"
    return SessionNotFound(
        msg,
        hint=(
            f"`%session restore{which} --generation N` or `--checkpoint LABEL` brings one "
            f"back; `%session snapshots{which}` shows when each was saved"
        ),
    )
