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
import queue
import threading
from collections.abc import Callable
from typing import Protocol, runtime_checkable

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from ipysession import memory

__all__ = [
    "KEY_ID_SIZE",
    "KEY_SIZE",
    "NONCE_SIZE",
    "SALT_SIZE",
    "STREAM_CHUNK",
    "TAG_SIZE",
    "THREADED_DIGEST_MIN",
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
#: From this size up, the content digest of :func:`seal_to` and :func:`unseal_into` runs on a
#: helper thread (starting one costs more than hashing a small value inline).
THREADED_DIGEST_MIN = 4 * STREAM_CHUNK
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


def seal(
    key: bytes, nonce: bytes, plaintext: bytes | bytearray | memoryview, associated_data: bytes
) -> bytes:
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
    *,
    digest: Callable[[memoryview], object] | None = None,
    final: Callable[[], bytes] | None = None,
) -> int:
    """:func:`seal`, a chunk at a time: ``write`` receives the ciphertext, then the tag.

    The bytes written are exactly those :func:`seal` returns; only one chunk of ciphertext exists
    at a time. ``write`` must consume each chunk before returning (the buffer is reused). Returns
    how many bytes were written.

    ``digest`` (a content hasher's ``update``) is given the plaintext too, in the same pass: for
    a large value on a helper thread, beside the cipher and the writes, so a blob's content id
    costs no pass of its own. ``plaintext`` must not change until this returns.

    ``final`` gives the last piece of plaintext, sealed after ``plaintext`` under the same tag;
    it is asked for once ``digest`` has seen every piece (a blob's id trailer is the digest), so
    a few bytes are appended without copying the value.
    """
    encryptor = Cipher(algorithms.AES(key), modes.GCM(nonce)).encryptor()
    encryptor.authenticate_additional_data(associated_data)
    source = memoryview(plaintext).cast("B")
    out = bytearray(STREAM_CHUNK + _BLOCK_SLACK)
    view = memoryview(out)
    total = 0
    hashing = _Digest(digest, len(source))
    try:
        for start in range(0, len(source), STREAM_CHUNK):
            piece = source[start : start + STREAM_CHUNK]
            hashing.feed(piece)  # first, so that it is hashed while it is encrypted and written
            produced = encryptor.update_into(piece, out)
            write(view[:produced])
            total += produced
        hashing.finish()
    except BaseException:
        hashing.finish(abandon=True)
        raise
    if final is not None:
        ending = encryptor.update(final())
        write(memoryview(ending))
        total += len(ending)
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
    _check_length(length)
    buffer = io.BytesIO()
    if length:
        buffer.seek(length - 1)
        buffer.write(b"\0")
    try:
        with buffer.getbuffer() as out:
            _unseal_to(out, key, nonce, readinto, length, associated_data, digest=None)
    except BaseException:
        buffer.close()
        raise
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
) -> memoryview:
    """:func:`unseal_from` into fresh writable memory of exactly ``length`` bytes
    (:func:`ipysession.memory.empty`: never zero-filled first), handed out only after the tag
    verified: memory that a restored array can use as it is.

    ``digest`` (a content hasher's ``update``) is given the plaintext as it is decrypted: a
    blob's content id costs no second pass over the data. For a large value it runs on a helper
    thread, beside the cipher (hashing releases the GIL). Whatever ``digest`` computed means
    nothing unless this function returns (a bad tag raises :class:`AuthenticationFailed` and the
    buffer is zeroed first).
    """
    _check_length(length)
    out = memory.empty(length)
    _unseal_to(out, key, nonce, readinto, length, associated_data, digest=digest)
    return out


def _check_length(length: int) -> None:
    if length < 0:
        msg = "the ciphertext is shorter than its tag"
        raise AuthenticationFailed(msg)


