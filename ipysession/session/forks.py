"""Forks by name: ``'<name> (fork <kernel id>)'``, and when a kernel's own fork is newer.

A kernel that cannot write its session (another live kernel holds it) saves its work as a fork
named after it and after its kernel id (:meth:`~ipysession.session.sharing.Sharing.fork_name`).
Jupyter keeps a kernel's id across restarts, so the name alone says which kernel a fork belongs
to, and which session it forked. Plain functions, no IPython and no I/O: the command line and the
views use them too (``list`` shows forks under their parent, ``prune --forks-only``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

__all__ = ["fork_name", "fork_parent", "fork_work_is_newer"]

# The kernel id part is the first 8 characters of a kernel id or run id (hex and dashes).
_FORK = re.compile(r"^(?P<parent>.+) \(fork (?P<kernel>[0-9A-Za-z_-]{1,8})\)$", re.DOTALL)


def fork_name(original: str, kernel_id: str) -> str:
    """The name of ``kernel_id``'s fork of session ``original``."""
    return f"{original} (fork {kernel_id[:8]})"


def fork_parent(name: str) -> str | None:
    """The session ``name`` is a fork of, or ``None`` when ``name`` is not a fork's name."""
    match = _FORK.match(name)
    return match.group("parent") if match else None


def fork_work_is_newer(
    fork_times: Iterable[float | None], own_times: Iterable[float | None]
) -> bool:
    """Whether a kernel's fork holds work newer than its last save to the session it forked.

    ``fork_times``: when each generation of the fork was saved; ``own_times``: when each
    generation of the session that this same kernel wrote was saved (``None``: unreadable, not
    counted). A fork with no readable generation holds nothing to bring back; a kernel that never
    saved to the session (it forked at once) has nothing there newer than its fork.
    """
    newest_fork = max((t for t in fork_times if t is not None), default=None)
    if newest_fork is None:
        return False
    newest_own = max((t for t in own_times if t is not None), default=None)
    return newest_own is None or newest_fork > newest_own
