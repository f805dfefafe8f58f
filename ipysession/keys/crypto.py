"""Sealing and unsealing bytes: AES-256-GCM, key derivation, key and content identifiers.

The only module that imports ``cryptography``. Two kinds of key seal files:

* :class:`MasterKey` — 32 random bytes kept by :mod:`ipysession.keys.resolution` (OS keyring or key
  file). Its salt is empty.
* :class:`PassphraseKey` — a key derived with scrypt from a passphrase and a per-file salt that the
  file header carries. Derived keys are cached per salt, so reading many files written by one
  process costs one derivation.

Both expose the same small protocol, :class:`SealingKey`, used by
:mod:`ipysession.store.fileformat`.
"""

from __future__ import annotations

import hashlib
import hmac
import io
import os
import threading
from collections.abc import Callable
from typing import Protocol, runtime_checkable

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

__all__ = [
    "KEY_ID_SIZE",
    "KEY_SIZE",
    "NONCE_SIZE",
    "SALT_SIZE",
    "STREAM_CHUNK",
    "TAG_SIZE",
    "AuthenticationFailed",
    "ContentHasher",
    "MasterKey",
    "PassphraseKey",
    "SealingKey",
    "new_master_key",
    "new_nonce",
    "seal",
    "seal_to",
    "unseal",
    "unseal_from",
    "unseal_into",
]

KEY_SIZE = 32
NONCE_SIZE = 12
SALT_SIZE = 16
KEY_ID_SIZE = 8
TAG_SIZE = 16
#: How much is encrypted or decrypted at a time by :func:`seal_to` and :func:`unseal_from`.
STREAM_CHUNK = 1 << 20
# ``update_into`` wants room for one block more than it is given, less one byte.
_BLOCK_SLACK = algorithms.AES.block_size // 8 - 1

# scrypt cost: about 50 ms per derivation on a laptop; tuned so that exporting or opening a
# passphrase-sealed session stays interactive while brute force stays expensive.
SCRYPT_N = 2**15
SCRYPT_R = 8
SCRYPT_P = 1

_NO_SALT = bytes(SALT_SIZE)


class AuthenticationFailed(Exception):
    """The ciphertext or its associated data were changed, or the key is wrong.

    Internal: :mod:`ipysession.store.fileformat` turns it into a
    :class:`~ipysession.errors.CorruptFile` or :class:`~ipysession.errors.WrongKey` that names the
    file.
    """


def new_nonce() -> bytes:
    """A fresh random nonce. Every seal must use a new one: GCM breaks if a nonce repeats."""
    return os.urandom(NONCE_SIZE)


def seal(key: bytes, nonce: bytes, plaintext: bytes | bytearray, associated_data: bytes) -> bytes:
    """Encrypt and authenticate ``plaintext``; ``associated_data`` is authenticated, not hidden.

    The nonce is passed in (from :func:`new_nonce`) because callers put it in a header that is
    itself part of the associated data.
    """
    return AESGCM(key).encrypt(nonce, plaintext, associated_data)


def unseal(key: bytes, nonce: bytes, ciphertext: bytes, associated_data: bytes) -> bytes:
    """Authenticate and decrypt, or raise :class:`AuthenticationFailed`."""
    try:
        return AESGCM(key).decrypt(nonce, ciphertext, associated_data)
    except (InvalidTag, ValueError) as exc:
        raise AuthenticationFailed(str(exc) or "authentication failed") from None


def seal_to(
    key: bytes,
    nonce: bytes,
    plaintext: bytes | bytearray | memoryview,
    associated_data: bytes,
    write: Callable[[memoryview], object],
) -> int:
    """:func:`seal`, a chunk at a time: ``write`` receives the ciphertext, then the tag.

    The bytes written are exactly those :func:`seal` returns; only one chunk of ciphertext exists
    at a time. ``write`` must consume each chunk before returning (the buffer is reused). Returns
    how many bytes were written.
    """
    encryptor = Cipher(algorithms.AES(key), modes.GCM(nonce)).encryptor()
    encryptor.authenticate_additional_data(associated_data)
    source = memoryview(plaintext).cast("B")
    out = bytearray(STREAM_CHUNK + _BLOCK_SLACK)
    view = memoryview(out)
    total = 0
    for start in range(0, len(source), STREAM_CHUNK):
        produced = encryptor.update_into(source[start : start + STREAM_CHUNK], out)
        write(view[:produced])
        total += produced
    tail = encryptor.finalize()  # GCM keeps nothing back; a backend that did would return it here
    write(memoryview(tail + encryptor.tag))
    return total + len(tail) + TAG_SIZE


