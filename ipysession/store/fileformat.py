"""The on-disk envelope of session files (``.ipys``), value blobs (``.ipyb``) and the head
record (``head.ipys``), format version 3 (versions 1 and 2 still read; version 3 changed only
the session document: co-variable groups and out-of-band buffers, see docs/file-format.md).

(Over 500 lines on purpose: sessions, blobs and the head record share one header, one parse and
one order of checks -- size, magic, version, key id, authentication, and only then decompression
under a cap -- and the streamed blob path must keep exactly that order; in one file it reads top
to bottom.)

Layout (big-endian), the same in every version::

    offset  size  field
    0       8     magic  b"IPYSESS\\0"
    8       2     format version (u16)
    10      2     flags (u16): 1 = payload compressed (zlib), 2 = key derived from a passphrase,
                  4 = blob (raw value bytes, not a session document),
                  8 = head record (version 2 on; the newest generation of a session)
    12      8     key id: HMAC-SHA256(key, "ipysession key id v1")[:8]
    20      16    KDF salt (all zero unless flag 2)
    36      12    nonce, fresh and random for every write
    48      ...   AES-256-GCM ciphertext of the payload, with its 16-byte tag

The whole 48-byte header is the AEAD's associated data: changing the version, the flags, the key
id, the salt or the nonce fails authentication. The payload of a session file is a JSON document
(:meth:`ipysession.model.Session.to_dict`, binary values base64) carrying its own ``"format"``
and, from version 2, ``"bound"``: the place the file was written for (:class:`Binding`), so an
authentic file copied or renamed to another place is told apart from the one that belongs there.
The payload of a blob is the value's serialized bytes; a blob is bound by its name (a keyed hash
of its content), which from version 4 it seals after its payload, so a reader proves the name by
authenticating the file instead of hashing the value again.

Blobs can also be written to and read from an open file a chunk at a time
(:func:`write_blob`, :func:`read_blob`), so that a large value never sits in memory next to its
ciphertext; the bytes on disk are the same as :func:`encode_blob`'s.

Reading checks, in order: size, magic, version (a plausible newer one -> :class:`NewerFormat`
naming both versions, an implausible one -> :class:`CorruptFile`), kind, key id (unknown ->
:class:`WrongKey`), authentication (-> :class:`CorruptFile`), and only then decompresses, at most
to a limit, and parses. Nothing is unpickled here at all; callers unpickle values only from
documents this module has authenticated.
"""

from __future__ import annotations

import io
import json
import os
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from ipysession.errors import CorruptFile, NewerFormat, StoreWriteError, WrongKey
from ipysession.keys.crypto import (
    KEY_ID_SIZE,
    NONCE_SIZE,
    SALT_SIZE,
    STREAM_CHUNK,
    TAG_SIZE,
    AuthenticationFailed,
    ContentHasher,
    SealingKey,
    new_nonce,
    seal,
    seal_to,
    unseal,
    unseal_into,
)
from ipysession.store import migrations
from ipysession.store.limits import DEFAULT_MAX_VALUE_BYTES

__all__ = [
    "DEFAULT_MAX_DOCUMENT_BYTES",
    "DEFAULT_MAX_VALUE_BYTES",
    "FORMAT_VERSION",
    "HEADER_SIZE",
    "MAGIC",
    "NEWER_WINDOW",
    "Binding",
    "BlobRead",
    "Decoded",
    "Header",
    "decode_blob",
    "decode_head",
    "decode_session",
    "encode_blob",
    "encode_head",
    "encode_session",
    "open_session",
    "read_blob",
    "read_header",
    "write_blob",
]

MAGIC = b"IPYSESS\0"
FORMAT_VERSION = migrations.CURRENT_VERSION

