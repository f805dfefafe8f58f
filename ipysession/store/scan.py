"""The names inside a session store and the listing of its directories: which entries are
generations, checkpoints, blobs and session directories, and which labels and blob ids are valid.

Only regular files (never followed symlinks) with a valid name are listed; everything else in a
session directory is ignored, except files named like a generation whose name no ipysession writes
(:func:`scan_junk_generations`), which the reader moves to quarantine. Nothing here reads a
file's content, so a name decides nothing: the store trusts a generation's number only once the
file has authenticated and says it is that generation.
"""

from __future__ import annotations

import errno
import logging
import os
import re
from pathlib import Path

from ipysession.errors import CorruptFile, StoreError
from ipysession.store.names import (
    BLOB_SUFFIX,
    BLOBS_DIR,
    CHECKPOINTS_DIR,
    GENERATION_SUFFIX,
    WINDOWS_RESERVED,
)

__all__ = [
    "BLOB_ID_RE",
    "GEN_RE",
    "MAX_GENERATION",
    "SLUG_RE",
    "check_blob_id",
    "check_label",
    "gen_name",
    "generation_number",
    "scan_blobs",
    "scan_checkpoints",
    "scan_generations",
    "scan_junk_generations",
    "scan_session_dirs",
]

logger = logging.getLogger("ipysession")

_GEN_DIGITS = 8
#: No real session reaches this many saves (one a second for 285 million years), and numbers up
#: to it are exact in every JSON reader. A name numbered above it is junk: never counted, never
#: the base of the next number (a planted ``gen-999999999999999999.ipys`` once made every later
#: save be written under a name the scanner did not list).
MAX_GENERATION = 2**53

#: Any number of digits: a name the scanner skipped would be a generation nobody reads.
GEN_RE = re.compile(r"gen-(\d+)\.ipys")
BLOB_ID_RE = re.compile(r"[A-Za-z0-9_-]{1,128}")
SLUG_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*-[0-9a-f]{12}")
_LABEL_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


# --- names ----------------------------------------------------------------------------------------


def check_label(label: str) -> None:
    if (
        not isinstance(label, str)
        or not _LABEL_RE.fullmatch(label)
        or label.endswith(".")
        or label.split(".")[0].upper() in WINDOWS_RESERVED
    ):
        msg = f"Invalid checkpoint label {label!r}"
        raise StoreError(
            msg,
            hint="Use up to 64 letters, digits, '.', '_' or '-', starting with a letter or digit",
        )


def check_blob_id(blob_id: str, where: Path) -> None:
    if not isinstance(blob_id, str) or not BLOB_ID_RE.fullmatch(blob_id):
        msg = f"Invalid blob reference {blob_id!r}"
        raise CorruptFile(msg, path=where)


def gen_name(number: int) -> str:
    return f"gen-{number:0{_GEN_DIGITS}d}{GENERATION_SUFFIX}"


# --- listing --------------------------------------------------------------------------------------


def generation_number(name: str) -> int | None:
    """The number of a generation file named as ipysession names them; ``None`` for any other
    name (another zero-padding, number 0, or a number above :data:`MAX_GENERATION`)."""
    match = GEN_RE.fullmatch(name)
    if not match or len(match[1]) > len(str(MAX_GENERATION)):  # never int() a huge string
        return None
    number = int(match[1])
    if not 1 <= number <= MAX_GENERATION or name != gen_name(number):
        return None
    return number


def _scan_named_generations(sdir: Path) -> list[tuple[int | None, Path]]:
    found: list[tuple[int | None, Path]] = []
    try:
        entries = os.scandir(_not_a_link(sdir))
    except (FileNotFoundError, NotADirectoryError):
        return found
    with entries:
        for entry in entries:
            if GEN_RE.fullmatch(entry.name) and entry.is_file(follow_symlinks=False):
                found.append((generation_number(entry.name), Path(entry.path)))
    return found


def scan_generations(sdir: Path) -> list[tuple[int, Path]]:
    """Generation files of a session, oldest first (regular files only, names as written)."""
    return sorted((n, p) for n, p in _scan_named_generations(sdir) if n is not None)


def scan_junk_generations(sdir: Path) -> list[Path]:
    """Regular files named ``gen-<digits>.ipys`` that no ipysession writes: another padding
    (``gen-7.ipys``, which would be a second generation 7), 0, or an absurd number."""
    return sorted(p for n, p in _scan_named_generations(sdir) if n is None)


def scan_checkpoints(sdir: Path) -> list[Path]:
    found: list[Path] = []
    try:
        entries = os.scandir(_not_a_link(sdir / CHECKPOINTS_DIR))
    except (FileNotFoundError, NotADirectoryError):
        return found
    with entries:
        for entry in entries:
            if (
                entry.name.endswith(GENERATION_SUFFIX)
                and not entry.name.startswith(".")
                and entry.is_file(follow_symlinks=False)
            ):
                found.append(Path(entry.path))
    found.sort()
    return found


def scan_blobs(sdir: Path) -> list[os.DirEntry[str]]:
    found: list[os.DirEntry[str]] = []
    try:
        entries = os.scandir(_not_a_link(sdir / BLOBS_DIR))
    except (FileNotFoundError, NotADirectoryError):
        return found
    with entries:
        for entry in entries:
            name = entry.name
            if (
                name.endswith(BLOB_SUFFIX)
                and BLOB_ID_RE.fullmatch(name[: -len(BLOB_SUFFIX)])
                and entry.is_file(follow_symlinks=False)
            ):
                found.append(entry)
    return found


def _not_a_link(folder: Path) -> Path:
    """``folder``, unless it is a symbolic link: the store never lists (nor reads, nor writes)
    through a link below its root, so a planted one is skipped, as if absent, and logged."""
    if folder.is_symlink():
        logger.warning(
            "Skipping %s: it is a symbolic link, and ipysession never follows links inside its "
            "store. Replace it with the real directory, or remove it",
            folder,
        )
        raise NotADirectoryError(errno.ENOTDIR, "a symbolic link", str(folder))
    return folder


def scan_session_dirs(sessions_dir: Path) -> list[Path]:
    """Session directories under ``sessions_dir``, sorted; hidden entries (trash) are skipped."""
    try:
        entries = os.scandir(sessions_dir)
    except (FileNotFoundError, NotADirectoryError):
        return []
    with entries:
        return sorted(
            Path(e.path)
            for e in entries
            if not e.name.startswith(".") and e.is_dir(follow_symlinks=False)
        )
