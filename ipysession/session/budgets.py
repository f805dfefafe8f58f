"""Size budgets that fit the machine: how large one saved value, and one session, may be.

Fixed budgets (256 MiB per variable, 1 GiB per session) skipped exactly what ML users most want
back: model weights, embeddings, cached activations of several GB (issue 17). When the user sets
neither ``SessionManager.max_variable_bytes`` nor ``max_session_bytes`` (0, the default), each is
derived from the machine the kernel runs on, once, when the manager first needs it
(:func:`machine_budgets`):

- **one variable**: a quarter of the memory, and an eighth of the free disk under the store;
- **the whole session**: half of the memory, and a quarter of the free disk;
- never less than the fixed budgets of earlier releases (:data:`FLOOR`), rounded down to a MiB;
- one variable never more than the largest value a blob may hold (64 GiB, what readers accept:
  ``store.limits.DEFAULT_MAX_VALUE_BYTES``), however large the machine.

Why these shares. Memory: saving a value holds its serialized copy beside it, and sealing it
another one while it is written, so a value of a quarter of the memory already needs about half.
Disk: a value that changes is written as a new blob while older generations keep the old one
(until retention drops them), so a session takes a few times its size; a quarter of the free disk
leaves room for that and for everything else on that disk. The memory is the physical memory, or
the container's limit (cgroup) where that is lower. Measured once per kernel, so a save that
fills the disk does not shrink the budget under a value it has just saved.

Where the machine cannot be measured (no ``os.sysconf``, say), the floor is used, and
:class:`Budgets` says so. :func:`derive_budgets` is the pure rule, tested on its own.
"""

from __future__ import annotations

import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from ipysession.formatting import format_size as format_bytes
from ipysession.store.limits import DEFAULT_MAX_VALUE_BYTES

__all__ = [
    "CEILING_VARIABLE",
    "FLOOR",
    "FLOOR_SESSION",
    "FLOOR_VARIABLE",
    "Budgets",
    "derive_budgets",
    "free_disk",
    "machine_budgets",
    "memory_bytes",
]

log = logging.getLogger("ipysession")

MiB = 1024 * 1024
GiB = 1024 * MiB

#: What ``CaptureLimits`` gives when nothing is known: the fixed budgets of earlier releases.
FLOOR_VARIABLE = 256 * MiB
FLOOR_SESSION = 1 * GiB
#: A blob larger than this is refused by every reader, so no derived budget goes past it.
CEILING_VARIABLE = DEFAULT_MAX_VALUE_BYTES


@dataclass(frozen=True)
class Budgets:
    """The two budgets and where they come from (shown by ``%session status``)."""

    max_variable_bytes: int
    max_session_bytes: int
    #: Words for the source: "derived from 62.5 GiB of memory and 410.0 GiB free under /data".
    source: str


FLOOR = Budgets(FLOOR_VARIABLE, FLOOR_SESSION, "fixed defaults (the machine could not be measured)")


def _mib_floor(n: float) -> int:
    return int(n) // MiB * MiB


def derive_budgets(memory: int | None, disk_free: int | None, *, where: str = "") -> Budgets:
    """The budgets for a machine with ``memory`` bytes of memory and ``disk_free`` bytes free
    under the store (``where``), either unknown (``None``); see the module docstring."""
    limits = [(memory / 4, memory / 2)] if memory else []
    if disk_free is not None:
        limits.append((disk_free / 8, disk_free / 4))
    if not limits:
        return FLOOR
    variable = max(FLOOR_VARIABLE, _mib_floor(min(v for v, _ in limits)))
    variable = min(variable, CEILING_VARIABLE)
    session = max(FLOOR_SESSION, _mib_floor(min(s for _, s in limits)), variable)
    measured = []
    if memory:
        measured.append(f"{format_bytes(memory)} of memory")
    if disk_free is not None:
        measured.append(f"{format_bytes(disk_free)} free under {where or 'the store'}")
    return Budgets(variable, session, "derived from " + " and ".join(measured))


def memory_bytes() -> int | None:
    """Physical memory, or the cgroup's limit where that is lower; None when unknown."""
    physical: int | None = None
    try:
        physical = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):  # not on every platform
        log.debug("physical memory unknown", exc_info=True)
    limit = _cgroup_limit()
    if limit is not None and (physical is None or limit < physical):
        return limit
    return physical if physical and physical > 0 else None


_CGROUP_FILES = (
    Path("/sys/fs/cgroup/memory.max"),  # cgroup v2
    Path("/sys/fs/cgroup/memory/memory.limit_in_bytes"),  # cgroup v1
)


def _cgroup_limit() -> int | None:
    for path in _CGROUP_FILES:
        try:
            text = path.read_text(encoding="ascii").strip()
        except (OSError, UnicodeDecodeError):
            continue
        if text.isdigit():  # "max" (v2) means no limit; v1 says "no limit" with a huge number
            return int(text)
    return None


def free_disk(root: str | os.PathLike[str]) -> tuple[int | None, str]:
    """Free bytes (for this user) on the disk that holds ``root``, and the directory measured:
    the root, or its nearest existing parent before the first save creates it."""
    path = Path(root).expanduser()
    for candidate in (path, *path.parents):
        if candidate.is_dir():
            try:
                return shutil.disk_usage(candidate).free, str(candidate)
            except OSError:
                log.debug("free disk under %s unknown", candidate, exc_info=True)
                return None, str(candidate)
    return None, str(path)


def machine_budgets(root: str | os.PathLike[str]) -> Budgets:
    """The budgets of this machine, for a store at ``root``."""
    disk, where = free_disk(root)
    return derive_budgets(memory_bytes(), disk, where=where)
