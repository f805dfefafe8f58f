"""What this process has read or derived already: keyring keys per config dir, passphrase keys.

The keyring item is read once per process (docs/security.md): a read may prompt on macOS, and a
locked or slow keyring costs its whole timeout each time. A remembered read stays valid only while
the marker names the same key ids; when another process rotates the key, the ids change and the
next resolve reads the keyring again. A passphrase key costs an scrypt run to derive, so it is
derived once per passphrase, looked up by the passphrase's digest (the passphrase itself is never
kept as a dictionary key).

The cache is generic in what it remembers so that it sits below :mod:`.location`, which defines
the resolution it stores.
"""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass
from typing import Generic, TypeVar

from ipysession.keys.crypto import PassphraseKey
from ipysession.keys.files import Marker

__all__ = ["ProcessCache"]

_Remembered = TypeVar("_Remembered")

# Where a keyring read came from: the keyring service and the absolute config dir.
CacheKey = tuple[str, str]


@dataclass(frozen=True)
class _KeyringRead(Generic[_Remembered]):
    key_id: str
    pending_key_id: str | None
    value: _Remembered


class ProcessCache(Generic[_Remembered]):
    """Keyring reads per service and config dir, and passphrase keys per passphrase. Thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._keyring_reads: dict[CacheKey, _KeyringRead[_Remembered]] = {}
        self._passphrase_keys: dict[str, PassphraseKey] = {}

    def keyring_read(self, where: CacheKey, marker: Marker) -> _Remembered | None:
        """What was read for ``where``, if the marker still names the same keys."""
        with self._lock:
            read = self._keyring_reads.get(where)
        if read is None:
            return None
        if (read.key_id, read.pending_key_id) != (marker.key_id, marker.pending_key_id):
            return None  # another process rotated the key since we read it
        return read.value

    def remember_keyring_read(self, where: CacheKey, marker: Marker, value: _Remembered) -> None:
        read = _KeyringRead(marker.key_id, marker.pending_key_id, value)
        with self._lock:
            self._keyring_reads[where] = read

    def forget_keyring_read(self, where: CacheKey) -> None:
        with self._lock:
            self._keyring_reads.pop(where, None)

    def clear(self) -> None:
        with self._lock:
            self._keyring_reads.clear()
            self._passphrase_keys.clear()

    def passphrase_key(self, passphrase: str, *, description: str) -> PassphraseKey:
        digest = hashlib.sha256(passphrase.encode("utf-8")).hexdigest()
        with self._lock:
            key = self._passphrase_keys.get(digest)
        if key is None:
            # Derived outside the lock: two threads may both derive it, and the first one kept wins.
            key = PassphraseKey(passphrase, description=description)
            with self._lock:
                key = self._passphrase_keys.setdefault(digest, key)
        return key
