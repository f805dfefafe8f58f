"""Where a session lives on disk: directory and file names, with no I/O and no key.

The store, the lease and the extension's cheap "is there a saved session?" check all need these
names; keeping them apart from :mod:`ipysession.store.session_store` means that check imports no
cryptography. The layout on disk is described in docs/file-format.md and docs/developer-guide.md.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from pathlib import Path

from ipysession.atomic import TEMP_PREFIX
from ipysession.errors import StoreError

__all__ = [
    "BLOBS_DIR",
    "BLOB_SUFFIX",
    "CHECKPOINTS_DIR",
    "GENERATION_SUFFIX",
    "HEAD_FILE",
    "LOCK_FILE",
    "QUARANTINE_DIR",
    "RENAMING_PREFIX",
    "SESSIONS_DIR",
    "TEMP_PREFIX",
    "TRASH_PREFIX",
    "WINDOWS_RESERVED",
    "check_name",
    "session_dir_for",
    "slug_for",
]

SESSIONS_DIR = "sessions"
QUARANTINE_DIR = "quarantine"
LOCK_FILE = "session.lock"
#: The sealed head record: the newest generation written and its digest (see
#: :mod:`ipysession.store.head`). Not named like a generation, so no scan lists it as one.
HEAD_FILE = "head.ipys"
BLOBS_DIR = "blobs"
CHECKPOINTS_DIR = "checkpoints"
GENERATION_SUFFIX = ".ipys"
BLOB_SUFFIX = ".ipyb"
#: A session being deleted is first renamed to ``sessions/.deleting-<slug>-<random>``; a leftover
#: one (the removal was interrupted) is finished by ``ipysession doctor --repair``.
TRASH_PREFIX = ".deleting-"
#: A session being renamed is written to ``sessions/.renaming-<new slug>-<random>`` first and
#: renamed into place whole; a leftover one (the rename was interrupted, the old session is
#: untouched) is removed by ``ipysession doctor --repair``.
RENAMING_PREFIX = ".renaming-"

_UNSAFE_CHARS = re.compile(r"[^A-Za-z0-9._-]+")
_SLUG_READABLE_MAX = 40
_HASH_CHARS = 12
WINDOWS_RESERVED = frozenset(
    {"CON", "PRN", "AUX", "NUL"}
    | {f"COM{i}" for i in range(1, 10)}
    | {f"LPT{i}" for i in range(1, 10)}
)


def slug_for(name: str) -> str:
    """The directory name of a session: a readable, file-system-safe part and a hash of the name.

    The hash makes slugs unique (two names that read the same, or differ only in case, still get
    different directories); the readable part keeps the tail of the name, where a notebook path
    has its file name. ``"/home/ada/proj/analysis.ipynb"`` -> ``"home-ada-proj-analysis.ipynb-…"``.
    """
    check_name(name)
    digest = hashlib.sha256(name.encode("utf-8", "surrogatepass")).hexdigest()[:_HASH_CHARS]
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode("ascii")
    readable = _UNSAFE_CHARS.sub("-", ascii_name)[-_SLUG_READABLE_MAX:].strip("-._")
    if not readable:
        readable = "session"
    elif readable.split(".")[0].upper() in WINDOWS_RESERVED:
        readable = f"s-{readable}"
    return f"{readable}-{digest}"


def session_dir_for(root: Path, name: str) -> Path:
    """The directory of session ``name`` under store root ``root`` (no I/O, no key needed)."""
    return Path(root) / SESSIONS_DIR / slug_for(name)


def check_name(name: object) -> None:
    if not isinstance(name, str) or not name or "\0" in name:
        msg = f"Invalid session name {name!r}"
        raise StoreError(msg, hint="A session name is a non-empty string")
