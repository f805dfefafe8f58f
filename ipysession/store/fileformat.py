"""The on-disk envelope of session files (``.ipys``) and value blobs (``.ipyb``), format version 1.

Layout (big-endian)::

    offset  size  field
    0       8     magic  b"IPYSESS\\0"
    8       2     format version (u16)
    10      2     flags (u16): 1 = payload compressed (zlib), 2 = key derived from a passphrase,
                  4 = blob (raw value bytes, not a session document)
    12      8     key id: HMAC-SHA256(key, "ipysession key id v1")[:8]
    20      16    KDF salt (all zero unless flag 2)
    36      12    nonce, fresh and random for every write
    48      ...   AES-256-GCM ciphertext of the payload, with its 16-byte tag

The whole 48-byte header is the AEAD's associated data: changing the version, the flags, the key
id, the salt or the nonce fails authentication. The payload of a session file is a JSON document
(:meth:`ipysession.model.Session.to_dict`, binary values base64) carrying its own ``"format"``;
the payload of a blob is the value's serialized bytes.

Blobs can also be written to and read from an open file a chunk at a time
(:func:`write_blob`, :func:`read_blob`), so that a large value never sits in memory next to its
ciphertext; the bytes on disk are the same as :func:`encode_blob`'s.

Reading checks, in order: size, magic, version (newer -> :class:`NewerFormat` naming both
versions), kind, key id (unknown -> :class:`WrongKey`), authentication (-> :class:`CorruptFile`),
and only then decompresses and parses. Nothing is unpickled here at all; callers unpickle values
only from documents this module has authenticated.
"""

from __future__ import annotations

import io
import json
import os
import struct
import zlib
from dataclasses import dataclass
from typing import IO, Any

from ipysession.errors import CorruptFile, NewerFormat, WrongKey
from ipysession.keys.crypto import (
    KEY_ID_SIZE,
    NONCE_SIZE,
    SALT_SIZE,
    TAG_SIZE,
    AuthenticationFailed,
    SealingKey,
    new_nonce,
    seal,
    seal_to,
    unseal,
    unseal_from,
)
from ipysession.store import migrations

__all__ = [
    "FORMAT_VERSION",
    "HEADER_SIZE",
    "MAGIC",
    "Header",
    "decode_blob",
    "decode_session",
    "encode_blob",
    "encode_session",
    "read_blob",
    "read_header",
    "write_blob",
]

MAGIC = b"IPYSESS\0"
FORMAT_VERSION = migrations.CURRENT_VERSION

FLAG_COMPRESSED = 0x1
FLAG_PASSPHRASE = 0x2
FLAG_BLOB = 0x4
KNOWN_FLAGS = FLAG_COMPRESSED | FLAG_PASSPHRASE | FLAG_BLOB

_HEADER = struct.Struct(f">8sHH{KEY_ID_SIZE}s{SALT_SIZE}s{NONCE_SIZE}s")
HEADER_SIZE = _HEADER.size
_TAG_SIZE = TAG_SIZE

# Payloads whose sample does not shrink below this ratio are stored uncompressed.
_SAMPLE_SIZE = 48 * 1024
_WORTH_COMPRESSING = 0.7

PathLike = str | os.PathLike[str] | None


@dataclass(frozen=True)
class Header:
    version: int
    flags: int
    key_id: bytes
    salt: bytes
    nonce: bytes

    @property
    def is_blob(self) -> bool:
        return bool(self.flags & FLAG_BLOB)

    @property
    def uses_passphrase(self) -> bool:
        return bool(self.flags & FLAG_PASSPHRASE)

    def pack(self) -> bytes:
        return _HEADER.pack(MAGIC, self.version, self.flags, self.key_id, self.salt, self.nonce)


def read_header(data: bytes, *, path: PathLike = None) -> Header:
    """Parse and sanity-check the clear header; nothing in it is trusted before authentication."""
    return _parse_header(data, len(data), path=path)


