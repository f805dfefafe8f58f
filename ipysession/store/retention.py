"""What the store keeps: the newest ``keep`` generations, and the blobs some kept file refers to.

Both run under the session's write lock, after a write (and blob collection from ``repair``).
Nothing that fails to authenticate decides anything: a generation this key cannot read is moved
to quarantine rather than deleted, and while any generation or checkpoint is unreadable no blob is
collected, since that file may refer to it. Blobs and temp files younger than a grace period are
left alone: another process may be writing the generation that will refer to them.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from ipysession.errors import FileFormatError
from ipysession.store import fileformat
from ipysession.store.disk import Disk
from ipysession.store.names import BLOB_SUFFIX
from ipysession.store.scan import scan_blobs, scan_checkpoints, scan_generations

__all__ = ["collect_blobs", "rotate"]

logger = logging.getLogger("ipysession")


def rotate(disk: Disk, sdir: Path, gens: list[tuple[int, Path]], keep: int) -> None:
    """Remove generations beyond the newest ``keep``.

    Files sealed under another key or by a newer release are moved to quarantine instead of
    being deleted: they may be the only copy of someone's work.
    """
    if len(gens) <= keep:
        return
    for number, path in gens[:-keep]:
        if _is_ours(disk, path):
            try:
                path.unlink()
            except FileNotFoundError:
                pass
            except OSError as exc:
                logger.warning("Could not remove old generation %s: %s", path, exc)
                continue
            disk.forget(path)
            logger.debug("Rotated away generation %d of %s", number, sdir.name)
        else:
            disk.quarantine(path, sdir)


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
    now = time.time()
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
