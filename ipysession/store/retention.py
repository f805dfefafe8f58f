"""What the store keeps: generations thinned by age and bounded by size, and the blobs some kept
file refers to.

The decision is a pure function, :func:`decide`: given each generation's number, time and size,
and the time now, which generations to keep. Its rules, in order:

1. The newest generation is always kept (it is the session), and so are the newest
   ``Retention.keep`` generations, whatever their age (``SessionManager.keep_generations``).
2. Every other generation is placed by its age in the first tier of the schedule whose ``span``
   it is younger than. An ``all`` tier keeps every generation in it; an ``every`` tier keeps, of
   the generations in each interval of that length (counted from the epoch, so a generation's
   interval never changes as it ages), the newest. A generation older than the last tier goes.
3. Then the size bound: while the kept generation files add up to more than
   ``Retention.max_bytes``, the oldest kept one goes (never the newest, whose size alone may
   pass the bound: a bound must not lose the session).

The default schedule, ``all for 10m, every 10m for 1d, every 1d for 1w``, keeps every save of
the last ten minutes, one per ten minutes for a day (at most 144) and one per day for a week (at
most 7): the state of an hour ago or of yesterday is there to go back to. Checkpoints are not
generations and are never thinned. Thinning is stable: a generation that survives a pass is
dropped later only when a newer generation of its interval replaces it, when it ages past the
schedule, or by the size bound.

Both :func:`rotate` and :func:`collect_blobs` run under the session's write lock, after a write
(and blob collection from ``repair``). Nothing that fails to authenticate decides anything: a
generation this key cannot read is timed by its file's mtime and moved to quarantine rather than
deleted, and while any generation or checkpoint is unreadable no blob is collected, since that
file may refer to it. Blobs and temp files younger than a grace period are left alone: another
process may be writing the generation that will refer to them.
"""

from __future__ import annotations

import logging
import math
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ipysession.errors import FileFormatError
from ipysession.store import fileformat
from ipysession.store.disk import Disk
from ipysession.store.names import BLOB_SUFFIX
from ipysession.store.scan import scan_blobs, scan_checkpoints, scan_generations

__all__ = [
    "DEFAULT_MAX_BYTES",
    "DEFAULT_SCHEDULE",
    "Retention",
    "Stamp",
    "Tier",
    "collect_blobs",
    "decide",
    "describe_duration",
    "parse_schedule",
    "rotate",
]

logger = logging.getLogger("ipysession")

#: What ``SessionManager.retention`` is by default (see the module docstring).
DEFAULT_SCHEDULE = "all for 10m, every 10m for 1d, every 1d for 1w"
#: The bound on the generation files of one session (blobs, shared by generations, and
#: checkpoints are not counted): 256 MiB holds the default schedule's ~160 generations of a
#: session with 1.5 MiB of history and small values.
DEFAULT_MAX_BYTES = 256 * 1024 * 1024

_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 7 * 86400.0}
_DURATION = r"(\d+(?:\.\d+)?)\s*([smhdw])"
_RULE_RE = re.compile(rf"(?:all|every\s+{_DURATION})\s+for\s+{_DURATION}", re.IGNORECASE)


@dataclass(frozen=True)
class Tier:
    """One rule of a schedule: of the generations younger than ``span`` seconds (and older than
    the previous tier's span), keep all (``every is None``) or the newest of each ``every``
    seconds."""

    span: float
    every: float | None = None


@dataclass(frozen=True)
class Retention:
    """Which generations a store keeps (see the module docstring)."""

    tiers: tuple[Tier, ...]
    keep: int = 5
    max_bytes: int | None = DEFAULT_MAX_BYTES

    def __post_init__(self) -> None:
        if self.keep < 1:
            msg = f"keep must be at least 1, not {self.keep}"
            raise ValueError(msg)
        if self.max_bytes is not None and self.max_bytes < 0:
            msg = f"max_bytes must be 0 or more, not {self.max_bytes}"
            raise ValueError(msg)
        spans = [tier.span for tier in self.tiers]
        if spans != sorted(set(spans)):
            msg = "The tiers of a retention schedule must have increasing spans"
            raise ValueError(msg)

    @classmethod
    def from_schedule(
        cls, schedule: str, *, keep: int = 5, max_bytes: int | None = DEFAULT_MAX_BYTES
    ) -> Retention:
        """A retention from the schedule text of ``SessionManager.retention``."""
        return cls(parse_schedule(schedule), keep=keep, max_bytes=max_bytes)