def _unseal_to(
    out: memoryview,
    key: bytes,
    nonce: bytes,
    readinto: Callable[[memoryview], int | None],
    length: int,
    associated_data: bytes,
    *,
    digest: Callable[[memoryview], object] | None,
) -> int:
    """The one decryption loop: ``length`` ciphertext bytes and the tag from ``readinto``,
    decrypted into ``out`` (at least ``length`` bytes). Returns ``length``; on any failure
    ``out`` is zeroed before the error propagates."""
    decryptor = Cipher(algorithms.AES(key), modes.GCM(nonce)).decryptor()
    decryptor.authenticate_additional_data(associated_data)
    chunk = bytearray(min(length, STREAM_CHUNK))
    hashing = _Digest(digest, length)
    try:
        done = 0
        while done < length:
            wanted = memoryview(chunk)[: min(STREAM_CHUNK, length - done)]
            _read_exactly(readinto, wanted)
            if len(out) - done >= len(wanted) + _BLOCK_SLACK:
                produced = decryptor.update_into(wanted, out[done:])
            else:  # the last chunk: update_into wants slack that an exact-size buffer lacks
                scratch = bytearray(len(wanted) + _BLOCK_SLACK)
                produced = decryptor.update_into(wanted, scratch)
                out[done : done + produced] = memoryview(scratch)[:produced]
            hashing.feed(out[done : done + produced])
            done += produced
        tag = bytearray(TAG_SIZE)
        _read_exactly(readinto, memoryview(tag))
        try:
            # GCM is a stream mode: it keeps nothing back, so finalizing produces no plaintext.
            decryptor.finalize_with_tag(bytes(tag))
        except (InvalidTag, ValueError) as exc:
            raise AuthenticationFailed(str(exc) or "authentication failed") from None
        hashing.finish()
    except BaseException:
        hashing.finish(abandon=True)  # the helper no longer reads what is wiped next
        _wipe(out)
        raise
    return done


class _Digest:
    """Pieces of plaintext fed to ``update`` (a hasher's): inline for a small value; for a large
    one on a helper thread, which overlaps the cipher and the file I/O (``hashlib`` and ``hmac``
    release the GIL while they hash a large piece). The pieces are views, never copies: the
    caller leaves them unchanged until :meth:`finish` returns."""

    def __init__(self, update: Callable[[memoryview], object] | None, size: int) -> None:
        self._update = update
        self._error: BaseException | None = None
        self._abandoned = False
        self._pending: queue.SimpleQueue[memoryview | None] | None = None
        self._thread: threading.Thread | None = None
        if update is not None and size >= THREADED_DIGEST_MIN:
            self._pending = queue.SimpleQueue()
            self._thread = threading.Thread(
                target=self._run,
                args=(self._pending, update),
                name="ipysession-digest",
                daemon=True,
            )
            self._thread.start()

    def feed(self, piece: memoryview) -> None:
        if not piece:
            return
        if self._pending is not None:
            self._pending.put(piece)
        elif self._update is not None:
            self._update(piece)

    def _run(
        self,
        pending: queue.SimpleQueue[memoryview | None],
        update: Callable[[memoryview], object],
    ) -> None:
        # Every piece is taken off the queue, even after a failure, so finish() never waits on
        # a full one; a failure is kept for finish() to raise (a digest that missed a piece
        # must never pass for the content id).
        while (piece := pending.get()) is not None:
            if self._error is None and not self._abandoned:
                try:
                    update(piece)
                except BaseException as exc:  # noqa: BLE001 - raised again by finish()
                    self._error = exc
            del piece  # a view: the caller may still be using (and will release) the memory

    def finish(self, *, abandon: bool = False) -> None:
        """Wait until every piece is hashed (or, ``abandon``, until the helper lets go of them
        all: the caller is about to wipe them). Raises what the hasher raised."""
        if self._thread is None or self._pending is None:
            return
        self._abandoned = abandon
        self._pending.put(None)
        self._thread.join()
        self._thread = None
        if self._error is not None and not abandon:
            raise self._error


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

    def content_id(self, data: bytes | bytearray | memoryview) -> str:
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

    def content_id(self, data: bytes | bytearray | memoryview) -> str:
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

    def content_id(self, data: bytes | bytearray | memoryview) -> str:
        return hmac.new(self._content_key, data, hashlib.sha256).hexdigest()

    def content_hasher(self) -> ContentHasher:
        return hmac.new(self._content_key, digestmod=hashlib.sha256)