FLAG_COMPRESSED = 0x1
FLAG_PASSPHRASE = 0x2
FLAG_BLOB = 0x4
FLAG_HEAD = 0x8
#: The version that introduced each flag: a flag unknown to a file's version makes it corrupt.
_FLAG_SINCE = {FLAG_COMPRESSED: 1, FLAG_PASSPHRASE: 1, FLAG_BLOB: 1, FLAG_HEAD: 2}
KNOWN_FLAGS = sum(_FLAG_SINCE)
#: The bits of the flags field that every version keeps for envelope flags (docs/file-format.md,
#: "Compatibility rules"): a header with a higher bit set was not written by any ipysession.
ENVELOPE_FLAGS = 0x00FF
#: How far beyond this release's version a header's version may be and still be believed to come
#: from a newer ipysession. Format versions go up by one per release that changes the format, so
#: sixteen is years of releases; a random header lands in that window once in 4,000 tries, and
#: must then also pass the flag and salt rules (about one in a million altogether).
NEWER_WINDOW = 16

_HEADER = struct.Struct(f">8sHH{KEY_ID_SIZE}s{SALT_SIZE}s{NONCE_SIZE}s")
HEADER_SIZE = _HEADER.size
_TAG_SIZE = TAG_SIZE
#: From this version a blob's sealed plaintext ends with the raw bytes of its content id (the
#: name's hex, decoded): authenticated with the value, it proves the name without a re-hash.
ID_TRAILER_VERSION = 4
ID_TRAILER_SIZE = 32

#: A session document (or export) that inflates beyond this is refused as corrupt: the store
#: writes values above its blob threshold (64 KiB by default) to blobs, so a generation file
#: holds metadata, history and small values, far below this. Configurable per store
#: (``SessionStore(max_document_bytes=...)``); writers refuse to write what readers would refuse.
DEFAULT_MAX_DOCUMENT_BYTES = 1 << 30
#: A head record is a few hundred bytes; anything larger is not one.
_MAX_HEAD_BYTES = 64 * 1024

# Payloads whose sample does not shrink below this ratio are stored uncompressed.
_SAMPLE_SIZE = 48 * 1024
_WORTH_COMPRESSING = 0.7

PathLike = str | os.PathLike[str] | None

_SESSION, _BLOB, _HEAD = "a session file", "a value blob", "a head record"


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
    def is_head(self) -> bool:
        return bool(self.flags & FLAG_HEAD)

    @property
    def uses_passphrase(self) -> bool:
        return bool(self.flags & FLAG_PASSPHRASE)

    @property
    def kind(self) -> str:
        """What the flags say the file is, in words."""
        if self.is_blob and self.is_head:
            return "a file with both the blob and the head flag"
        return _BLOB if self.is_blob else _HEAD if self.is_head else _SESSION

    def pack(self) -> bytes:
        return _HEADER.pack(MAGIC, self.version, self.flags, self.key_id, self.salt, self.nonce)


@dataclass(frozen=True)
class Binding:
    """The place a session document was sealed for (format version 2 on).

    ``generation`` N of its session, the checkpoint ``checkpoint``, or neither: an export, bound
    to no place. The session itself is bound by the document's own ``name``, which the store
    checks against the directory. A document read from a version 1 file has no binding at all
    (:attr:`Decoded.binding` is ``None``).
    """

    generation: int | None = None
    checkpoint: str | None = None

    def to_json(self) -> dict[str, Any]:
        if self.generation is not None:
            return {"generation": self.generation}
        if self.checkpoint is not None:
            return {"checkpoint": self.checkpoint}
        return {}

    @classmethod
    def from_json(cls, raw: object, *, path: PathLike) -> Binding:
        generation = raw.get("generation") if isinstance(raw, dict) else None
        checkpoint = raw.get("checkpoint") if isinstance(raw, dict) else None
        if (
            not isinstance(raw, dict)
            or set(raw) - {"generation", "checkpoint"}
            or (generation is not None and checkpoint is not None)
            or (generation is not None and (type(generation) is not int or generation < 1))
            or (checkpoint is not None and not isinstance(checkpoint, str))
        ):
            msg = f"File is authentic but says it belongs to an impossible place ({raw!r})"
            raise CorruptFile(msg, path=path)
        return cls(generation=generation, checkpoint=checkpoint)

    def describe(self) -> str:
        if self.generation is not None:
            return f"generation {self.generation}"
        if self.checkpoint is not None:
            return f"checkpoint {self.checkpoint!r}"
        return "no place in a store (an export)"


