"""The key file and the key location marker on disk, and the lock that serializes first use.

Both live in the config dir (:func:`ipysession.paths.config_dir`) and are written atomically
(temp file, fsync, ``os.replace``) as ``0600`` files in a ``0700`` directory:

* ``master.key`` (:class:`KeyFile`): ``{"format": "ipysession-master-key", "version": 1,
  "key": <base64>, "key_id": <16 hex>}``, plus ``"pending"`` and ``"pending_key_id"`` while a
  rotation is pending. A key file others can read is made private again, with a log message.
* ``key-location.json`` (:class:`Marker`), not secret: where the key was created and its id::

    {"version": 1, "backend": "keyring" | "file", "key_id": "<16 hex>",
     "pending_key_id": null | "<16 hex>", "created": "<UTC time>", "reason": "<why there>"}

* ``key.lock``: a cross-process lock (:func:`creation_lock`) so that two kernels starting
  together create one key, not two.

Both are read only if they are regular files of a few kilobytes, never through a symbolic link
(:mod:`ipysession.safe_open`): a FIFO planted as either would block every kernel's start, and a
linked key file would be followed silently. What the marker means, and the rules that follow from
it, are in :mod:`ipysession.keys.resolution`.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final, Literal

from ipysession import paths, safe_open
from ipysession.atomic import fsync_dir, write_atomically
from ipysession.errors import KeyStoreError, UnsafeFile
from ipysession.keys.crypto import KEY_SIZE, MasterKey

__all__ = [
    "KEY_FILE_NAME",
    "LOCK_FILE_NAME",
    "MARKER_FILE_NAME",
    "KeyFile",
    "Marker",
    "Stored",
    "creation_lock",
    "decode_key",
    "encode_key",
    "key_id",
    "now",
    "read_key_file",
    "read_marker",
    "write_key_file",
    "write_marker",
]

log = logging.getLogger("ipysession")

KEY_FILE_NAME: Final = "master.key"
MARKER_FILE_NAME: Final = "key-location.json"
LOCK_FILE_NAME: Final = "key.lock"

_KEY_FILE_FORMAT: Final = "ipysession-master-key"
_FORMAT_VERSION: Final = 1
#: Both files are a few hundred bytes; anything much larger is not one of them.
_MAX_FILE_BYTES: Final = 64 * 1024

Stored = Literal["keyring", "file"]


@dataclass(frozen=True)
class Marker:
    backend: Stored
    key_id: str
    pending_key_id: str | None
    created: str
    reason: str

    def to_json(self) -> bytes:
        document = {
            "version": _FORMAT_VERSION,
            "backend": self.backend,
            "key_id": self.key_id,
            "pending_key_id": self.pending_key_id,
            "created": self.created,
            "reason": self.reason,
        }
        return (json.dumps(document, indent=2) + "\n").encode("utf-8")


@dataclass(frozen=True)
class KeyFile:
    key: bytes = field(repr=False)
    pending: bytes | None = field(repr=False, default=None)

    def keys(self) -> dict[str, bytes]:
        found = {key_id(self.key): self.key}
        if self.pending is not None:
            found[key_id(self.pending)] = self.pending
        return found

    def to_json(self) -> bytes:
        document: dict[str, object] = {
            "format": _KEY_FILE_FORMAT,
            "version": _FORMAT_VERSION,
            "key": encode_key(self.key),
            "key_id": key_id(self.key),
        }
        if self.pending is not None:
            document["pending"] = encode_key(self.pending)
            document["pending_key_id"] = key_id(self.pending)
        return (json.dumps(document, indent=2) + "\n").encode("utf-8")


def key_id(key: bytes) -> str:
    return MasterKey(key).key_id_hex


def encode_key(key: bytes) -> str:
    return base64.b64encode(key).decode("ascii")


def decode_key(text: object) -> bytes | None:
    if not isinstance(text, str):
        return None
    try:
        key = base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError):
        return None
    return key if len(key) == KEY_SIZE else None


def _parse_key_file(text: str) -> tuple[KeyFile | None, str]:
    """The key file's content, or ``None`` and what is wrong with it."""
    try:
        document = json.loads(text)
    except ValueError:
        return None, "not JSON"
    if not isinstance(document, dict) or document.get("format") != _KEY_FILE_FORMAT:
        return None, "not an ipysession key file"
    key = decode_key(document.get("key"))
    if key is None:
        return None, f"no valid {KEY_SIZE}-byte key"
    pending_text = document.get("pending")
    pending = None if pending_text is None else decode_key(pending_text)
    if pending_text is not None and pending is None:
        return None, f"the pending key is not a valid {KEY_SIZE}-byte key"
    if document.get("key_id") != key_id(key):
        return None, "the key does not match its recorded key id"
    return KeyFile(key, pending), ""