def unseal_from(
    key: bytes,
    nonce: bytes,
    readinto: Callable[[memoryview], int | None],
    length: int,
    associated_data: bytes,
) -> bytes:
    """:func:`unseal`, a chunk at a time: ``readinto`` (a file's) supplies ``length`` ciphertext
    bytes, then the tag.

    The plaintext is decrypted into one preallocated buffer and returned only after the tag
    verified; on a bad tag (or any failure on the way) the buffer is zeroed and dropped before
    :class:`AuthenticationFailed` or the error propagates, so unauthenticated plaintext never
    leaves this function. A short read is a failed authentication.

    The buffer is the ``bytes`` object inside an :class:`io.BytesIO`, written through
    ``getbuffer()``: callers get ``bytes`` (what they hold values as) without a second copy of
    the plaintext. Were CPython ever to copy in ``getvalue()``, only the memory saving would go.
    """
    if length < 0:
        msg = "the ciphertext is shorter than its tag"
        raise AuthenticationFailed(msg)
    decryptor = Cipher(algorithms.AES(key), modes.GCM(nonce)).decryptor()
    decryptor.authenticate_additional_data(associated_data)
    buffer = io.BytesIO()
    buffer.seek(length + _BLOCK_SLACK - 1)
    buffer.write(b"\0")
    out = buffer.getbuffer()
    chunk = bytearray(min(length, STREAM_CHUNK))
    try:
        done = 0
        while done < length:
            wanted = memoryview(chunk)[: min(STREAM_CHUNK, length - done)]
            _read_exactly(readinto, wanted)
            done += decryptor.update_into(wanted, out[done:])
        tag = bytearray(TAG_SIZE)
        _read_exactly(readinto, memoryview(tag))
        try:
            tail = decryptor.finalize_with_tag(bytes(tag))
        except (InvalidTag, ValueError) as exc:
            raise AuthenticationFailed(str(exc) or "authentication failed") from None
        out[done : done + len(tail)] = tail
        done += len(tail)
    except BaseException:
        _wipe(out)
        out.release()
        buffer.close()
        raise
    out.release()
    buffer.truncate(done)
    plaintext = buffer.getvalue()
    buffer.close()
    return plaintext


def unseal_into(
    key: bytes,
    nonce: bytes,
    readinto: Callable[[memoryview], int | None],
    length: int,
    associated_data: bytes,
    *,
    digest: Callable[[memoryview], object] | None = None,
) -> bytearray:
    """:func:`unseal_from` into a ``bytearray`` of exactly ``length`` bytes, handed out only
    after the tag verified: writable memory that a restored array can use as it is.

    ``digest`` (a content hasher's ``update``) is given each chunk of plaintext as soon as it is
    decrypted, while it is still in the cache: a blob's content id costs no second pass over
    the data. Whatever ``digest`` computed means nothing unless this function returns (a bad tag
    raises :class:`AuthenticationFailed` and the buffer is zeroed first).
    """
    if length < 0:
        msg = "the ciphertext is shorter than its tag"
        raise AuthenticationFailed(msg)
    decryptor = Cipher(algorithms.AES(key), modes.GCM(nonce)).decryptor()
    decryptor.authenticate_additional_data(associated_data)
    # update_into wants room for a block more than it is given; the slack is cut off at the end
    # (shrinking a bytearray by a few bytes never moves it).
    buffer = bytearray(length + _BLOCK_SLACK)
    out = memoryview(buffer)
    chunk = bytearray(min(length, STREAM_CHUNK))
    try:
        done = 0
        while done < length:
            wanted = memoryview(chunk)[: min(STREAM_CHUNK, length - done)]
            _read_exactly(readinto, wanted)
            produced = decryptor.update_into(wanted, out[done:])
            if digest is not None and produced:
                digest(out[done : done + produced])
            done += produced
        tag = bytearray(TAG_SIZE)
        _read_exactly(readinto, memoryview(tag))
        try:
            tail = decryptor.finalize_with_tag(bytes(tag))
        except (InvalidTag, ValueError) as exc:
            raise AuthenticationFailed(str(exc) or "authentication failed") from None
        if tail:  # GCM keeps nothing back; a backend that did would return it here
            out[done : done + len(tail)] = tail
            if digest is not None:
                digest(memoryview(tail))
            done += len(tail)
    except BaseException:
        _wipe(out)
        out.release()
        raise
    out.release()
    del buffer[done:]
    return buffer


def _read_exactly(readinto: Callable[[memoryview], int | None], buffer: memoryview) -> None:
    filled = 0
    while filled < len(buffer):
        got = readinto(buffer[filled:])
        if not got:
            msg = "the ciphertext ends early"
            raise AuthenticationFailed(msg)
        filled += got


def _wipe(buffer: memoryview) -> None:
    zeros = bytes(min(len(buffer), STREAM_CHUNK))
    for start in range(0, len(buffer), STREAM_CHUNK):
        end = min(start + STREAM_CHUNK, len(buffer))
        buffer[start:end] = zeros[: end - start]


def new_master_key() -> bytes:
    return os.urandom(KEY_SIZE)