@dataclass(frozen=True)
class Decoded:
    """An authenticated session document, migrated to the current format.

    ``doc`` keeps its ``"format"`` (the current version) and loses ``"bound"``, which is
    ``binding``: ``None`` for a file written before version 2. ``version`` is the file's own.
    """

    doc: dict[str, Any]
    version: int
    binding: Binding | None


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
        if _plausibly_newer(version, flags, salt):
            raise NewerFormat(found=version, supported=FORMAT_VERSION, path=path)
        msg = (
            f"Session file has a damaged header: it claims format version {version} with flags "
            f"{flags:#06x}, which no ipysession writes (this one writes version {FORMAT_VERSION})"
        )
        raise CorruptFile(msg, path=path)
    return Header(version=version, flags=flags, key_id=key_id, salt=salt, nonce=nonce)


def _plausibly_newer(version: int, flags: int, salt: bytes) -> bool:
    """Whether a header this release cannot read looks like one a newer release wrote.

    Only such a header may ask the user to upgrade; junk that happens to start with the magic
    must be treated as damage. A newer release keeps the envelope (see the module docstring and
    docs/file-format.md): a version at most :data:`NEWER_WINDOW` ahead, flags in the low byte,
    and a salt that is all zero unless the passphrase flag is set.
    """
    return (
        version <= FORMAT_VERSION + NEWER_WINDOW
        and not flags & ~ENVELOPE_FLAGS
        and (bool(flags & FLAG_PASSPHRASE) or not any(salt))
    )


def known_flags(version: int) -> int:
    """The flags a file of format ``version`` may carry."""
    return sum(flag for flag, since in _FLAG_SINCE.items() if since <= version)


def _new_header(key: SealingKey, flags: int) -> tuple[bytes, bytes]:
    """``(raw key, packed header)`` for a new file; the header ends with a fresh nonce."""
    raw_key, salt, key_id = key.for_writing()
    if any(salt):
        flags |= FLAG_PASSPHRASE
    return raw_key, Header(FORMAT_VERSION, flags, key_id, salt, new_nonce()).pack()


def _seal_payload(payload: bytes | bytearray | memoryview, key: SealingKey, flags: int) -> bytes:
    raw_key, header = _new_header(key, flags)
    return header + seal(raw_key, header[-NONCE_SIZE:], payload, header)


def _open_payload(
    data: bytes, key: SealingKey, *, path: PathLike, kind: str, limit: int
) -> tuple[Header, bytes]:
    header = read_header(data, path=path)
    raw_key = _key_for(header, key, path=path, kind=kind)
    try:
        plaintext = unseal(raw_key, header.nonce, data[HEADER_SIZE:], data[:HEADER_SIZE])
    except AuthenticationFailed:
        raise _not_authentic(path) from None
    return header, _decompressed(header, plaintext, path=path, limit=limit)


def _key_for(header: Header, key: SealingKey, *, path: PathLike, kind: str) -> bytes:
    """The key that opens a file with ``header``, after checking it is the kind expected."""
    if header.kind != kind or header.flags & ~known_flags(header.version):
        msg = (
            f"File is {header.kind} (format version {header.version}, flags "
            f"{header.flags:#06x}), not {kind} as expected here"
        )
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


def _out_of_memory(path: PathLike) -> CorruptFile:
    msg = "File could not be decoded with the memory available, so it is treated as damaged"
    return CorruptFile(
        msg,
        path=path,
        hint="If it is a session you need, move it back from quarantine and read it where more "
        "memory is available",
    )