@dataclass(frozen=True)
class Stamp:
    """What :func:`decide` knows of one generation: its number, its time, its file's size."""

    number: int
    time: float
    size: int


def parse_schedule(text: str) -> tuple[Tier, ...]:
    """The tiers of a schedule such as ``"all for 10m, every 10m for 1d, every 1d for 1w"``.

    Rules are separated by commas; durations are a number and a unit (s, m, h, d, w); spans are
    ages counted from now and must increase. An empty text means no tiers: only the newest
    ``keep`` generations are kept. Anything else raises ValueError saying what is accepted.
    """
    tiers: list[Tier] = []
    for part in (p.strip() for p in text.split(",")):
        if not part and not text.strip():
            continue
        match = _RULE_RE.fullmatch(part)
        if match is None:
            msg = (
                f"Invalid retention rule {part!r}: write 'all for DURATION' or 'every DURATION "
                f"for DURATION', separated by commas, e.g. {DEFAULT_SCHEDULE!r} (units: s, m, "
                "h, d, w)"
            )
            raise ValueError(msg)
        every_n, every_unit, span_n, span_unit = match.groups()
        every = None if every_n is None else float(every_n) * _UNITS[every_unit.lower()]
        span = float(span_n) * _UNITS[span_unit.lower()]
        if (every is not None and not every > 0) or not math.isfinite(span) or span <= 0:
            msg = f"Invalid retention rule {part!r}: durations must be more than 0"
            raise ValueError(msg)
        if tiers and span <= tiers[-1].span:
            msg = (
                f"Invalid retention rule {part!r}: each rule must reach further back than the "
                f"one before it ({describe_duration(tiers[-1].span)})"
            )
            raise ValueError(msg)
        tiers.append(Tier(span=span, every=every))
    return tuple(tiers)


def describe_duration(seconds: float) -> str:
    """``600`` -> ``"10m"``: the largest unit that divides it (as a schedule writes it)."""
    for unit, size in sorted(_UNITS.items(), key=lambda item: -item[1]):
        if seconds >= size and (seconds / size).is_integer():
            return f"{seconds / size:g}{unit}"
    return f"{seconds:g}s"


def decide(stamps: Sequence[Stamp], now: float, retention: Retention) -> set[int]:
    """The numbers of the generations to keep (the rules are in the module docstring).

    Pure: ``now`` is given, nothing is read. A generation dated in the future (another host's
    clock) counts as new and is kept.
    """
    if not stamps:
        return set()
    by_number = sorted(stamps, key=lambda s: s.number)
    kept = {s.number for s in by_number[-retention.keep :]}
    newest = by_number[-1].number
    # (tier index, interval index) -> the newest stamp seen in that interval
    newest_in: dict[tuple[int, int], Stamp] = {}
    for stamp in by_number[: -retention.keep]:
        age = max(0.0, now - stamp.time)
        tier = next((i for i, t in enumerate(retention.tiers) if age < t.span), None)
        if tier is None:
            continue  # older than the schedule
        every = retention.tiers[tier].every
        if every is None:
            kept.add(stamp.number)
            continue
        slot = (tier, math.floor(stamp.time / every))
        best = newest_in.get(slot)
        if best is None or (stamp.time, stamp.number) > (best.time, best.number):
            newest_in[slot] = stamp
    kept |= {s.number for s in newest_in.values()}
    if retention.max_bytes is not None:
        sizes = {s.number: s.size for s in by_number}
        total = sum(sizes[n] for n in kept)
        for number in sorted(kept):
            if total <= retention.max_bytes:
                break
            if number != newest:
                kept.discard(number)
                total -= sizes[number]
    return kept