def _key_id(key: bytes) -> bytes:
    return hmac.new(key, b"ipysession key id v1", hashlib.sha256).digest()[:KEY_ID_SIZE]


def _subkey(key: bytes, label: bytes) -> bytes:
    return hmac.new(key, b"ipysession " + label, hashlib.sha256).digest()


class ContentHasher(Protocol):
    """An incremental keyed hash (an ``hmac.HMAC``)."""

    def update(self, data: bytes | memoryview, /) -> None: ...

    def hexdigest(self) -> str: ...


@runtime_checkable
class SealingKey(Protocol):
    """What :mod:`ipysession.store.fileformat` needs from a key."""

    @property
    def description(self) -> str:
        """Where the key comes from, for messages (never the key itself)."""

    def for_writing(self) -> tuple[bytes, bytes, bytes]:
        """``(key, salt, key_id)`` to seal a new file with; salt is all zeros for a master key."""

    def for_reading(self, salt: bytes, key_id: bytes) -> bytes | None:
        """The key for a file whose header carries ``salt`` and ``key_id``; ``None`` if this key
        (or a previous key it still knows) did not seal it."""

    def content_id(self, data: bytes | bytearray) -> str:
        """A keyed hash of ``data``: equal values share an id without revealing their content."""

    def content_hasher(self) -> ContentHasher:
        """The same keyed hash, fed piece by piece: ``content_id(a + b)`` is the hex digest of a
        hasher given ``a`` then ``b``. It lets a value be checked against its id as it is
        serialized, without holding its bytes."""


class MasterKey:
    """A 32-byte random master key."""

    def __init__(
        self,
        key: bytes,
        *,
        description: str = "master key",
        previous: tuple[bytes, ...] = (),
    ) -> None:
        for candidate in (key, *previous):
            if len(candidate) != KEY_SIZE:
                msg = f"a master key is {KEY_SIZE} bytes, not {len(candidate)}"
                raise ValueError(msg)
        self._key = key
        self._key_id = _key_id(key)
        # Keys replaced by a rekey that has not finished yet: still readable, never used to write.
        self._readable = {self._key_id: key, **{_key_id(k): k for k in previous}}
        self._content_key = _subkey(key, b"content id")
        self._description = description

    def __repr__(self) -> str:
        return f"MasterKey(id={self.key_id_hex}, {self._description})"

    @property
    def description(self) -> str:
        return self._description

    @property
    def key_id_hex(self) -> str:
        return self._key_id.hex()

    @property
    def raw(self) -> bytes:
        """The key bytes, for the key store to persist. Never log or show this."""
        return self._key

    def for_writing(self) -> tuple[bytes, bytes, bytes]:
        return self._key, _NO_SALT, self._key_id

    def for_reading(self, salt: bytes, key_id: bytes) -> bytes | None:
        return self._readable.get(key_id)

    def content_id(self, data: bytes | bytearray) -> str:
        return hmac.new(self._content_key, data, hashlib.sha256).hexdigest()

    def content_hasher(self) -> ContentHasher:
        return hmac.new(self._content_key, digestmod=hashlib.sha256)


class PassphraseKey:
    """Keys derived from a passphrase with scrypt; one salt per instance for writing."""

    def __init__(self, passphrase: str, *, description: str = "passphrase") -> None:
        if not passphrase:
            msg = "the passphrase is empty"
            raise ValueError(msg)
        self._passphrase = passphrase.encode("utf-8")
        self._write_salt = os.urandom(SALT_SIZE)
        self._derived: dict[bytes, tuple[bytes, bytes]] = {}
        self._lock = threading.Lock()
        self._description = description
        # Content ids must be stable across salts so equal values dedupe across processes.
        self._content_key = self._derive(b"ipysession content id salt")[0]

    def __repr__(self) -> str:
        return f"PassphraseKey({self._description})"

    @property
    def description(self) -> str:
        return self._description

    def _derive(self, salt: bytes) -> tuple[bytes, bytes]:
        with self._lock:
            cached = self._derived.get(salt)
            if cached is None:
                kdf = Scrypt(salt=salt, length=KEY_SIZE, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P)
                key = kdf.derive(self._passphrase)
                cached = (key, _key_id(key))
                self._derived[salt] = cached
            return cached

    def for_writing(self) -> tuple[bytes, bytes, bytes]:
        key, key_id = self._derive(self._write_salt)
        return key, self._write_salt, key_id

    def for_reading(self, salt: bytes, key_id: bytes) -> bytes | None:
        key, derived_id = self._derive(salt)
        return key if hmac.compare_digest(derived_id, key_id) else None

    def content_id(self, data: bytes | bytearray) -> str:
        return hmac.new(self._content_key, data, hashlib.sha256).hexdigest()

    def content_hasher(self) -> ContentHasher:
        return hmac.new(self._content_key, digestmod=hashlib.sha256)