def _decompressed(header: Header, plaintext: bytes, *, path: PathLike, limit: int) -> bytes:
    """The payload of an authenticated file, refused if it is (or inflates to) over ``limit``.

    Inflating is bounded as it happens (``max_length``), so a small file that would inflate to
    gigabytes costs at most ``limit`` bytes of memory before it is refused.
    """
    if not header.flags & FLAG_COMPRESSED:
        if len(plaintext) > limit:
            raise _too_large(path, limit, header)
        return plaintext
    inflater = zlib.decompressobj()
    try:
        payload = inflater.decompress(plaintext, limit + 1)
    except zlib.error as exc:
        msg = f"File payload does not decompress ({exc})"
        raise CorruptFile(msg, path=path) from None
    except MemoryError:
        raise _out_of_memory(path) from None
    if len(payload) > limit:
        raise _too_large(path, limit, header)
    if not inflater.eof:
        msg = "File payload does not decompress (the compressed stream is cut short)"
        raise CorruptFile(msg, path=path)
    return payload


def _too_large(path: PathLike, limit: int, header: Header) -> CorruptFile:
    what = "value" if header.is_blob else "document"
    setting = "" if header.is_blob else " (SessionStore's max_document_bytes)"
    msg = (
        f"File's {what} is larger than the limit of {limit:,} bytes{setting}: it is refused "
        "as damaged (a small file that inflates without bound is how memory is exhausted)"
    )
    return CorruptFile(
        msg,
        path=path,
        hint="If you wrote it yourself with a larger limit, read it with that limit; it is kept",
    )


def encode_session(
    doc: dict[str, Any],
    key: SealingKey,
    *,
    bound: Binding | None = None,
    limit: int = DEFAULT_MAX_DOCUMENT_BYTES,
    path: PathLike = None,
) -> bytes:
    """Seal a session document (``Session.to_dict()``) into the bytes of a ``.ipys`` file.

    ``bound`` is the place it is written for (``None``: no place, as for an export). A document
    larger than ``limit`` is refused with :class:`StoreWriteError`, since no reader with that
    limit would read it back.
    """
    doc = {**doc, "format": FORMAT_VERSION, "bound": (bound or Binding()).to_json()}
    payload = json.dumps(doc, separators=(",", ":")).encode("utf-8")
    if len(payload) > limit:
        msg = (
            f"The session document is {len(payload):,} bytes, over the limit of {limit:,} "
            "bytes that readers accept; it was not written"
        )
        raise StoreWriteError(
            msg,
            path=path,
            hint="Lower the blob threshold so that large values go to blobs, or raise "
            "max_document_bytes for every store that reads this session",
        )
    if _worth_compressing(payload):
        return _seal_payload(zlib.compress(payload, 1), key, FLAG_COMPRESSED)
    return _seal_payload(payload, key, 0)


def open_session(
    data: bytes, key: SealingKey, *, path: PathLike = None, limit: int = DEFAULT_MAX_DOCUMENT_BYTES
) -> Decoded:
    """Authenticate, decrypt, parse and migrate a ``.ipys`` file; see :class:`Decoded`."""
    try:
        header, plaintext = _open_payload(data, key, path=path, kind=_SESSION, limit=limit)
        doc = _json_object(plaintext, path=path)
        del plaintext
    except MemoryError:
        raise _out_of_memory(path) from None
    declared = doc.get("format", header.version)
    if declared != header.version:
        msg = f"Session payload says format {declared!r} but its header says {header.version}"
        raise CorruptFile(
            msg,
            path=path,
        )
    try:
        doc = migrations.upgrade(doc, header.version)
    except NewerFormat:
        raise NewerFormat(found=header.version, supported=FORMAT_VERSION, path=path) from None
    # Every step from version 1 on leaves "bound" in the document: None where the file had none.
    raw = doc.pop("bound", None)
    binding = None if raw is None else Binding.from_json(raw, path=path)
    return Decoded(doc=doc, version=header.version, binding=binding)


def decode_session(
    data: bytes, key: SealingKey, *, path: PathLike = None, limit: int = DEFAULT_MAX_DOCUMENT_BYTES
) -> dict[str, Any]:
    """The document of :func:`open_session`, for callers that do not ask where it belongs."""
    return open_session(data, key, path=path, limit=limit).doc