def rotate(
    disk: Disk, sdir: Path, gens: list[tuple[int, Path]], retention: Retention, *, now: float
) -> list[int]:
    """Remove the generations :func:`decide` does not keep; returns the numbers removed.

    Files sealed under another key or by a newer release are moved to quarantine instead of
    being deleted: they may be the only copy of someone's work.
    """
    paths = dict(gens)
    stamps = [s for number, path in gens if (s := _stamp(disk, sdir, number, path)) is not None]
    kept = decide(stamps, now, retention)
    removed: list[int] = []
    for stamp in stamps:
        if stamp.number in kept:
            continue
        path = paths[stamp.number]
        if _is_ours(disk, path):
            try:
                path.unlink()
            except FileNotFoundError:
                pass
            except OSError as exc:
                logger.warning("Could not remove old generation %s: %s", path, exc)
                continue
            disk.forget(path)
            logger.debug("Thinned away generation %d of %s", stamp.number, sdir.name)
        else:
            disk.quarantine(path, sdir)
        removed.append(stamp.number)
    return removed


def _stamp(disk: Disk, sdir: Path, number: int, path: Path) -> Stamp | None:
    """When a generation was saved and its size; ``None`` if the file is gone.

    The time is the one the session says it was saved at (authenticated, and what listings
    show); a file this key cannot read, or one without a time, is timed by its mtime.
    """
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    except OSError as exc:
        logger.debug("Not thinning %s: %s", path, exc)
        return None
    try:
        saved = disk.meta_for(path, sdir).updated
    except (FileFormatError, OSError, LookupError):
        saved = 0.0
    return Stamp(number, saved if saved > 0 else st.st_mtime, st.st_size)


def _is_ours(disk: Disk, path: Path) -> bool:
    """True if ``path`` is a session file sealed under a key this store holds (header only)."""
    try:
        with open(path, "rb") as f:
            head = f.read(fileformat.HEADER_SIZE + 16)
        header = fileformat.read_header(head, path=path)
    except (FileFormatError, OSError):
        return False
    return disk.key.for_reading(header.salt, header.key_id) is not None


def _referenced_blobs(disk: Disk, sdir: Path) -> set[str] | None:
    """Blob ids referred to by every generation and checkpoint; ``None`` if one is unreadable.

    Files this store wrote or read are answered from memory; others are decoded once.
    """
    refs: set[str] = set()
    files = [path for _, path in scan_generations(sdir)]
    files += scan_checkpoints(sdir)
    for path in files:
        try:
            refs |= disk.meta_for(path, sdir).blob_refs
        except FileNotFoundError:
            continue
        except (FileFormatError, OSError, LookupError) as exc:
            logger.debug("Not collecting blobs of %s: %s is unreadable (%s)", sdir, path, exc)
            return None
    return refs


def collect_blobs(disk: Disk, sdir: Path, *, grace: float) -> list[Path]:
    """Delete blobs that no generation or checkpoint refers to and that are older than grace."""
    blobs = scan_blobs(sdir)
    if not blobs:
        return []
    refs = _referenced_blobs(disk, sdir)
    if refs is None:
        return []
    removed: list[Path] = []
    now = time.time()  # file mtimes are real time: a grace is measured on the real clock
    for entry in blobs:
        if entry.name[: -len(BLOB_SUFFIX)] in refs:
            continue
        try:
            if now - entry.stat(follow_symlinks=False).st_mtime < grace:
                continue
            Path(entry.path).unlink()
        except FileNotFoundError:
            continue
        except OSError as exc:
            logger.warning("Could not remove unreferenced blob %s: %s", entry.path, exc)
            continue
        path = Path(entry.path)
        disk.forget(path)
        removed.append(path)
    if removed:
        logger.debug("Collected %d unreferenced blobs of %s", len(removed), sdir.name)
    return removed