def _parse_header(data: bytes, size: int, *, path: PathLike) -> Header:
    """:func:`read_header` of a file of ``size`` bytes that starts with ``data``."""
    if size < HEADER_SIZE + _TAG_SIZE or len(data) < HEADER_SIZE:
        msg = (
            f"Session file is truncated ({size} bytes, a valid one has at least "
            f"{HEADER_SIZE + _TAG_SIZE})"
        )
        raise CorruptFile(
            msg,
            path=path,
        )
    magic, version, flags, key_id, salt, nonce = _HEADER.unpack_from(data)
    if magic != MAGIC:
        msg = "Not an ipysession file (wrong magic bytes)"
        raise CorruptFile(
            msg,
            path=path,
            hint="Remove it from the session directory, or run `ipysession doctor --repair`",
        )
    if version == 0:
        msg = "Session file has format version 0, which never existed"
        raise CorruptFile(msg, path=path)
    if version > FORMAT_VERSION:
        raise NewerFormat(found=version, supported=FORMAT_VERSION, path=path)
    return Header(version=version, flags=flags, key_id=key_id, salt=salt, nonce=nonce)


def _new_header(key: SealingKey, flags: int) -> tuple[bytes, bytes]:
    """``(raw key, packed header)`` for a new file; the header ends with a fresh nonce."""
    raw_key, salt, key_id = key.for_writing()
    if any(salt):
        flags |= FLAG_PASSPHRASE
    return raw_key, Header(FORMAT_VERSION, flags, key_id, salt, new_nonce()).pack()


def _seal_payload(payload: bytes, key: SealingKey, flags: int) -> bytes:
    raw_key, header = _new_header(key, flags)
    return header + seal(raw_key, header[-NONCE_SIZE:], payload, header)


def _open_payload(
    data: bytes, key: SealingKey, *, path: PathLike, expect_blob: bool
) -> tuple[Header, bytes]:
    header = read_header(data, path=path)
    raw_key = _key_for(header, key, path=path, expect_blob=expect_blob)
    try:
        plaintext = unseal(raw_key, header.nonce, data[HEADER_SIZE:], data[:HEADER_SIZE])
    except AuthenticationFailed:
        raise _not_authentic(path) from None
    return header, _decompressed(header, plaintext, path=path)


def _key_for(header: Header, key: SealingKey, *, path: PathLike, expect_blob: bool) -> bytes:
    """The key that opens a file with ``header``, after checking it is the kind expected."""
    kind = "a value blob" if header.is_blob else "a session file"
    if header.is_blob != expect_blob or header.flags & ~KNOWN_FLAGS:
        msg = f"File is {kind} with flags {header.flags:#06x}, not what was expected here"
        raise CorruptFile(
            msg,
            path=path,
        )
    raw_key = key.for_reading(header.salt, header.key_id)
    if raw_key is None:
        secret = "passphrase" if header.uses_passphrase else "key"
        msg = (
            f"File was sealed with a different {secret} (key id {header.key_id.hex()}); "
            f"the key in use is the {key.description}"
        )
        raise WrongKey(
            msg,
            path=path,
            hint=(
                "Set IPYSESSION_PASSPHRASE to the passphrase it was exported with"
                if header.uses_passphrase
                else "Use the key store that wrote it (run `ipysession doctor` to see which key "
                "is in use), or export the session on the machine that has the key"
            ),
        )
    return raw_key


def _not_authentic(path: PathLike) -> CorruptFile:
    msg = "File failed authentication: it was changed or damaged after it was written"
    return CorruptFile(msg, path=path)


def _decompressed(header: Header, plaintext: bytes, *, path: PathLike) -> bytes:
    """The payload of an authenticated file."""
    if header.flags & FLAG_COMPRESSED:
        try:
            return zlib.decompress(plaintext)
        except zlib.error as exc:
            msg = f"File payload does not decompress ({exc})"
            raise CorruptFile(msg, path=path) from None
    return plaintext


def encode_session(doc: dict[str, Any], key: SealingKey) -> bytes:
    """Seal a session document (``Session.to_dict()``) into the bytes of a ``.ipys`` file."""
    doc = {**doc, "format": FORMAT_VERSION}
    payload = json.dumps(doc, separators=(",", ":")).encode("utf-8")
    if _worth_compressing(payload):
        return _seal_payload(zlib.compress(payload, 1), key, FLAG_COMPRESSED)
    return _seal_payload(payload, key, 0)