def _json_object(plaintext: bytes, *, path: PathLike) -> dict[str, Any]:
    try:
        doc = json.loads(plaintext)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        msg = f"Session payload is not valid JSON ({exc})"
        raise CorruptFile(msg, path=path) from None
    if not isinstance(doc, dict):
        msg = "Session payload is not a JSON object"
        raise CorruptFile(msg, path=path)
    return doc


def encode_head(doc: dict[str, Any], key: SealingKey) -> bytes:
    """Seal a head record (see :mod:`ipysession.store.head`): small, never compressed."""
    payload = json.dumps({**doc, "format": FORMAT_VERSION}, separators=(",", ":")).encode()
    return _seal_payload(payload, key, FLAG_HEAD)


def decode_head(data: bytes, key: SealingKey, *, path: PathLike = None) -> dict[str, Any]:
    """Authenticate and parse a head record; its fields are checked by the caller."""
    _, plaintext = _open_payload(data, key, path=path, kind=_HEAD, limit=_MAX_HEAD_BYTES)
    return _json_object(plaintext, path=path)


def encode_blob(value: bytes, key: SealingKey) -> bytes:
    """Seal one serialized value into the bytes of a ``.ipyb`` blob file."""
    out = io.BytesIO()
    write_blob(out, value, key)
    return out.getvalue()


class _Sink(Protocol):
    """Where :func:`write_blob` puts a blob's bytes: a binary file, or a writer wrapping one."""

    def write(self, data: bytes | memoryview, /) -> int: ...


def write_blob(
    out: _Sink,
    value: bytes | bytearray | memoryview,
    key: SealingKey,
    *,
    hasher: ContentHasher | None = None,
    blob_id: str | None = None,
) -> int:
    """Seal one serialized value straight into ``out``: the bytes of :func:`encode_blob`.

    The header, then the ciphertext a chunk at a time, then the id trailer, then the tag: the
    ciphertext of a large value never exists whole. The trailer is ``blob_id`` when the caller
    computed it already; otherwise the value is hashed beside the cipher (into ``hasher`` when
    given, so the caller learns the id it names the file by; see
    :func:`~ipysession.keys.crypto.seal_to`), which costs no separate pass. Returns how many
    bytes were written.
    """
    payload, flags = _blob_payload(value)
    digest: Callable[[memoryview], object] | None = None
    if blob_id is None:
        content = hasher if hasher is not None else key.content_hasher()
        digest = content.update
        if payload is not value:  # compressed: the id is of the value
            digest(memoryview(value))
            digest = None

        def trailer() -> bytes:
            return bytes.fromhex(content.hexdigest())
    else:

        def trailer() -> bytes:
            return bytes.fromhex(blob_id)

    raw_key, header = _new_header(key, flags)
    out.write(header)
    sealed = seal_to(
        raw_key, header[-NONCE_SIZE:], payload, header, out.write, digest=digest, final=trailer
    )
    return HEADER_SIZE + sealed


def _blob_payload(
    value: bytes | bytearray | memoryview,
) -> tuple[bytes | bytearray | memoryview, int]:
    """What is sealed for ``value``, and the flags saying how."""
    if _worth_compressing(value):
        return zlib.compress(value, 1), FLAG_BLOB | FLAG_COMPRESSED
    return value, FLAG_BLOB


def _worth_compressing(data: bytes | bytearray | memoryview) -> bool:
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
        sample = b"".join((data[:third], data[middle : middle + third], data[-third:]))
    return bool(sample) and len(zlib.compress(sample, 1)) < _WORTH_COMPRESSING * len(sample)


def decode_blob(
    data: bytes,
    key: SealingKey,
    *,
    path: PathLike = None,
    expected_id: str | None = None,
    limit: int = DEFAULT_MAX_VALUE_BYTES,
) -> bytes:
    """Authenticate and decrypt a blob; ``expected_id`` also proves it is the value referred to.

    A blob is named by the keyed hash of its content, so a valid blob swapped in for another one
    fails: from version 4 its authenticated id trailer differs from the name, before that its
    content hashes to another id.
    """
    read = read_blob(
        io.BytesIO(data), len(data), key, path=path, expected_id=expected_id, limit=limit
    )
    return bytes(read.value)


