"""Open file objects: saved as where they were, reopened there on restore.

Open files on a real path (``io.TextIOWrapper``, ``BufferedReader``/``Writer``/``Random``,
``FileIO``: :data:`FILE_TYPES`) are saved as encoding ``"file"``: a JSON document with the absolute
path, the mode, the position (after a flush of what was written), text encoding and errors. On
restore the file is reopened at the same position, never truncated: ``"w"``, ``"w+"`` and ``"x"``
reopen as ``"r+"``, ``"a"`` stays ``"a"``. A file that is gone, replaced or now shorter than the
saved position is a failure with its reason, not a silently different handle.

:func:`capture_file` raises :class:`~ipysession.capture.describe.Unsaveable` with the reason a file
cannot be saved (closed, not on disk, opened from a descriptor, not seekable, deleted or replaced);
:func:`restore_file` raises :class:`~ipysession.errors.CaptureError`.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
from pathlib import Path
from typing import IO, Any

from ipysession.capture.describe import Unsaveable, error_text, type_label, type_name
from ipysession.errors import CaptureError
from ipysession.model import VariableRecord

__all__ = ["FILE_TYPES", "capture_file", "restore_file"]

FILE_TYPES = (io.TextIOWrapper, io.BufferedReader, io.BufferedWriter, io.BufferedRandom, io.FileIO)


def capture_file(name: str, handle: io.IOBase) -> VariableRecord:
    """The ``"file"`` record of an open file; raises :class:`Unsaveable` saying why not."""
    if handle.closed:
        msg = "closed file objects are not saved"
        raise Unsaveable(msg)
    text = isinstance(handle, io.TextIOWrapper)
    buffered = getattr(handle, "buffer", handle) if text else handle
    raw = getattr(buffered, "raw", buffered)
    if not isinstance(raw, io.FileIO):
        msg = f"{type_label(type(handle))} objects not backed by a file on disk cannot be saved"
        raise Unsaveable(msg)
    if isinstance(raw.name, int):
        msg = "a file opened from a file descriptor (not a path) cannot be reopened"
        raise Unsaveable(msg)
    if not handle.seekable():
        msg = "a file that is not seekable (a pipe, socket or terminal) cannot be reopened"
        raise Unsaveable(msg)
    if handle.writable():
        # What the user wrote must be on disk before the position that follows it is saved.
        handle.flush()
    try:
        position = handle.tell()
    except OSError as exc:
        msg = f"the position of this file cannot be saved ({error_text(exc)})"
        raise Unsaveable(msg) from exc
    path = _file_path(raw)
    doc: dict[str, Any] = {
        "path": str(path),
        "mode": getattr(handle, "mode", raw.mode),
        "position": position,
        "binary": not text,
        "buffered": raw is not handle,
        "encoding": getattr(handle, "encoding", None) if text else None,
        "errors": getattr(handle, "errors", None) if text else None,
    }
    data = json.dumps(doc).encode("utf-8")
    return VariableRecord(
        name=name,
        type_name=type_name(type(handle)),
        size=len(data),
        encoding="file",
        data=data,
        fingerprint=hashlib.blake2b(data, digest_size=16).hexdigest(),
    )


def _file_path(raw: io.FileIO) -> Path:
    """The absolute path of an open file, checked to still be the file the handle has open."""
    fd = raw.fileno()
    proc = Path(f"/proc/self/fd/{fd}")
    path: Path | None = None
    # The name given to open() was relative to the cwd of that moment; Linux knows the real path.
    with contextlib.suppress(OSError):
        link = proc.readlink()
        if link.is_absolute() and not str(link).endswith(" (deleted)"):
            path = link
    if path is None:
        path = Path(os.fsdecode(raw.name)).absolute()
    opened = os.fstat(fd)
    try:
        current = path.stat()
    except OSError as exc:
        msg = f"the file {path} was deleted or moved since it was opened"
        raise Unsaveable(msg) from exc
    if (current.st_dev, current.st_ino) != (opened.st_dev, opened.st_ino):
        msg = f"the file {path} was replaced by another file since it was opened"
        raise Unsaveable(msg)
    return path


def _reopen_mode(mode: str) -> str:
    """The mode that reopens a file without ever truncating or refusing an existing file."""
    plus = "+" in mode
    if "a" in mode:
        return "a+" if plus else "a"
    if "w" in mode or "x" in mode:
        return "r+"
    return "r+" if plus else "r"


def restore_file(record: VariableRecord, data: bytes) -> IO[Any]:
    """Reopen a saved file at its position; raises :class:`CaptureError` saying why not."""
    try:
        doc = json.loads(data)
        path = Path(doc["path"])
        mode = str(doc["mode"])
        position = int(doc["position"])
        binary = bool(doc["binary"])
    except (ValueError, KeyError, TypeError) as exc:
        what = f"Variable '{record.name}' holds a damaged file description ({error_text(exc)})"
        raise CaptureError(what) from exc
    if not path.exists():
        what = f"Variable '{record.name}' was an open file, and the file no longer exists"
        raise CaptureError(what, path=path, hint="Open it again if it was moved")
    reopen = _reopen_mode(mode)
    try:
        if binary:
            buffering = -1 if doc.get("buffered", True) else 0
            handle: IO[Any] = open(path, reopen + "b", buffering=buffering)  # noqa: SIM115
        else:
            handle = open(  # noqa: SIM115 - the open file is the restored value
                path, reopen, encoding=doc.get("encoding"), errors=doc.get("errors")
            )
    except OSError as exc:
        what = f"Variable '{record.name}': the file could not be reopened ({error_text(exc)})"
        raise CaptureError(what, path=path) from exc
    try:
        _seek_saved(handle, path, position, binary=binary, append_only=reopen == "a")
    except BaseException:
        handle.close()
        raise
    return handle


def _seek_saved(
    handle: IO[Any], path: Path, position: int, *, binary: bool, append_only: bool
) -> None:
    # A text position is an opaque cookie; in CPython its low 64 bits are a byte offset at or
    # before the real one, which is all the length check needs.
    byte_position = position if binary else position & ((1 << 64) - 1)
    size = path.stat().st_size
    if byte_position > size:
        what = (
            f"The file is now {size} bytes, shorter than the saved position {byte_position}: it "
            "was truncated or replaced"
        )
        raise CaptureError(what, path=path, hint="Open it again to continue with the new content")
    if append_only:
        return  # every write goes to the end; the position of an "a" handle means nothing
    try:
        handle.seek(position)
    except (OSError, ValueError) as exc:
        what = f"The file could not be positioned where it was ({error_text(exc)})"
        raise CaptureError(what, path=path) from exc