def decode_session(data: bytes, key: SealingKey, *, path: PathLike = None) -> dict[str, Any]:
    """Authenticate, decrypt, parse and migrate a ``.ipys`` file to the current format."""
    header, plaintext = _open_payload(data, key, path=path, expect_blob=False)
    try:
        doc = json.loads(plaintext)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        msg = f"Session payload is not valid JSON ({exc})"
        raise CorruptFile(msg, path=path) from None
    if not isinstance(doc, dict):
        msg = "Session payload is not a JSON object"
        raise CorruptFile(msg, path=path)
    declared = doc.get("format", header.version)
    if declared != header.version:
        msg = f"Session payload says format {declared!r} but its header says {header.version}"
        raise CorruptFile(
            msg,
            path=path,
        )
    try:
        return migrations.upgrade(doc, header.version)
    except NewerFormat:
        raise NewerFormat(found=header.version, supported=FORMAT_VERSION, path=path) from None


def encode_blob(value: bytes, key: SealingKey) -> bytes:
    """Seal one serialized value into the bytes of a ``.ipyb`` blob file."""
    payload, flags = _blob_payload(value)
    return _seal_payload(payload, key, flags)


def write_blob(out: IO[bytes], value: bytes, key: SealingKey) -> int:
    """Seal one serialized value straight into ``out``: the bytes of :func:`encode_blob`.

    The header, then the ciphertext a chunk at a time, then the tag: the ciphertext of a large
    value never exists whole. Returns how many bytes were written.
    """
    payload, flags = _blob_payload(value)
    raw_key, header = _new_header(key, flags)
    out.write(header)
    return HEADER_SIZE + seal_to(raw_key, header[-NONCE_SIZE:], payload, header, out.write)


def _blob_payload(value: bytes) -> tuple[bytes, int]:
    """What is sealed for ``value``, and the flags saying how."""
    if _worth_compressing(value):
        return zlib.compress(value, 1), FLAG_BLOB | FLAG_COMPRESSED
    return value, FLAG_BLOB


def _worth_compressing(data: bytes) -> bool:
    """Compress only what a sample shows will shrink well.

    Pickled float arrays and the base64 of such values barely compress, and zlib on them costs
    more than sealing and writing together. Samples from the start, middle and end cover a
    document whose history (very compressible) comes before its values.
    """
    if len(data) <= _SAMPLE_SIZE:
        sample = data
    else:
        third = _SAMPLE_SIZE // 3
        middle = len(data) // 2
        sample = data[:third] + data[middle : middle + third] + data[-third:]
    return bool(sample) and len(zlib.compress(sample, 1)) < _WORTH_COMPRESSING * len(sample)


def decode_blob(
    data: bytes, key: SealingKey, *, path: PathLike = None, expected_id: str | None = None
) -> bytes:
    """Authenticate and decrypt a blob; ``expected_id`` also proves it is the value referred to.

    A blob is named by the keyed hash of its content, so checking the hash after decryption stops a
    valid blob from being swapped in for another one.
    """
    _, value = _open_payload(data, key, path=path, expect_blob=True)
    _check_content(value, key, path=path, expected_id=expected_id)
    return value


def read_blob(
    source: io.BufferedIOBase,
    size: int,
    key: SealingKey,
    *,
    path: PathLike = None,
    expected_id: str | None = None,
) -> tuple[Header, bytes]:
    """:func:`decode_blob` of the ``size`` bytes that ``source`` holds, read a chunk at a time.

    Also returns the header. The file's bytes are never held whole: the plaintext is decrypted as
    they are read, and released only once the tag has authenticated all of it.
    """
    head = source.read(HEADER_SIZE)
    header = _parse_header(head, size, path=path)
    raw_key = _key_for(header, key, path=path, expect_blob=True)
    length = size - HEADER_SIZE - _TAG_SIZE
    try:
        plaintext = unseal_from(raw_key, header.nonce, source.readinto, length, head)
    except AuthenticationFailed:
        raise _not_authentic(path) from None
    value = _decompressed(header, plaintext, path=path)
    del plaintext
    _check_content(value, key, path=path, expected_id=expected_id)
    return header, value


def _check_content(
    value: bytes, key: SealingKey, *, path: PathLike, expected_id: str | None
) -> None:
    if expected_id is not None and key.content_id(value) != expected_id:
        msg = "Blob content does not match its name: it was swapped or renamed"
        raise CorruptFile(
            msg,
            path=path,
            hint="Variables stored in it cannot be restored from this blob",
        )
