"""A key that writes with the newest master key and reads with it or an older one:
:class:`EitherKey`, used while ``ipysession rekey`` re-encrypts (and by a running kernel that
follows a rekey), so a file sealed before or after the switch stays readable."""

from __future__ import annotations

from ipysession.keys.crypto import ContentHasher, SealingKey

__all__ = ["EitherKey"]


class EitherKey:
    """Reads with ``new`` or any of ``old`` (tried first: they sealed most files), writes and
    hashes with ``new`` only."""

    def __init__(self, new: SealingKey, *old: SealingKey) -> None:
        self._new = new
        self._old = tuple(key for key in old if key is not new)

    @property
    def description(self) -> str:
        if not self._old:
            return self._new.description
        olds = ", ".join(key.description for key in self._old)
        return f"{self._new.description} (re-encrypting from the {olds})"

    def for_writing(self) -> tuple[bytes, bytes, bytes]:
        return self._new.for_writing()

    def for_reading(self, salt: bytes, key_id: bytes) -> bytes | None:
        for key in (*self._old, self._new):
            found = key.for_reading(salt, key_id)
            if found is not None:
                return found
        return None

    def content_id(self, data: bytes | bytearray | memoryview) -> str:
        return self._new.content_id(data)

    def content_hasher(self) -> ContentHasher:
        return self._new.content_hasher()