@dataclass(frozen=True)
class BlobRead:
    """An authenticated blob read by :func:`read_blob`: its header, its value, and its content
    id: from version 4 the authenticated trailer, the id its writer named it by (under the key
    that sealed it); before, the value's id under the key that read it, hashed in the same pass
    as the decryption."""

    header: Header
    value: memoryview
    content_id: str


def read_blob(
    source: io.BufferedIOBase,
    size: int,
    key: SealingKey,
    *,
    path: PathLike = None,
    expected_id: str | None = None,
    limit: int = DEFAULT_MAX_VALUE_BYTES,
) -> BlobRead:
    """:func:`decode_blob` of the ``size`` bytes that ``source`` holds, read a chunk at a time.

    The file's bytes are never held whole: the plaintext is decrypted as they are read into one
    writable buffer, released only once the tag has authenticated all of it. A version 4 blob's
    id is its authenticated trailer (the value is the buffer less it: no copy, no hashing); an
    older blob's is hashed chunk by chunk as it is decrypted (a compressed blob: as it is
    inflated), so the id check costs no second pass over the value.
    """
    head = source.read(HEADER_SIZE)
    header = _parse_header(head, size, path=path)
    raw_key = _key_for(header, key, path=path, kind=_BLOB)
    length = size - HEADER_SIZE - _TAG_SIZE
    trailed = header.version >= ID_TRAILER_VERSION
    if trailed and length < ID_TRAILER_SIZE:
        raise _not_authentic(path)  # no writer seals a blob without its id
    hasher = None if trailed else key.content_hasher()
    compressed = bool(header.flags & FLAG_COMPRESSED)
    if not compressed and length - (ID_TRAILER_SIZE if trailed else 0) > limit:
        raise _too_large(path, limit, header)
    try:
        plaintext = unseal_into(
            raw_key,
            header.nonce,
            source.readinto,
            length,
            head,
            digest=None if compressed or hasher is None else hasher.update,
        )
    except AuthenticationFailed:
        raise _not_authentic(path) from None
    if trailed:  # the value is the decrypted memory itself, less the trailer: no copy
        content_id = plaintext[-ID_TRAILER_SIZE:].hex()
        plaintext = plaintext[:-ID_TRAILER_SIZE]
    value = _inflate(header, plaintext, hasher, path=path, limit=limit) if compressed else plaintext
    del plaintext
    if hasher is not None:
        content_id = hasher.hexdigest()
    if expected_id is not None and content_id != expected_id:
        raise _mismatch(path)
    return BlobRead(header, value, content_id)


def _inflate(
    header: Header,
    compressed: memoryview,
    hasher: ContentHasher | None,
    *,
    path: PathLike,
    limit: int,
) -> memoryview:
    """The inflated payload of an authenticated blob, hashed piece by piece as it is inflated
    (unless ``hasher`` is ``None``: a blob that names itself), into a writable buffer, refused
    once it is over ``limit``."""
    inflater = zlib.decompressobj()
    out = bytearray()
    pending: bytes | memoryview = compressed
    try:
        while True:
            piece = inflater.decompress(pending, STREAM_CHUNK)
            if len(out) + len(piece) > limit:
                raise _too_large(path, limit, header)
            if hasher is not None:
                hasher.update(piece)
            out += piece
            pending = inflater.unconsumed_tail
            if inflater.eof or (not pending and not piece):
                break
    except zlib.error as exc:
        msg = f"File payload does not decompress ({exc})"
        raise CorruptFile(msg, path=path) from None
    except MemoryError:
        raise _out_of_memory(path) from None
    if not inflater.eof:
        msg = "File payload does not decompress (the compressed stream is cut short)"
        raise CorruptFile(msg, path=path)
    return memoryview(out)


def _mismatch(path: PathLike) -> CorruptFile:
    msg = "Blob content does not match its name: it was swapped or renamed"
    return CorruptFile(
        msg,
        path=path,
        hint="Variables stored in it cannot be restored from this blob",
    )