def now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def _write_private(path: Path, data: bytes) -> None:
    """Write ``data`` atomically (temp file, fsync, ``os.replace``) as a 0600 file in a 0700 dir."""
    try:
        directory = paths.ensure_private_dir(path.parent)
        write_atomically(path, data)
        fsync_dir(directory)
    except OSError as exc:
        what = f"Cannot write {path.name}: {exc.strerror or exc}"
        raise KeyStoreError(
            what, path=path, hint=f"Check the permissions and free space of {path.parent}"
        ) from exc


def _read_text(path: Path) -> str | None:
    """The text of ``path``, opened as :mod:`ipysession.safe_open` opens files: a FIFO, a device
    or a symbolic link planted as the key file is refused (never followed, never waited on)."""
    try:
        return safe_open.read_regular(path, limit=_MAX_FILE_BYTES).decode("utf-8")
    except FileNotFoundError:
        return None
    except UnsafeFile as exc:
        raise KeyStoreError(exc.what, path=path, hint=exc.hint) from None
    except (OSError, UnicodeDecodeError) as exc:
        what = f"Cannot read {path.name}: {getattr(exc, 'strerror', None) or exc}"
        raise KeyStoreError(what, path=path, hint="Check the file's permissions") from exc


def _tighten(path: Path) -> None:
    """A key file others can read is made private again, and the user is told in the log."""
    if paths.is_private(path):
        return
    log.warning("The key file %s was readable by others; making it private (0600)", path)
    with contextlib.suppress(OSError):
        path.chmod(paths.PRIVATE_FILE_MODE)


def read_marker(path: Path) -> Marker | None:
    """The marker at ``path``, ``None`` if there is none; a damaged one is a KeyStoreError."""
    text = _read_text(path)
    if text is None:
        return None
    try:
        document = json.loads(text)
        backend = document["backend"]
        recorded_id = document["key_id"]
        pending = document.get("pending_key_id")
        if backend not in ("keyring", "file") or not isinstance(recorded_id, str):
            raise TypeError(backend)
        if pending is not None and not isinstance(pending, str):
            raise TypeError(pending)
        return Marker(
            backend=backend,
            key_id=recorded_id,
            pending_key_id=pending,
            created=str(document.get("created", "")),
            reason=str(document.get("reason", "")),
        )
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        msg = f"The key location marker is damaged ({type(exc).__name__})"
        raise KeyStoreError(
            msg,
            path=path,
            hint="Restore it from a backup. If you delete it, ipysession adopts the key it "
            "finds in the key file or the OS keyring, and creates a new key only if there "
            "is none (sessions sealed with a lost key cannot be read)",
        ) from None


def read_key_file(path: Path) -> KeyFile | None:
    """The key file at ``path`` (made private if it was not), ``None`` if there is none."""
    text = _read_text(path)
    if text is None:
        return None
    _tighten(path)
    content, problem = _parse_key_file(text)
    if content is None:
        msg = f"The key file is damaged ({problem})"
        raise KeyStoreError(
            msg,
            path=path,
            hint="Restore it from a backup: sessions cannot be read without it",
        )
    return content


def write_marker(path: Path, marker: Marker) -> None:
    """Write ``marker`` to ``path`` atomically, private."""
    _write_private(path, marker.to_json())


def write_key_file(path: Path, content: KeyFile) -> None:
    """Write ``content`` to the key file ``path`` atomically, private."""
    _write_private(path, content.to_json())


@contextlib.contextmanager
def creation_lock(lock_path: Path, *, timeout: float) -> Iterator[None]:
    """Serialize key creation and rotation between processes; wait at most ``timeout`` s."""
    import filelock

    directory = lock_path.parent
    lock = filelock.FileLock(lock_path, timeout=timeout, mode=paths.PRIVATE_FILE_MODE)
    try:
        paths.ensure_private_dir(directory)
        safe_open.refuse_special(lock_path)  # filelock would truncate a link's target
        lock.acquire()
    except UnsafeFile as exc:
        raise KeyStoreError(exc.what, path=lock_path, hint=exc.hint) from None
    except filelock.Timeout:
        msg = "Another ipysession process has been creating or rotating the master key for too long"
        raise KeyStoreError(
            msg,
            path=lock_path,
            hint="Wait for it to finish and try again",
        ) from None
    except OSError as exc:
        msg = f"Cannot create the key lock file: {exc.strerror or exc}"
        raise KeyStoreError(
            msg,
            path=lock_path,
            hint=f"Check the permissions of {directory}",
        ) from exc
    try:
        yield
    finally:
        lock.release()
