"""Blobs sealed and opened a chunk at a time: the same bytes as whole-buffer AES-GCM, and nothing
decrypted leaves before the tag has authenticated all of it."""

from __future__ import annotations

import errno
import io
import os
import pickle
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from ipysession.errors import CorruptFile, StoreWriteError, WrongKey
from ipysession.keys import crypto
from ipysession.keys.crypto import MasterKey
from ipysession.model import Session, VariableRecord
from ipysession.store import SessionStore, fileformat
from ipysession.store.fileformat import HEADER_SIZE

KEY = MasterKey(bytes(range(32)), description="streaming test key")
OTHER_KEY = MasterKey(bytes(range(2, 34)), description="other streaming test key")
CHUNK = crypto.STREAM_CHUNK
SIZES = [0, 1, 15, 16, 17, 1000, CHUNK - 1, CHUNK, CHUNK + 1, 2 * CHUNK + 4097]


def sealed_by_chunks(key: bytes, nonce: bytes, plaintext: bytes, aad: bytes) -> bytes:
    out = io.BytesIO()
    written = crypto.seal_to(key, nonce, plaintext, aad, out.write)
    assert written == len(out.getvalue())
    return out.getvalue()


def opened_by_chunks(key: bytes, nonce: bytes, sealed: bytes, aad: bytes) -> bytes:
    length = len(sealed) - crypto.TAG_SIZE
    return crypto.unseal_from(key, nonce, io.BytesIO(sealed).readinto, length, aad)


# --- crypto ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("size", SIZES)
def test_streamed_sealing_is_byte_for_byte_aesgcm(size: int) -> None:
    key, nonce, aad = os.urandom(32), os.urandom(12), os.urandom(48)
    plaintext = os.urandom(size)
    sealed = sealed_by_chunks(key, nonce, plaintext, aad)
    assert sealed == AESGCM(key).encrypt(nonce, plaintext, aad)
    opened = opened_by_chunks(key, nonce, sealed, aad)
    assert type(opened) is bytes
    assert opened == plaintext


@pytest.mark.parametrize("chunk", [16, 17, 100])
def test_any_chunk_size_gives_the_same_bytes(monkeypatch: pytest.MonkeyPatch, chunk: int) -> None:
    monkeypatch.setattr(crypto, "STREAM_CHUNK", chunk)
    key, nonce, aad = os.urandom(32), os.urandom(12), b"header"
    for size in (0, chunk - 1, chunk, 5 * chunk + 3):
        plaintext = os.urandom(size)
        sealed = sealed_by_chunks(key, nonce, plaintext, aad)
        assert sealed == AESGCM(key).encrypt(nonce, plaintext, aad)
        assert opened_by_chunks(key, nonce, sealed, aad) == plaintext


def test_any_changed_byte_fails_and_the_plaintext_is_wiped(monkeypatch: pytest.MonkeyPatch) -> None:
    wiped: list[bool] = []
    real_wipe = crypto._wipe

    def spy(buffer: memoryview) -> None:
        real_wipe(buffer)
        wiped.append(not any(buffer))

    monkeypatch.setattr(crypto, "_wipe", spy)
    key, nonce, aad = os.urandom(32), os.urandom(12), b"header"
    plaintext = os.urandom(CHUNK + 100)
    sealed = sealed_by_chunks(key, nonce, plaintext, aad)
    for offset in (0, CHUNK // 2, CHUNK + 99, len(sealed) - 1):
        damaged = bytearray(sealed)
        damaged[offset] ^= 0x40
        with pytest.raises(crypto.AuthenticationFailed):
            opened_by_chunks(key, nonce, bytes(damaged), aad)
    with pytest.raises(crypto.AuthenticationFailed):
        opened_by_chunks(key, nonce, sealed, b"other header")
    with pytest.raises(crypto.AuthenticationFailed):
        opened_by_chunks(os.urandom(32), nonce, sealed, aad)
    assert wiped == [True] * 6


def test_a_short_read_is_a_failed_authentication() -> None:
    key, nonce = os.urandom(32), os.urandom(12)
    sealed = sealed_by_chunks(key, nonce, os.urandom(5000), b"")
    short = io.BytesIO(sealed[:-3])
    with pytest.raises(crypto.AuthenticationFailed, match="ends early"):
        crypto.unseal_from(key, nonce, short.readinto, len(sealed) - crypto.TAG_SIZE, b"")
    with pytest.raises(crypto.AuthenticationFailed, match="shorter"):
        crypto.unseal_from(key, nonce, short.readinto, -1, b"")


# --- fileformat -----------------------------------------------------------------------------------


def fixed_nonce(monkeypatch: pytest.MonkeyPatch) -> None:
    nonce = bytes(range(12))
    monkeypatch.setattr(fileformat, "new_nonce", lambda: nonce)


@pytest.mark.parametrize(
    "value",
    [b"", b"x", os.urandom(CHUNK + 3), b"compresses well " * 100_000],
    ids=["empty", "one-byte", "random", "compressible"],
)
def test_write_blob_writes_the_bytes_of_encode_blob(
    monkeypatch: pytest.MonkeyPatch, value: bytes
) -> None:
    fixed_nonce(monkeypatch)
    out = io.BytesIO()
    written = fileformat.write_blob(out, value, KEY)
    assert out.getvalue() == fileformat.encode_blob(value, KEY)
    assert written == len(out.getvalue())
    blob = out.getvalue()
    read = fileformat.read_blob(io.BytesIO(blob), len(blob), KEY, expected_id=KEY.content_id(value))
    assert read.value == value
    assert not read.value.readonly  # writable: an out-of-band array uses it as it is
    assert read.content_id == KEY.content_id(value)  # hashed as it was decrypted
    assert read.header == fileformat.read_header(blob)
    assert fileformat.decode_blob(blob, KEY) == value


def test_read_blob_refuses_what_decode_blob_refuses(tmp_path: Path) -> None:
    value = os.urandom(70_000)
    blob = fileformat.encode_blob(value, KEY)
    session = fileformat.encode_session(Session(name="s").to_dict(), KEY)

    def read(data: bytes, key: MasterKey = KEY, expected_id: str | None = None) -> bytearray:
        return fileformat.read_blob(
            io.BytesIO(data), len(data), key, path=tmp_path / "b.ipyb", expected_id=expected_id
        ).value

    with pytest.raises(WrongKey):
        read(blob, OTHER_KEY)
    with pytest.raises(CorruptFile, match="session file"):
        read(session)
    with pytest.raises(CorruptFile, match="truncated"):
        read(blob[: HEADER_SIZE + 3])
    with pytest.raises(CorruptFile, match="authentication"):
        read(blob[:-1])
    with pytest.raises(CorruptFile, match="swapped"):
        read(blob, expected_id=KEY.content_id(b"another value"))
    for offset in (11, 20, HEADER_SIZE - 1, HEADER_SIZE + 10, len(blob) - 1):
        damaged = bytearray(blob)
        damaged[offset] ^= 1
        with pytest.raises((CorruptFile, WrongKey)):
            read(bytes(damaged))


class Bomb:
    """Unpickling one of these records that it happened."""

    exploded: list[int] = []

    def __reduce__(self) -> tuple[Callable[[int], None], tuple[int]]:
        return Bomb.exploded.append, (1,)


def test_a_tampered_blob_is_refused_by_the_store_and_never_unpickled(tmp_path: Path) -> None:
    data = pickle.dumps(Bomb()) + os.urandom(100_000)  # big enough for a blob
    with SessionStore(tmp_path / "root", key=KEY) as store:
        record = VariableRecord("b", "Bomb", len(data), encoding="pickle", data=data)
        store.write(Session(name="nb", variables={"b": record}))
        blob_id = KEY.content_id(data)
        path = store.session_dir("nb") / "blobs" / f"{blob_id}.ipyb"
        damaged = bytearray(path.read_bytes())
        damaged[HEADER_SIZE + 5] ^= 1
        path.write_bytes(bytes(damaged))
        with pytest.raises(CorruptFile, match="authentication"):
            store.read_blob("nb", blob_id)
        assert not path.exists()  # quarantined
    assert Bomb.exploded == []


# --- store ----------------------------------------------------------------------------------------


def test_the_store_streams_blobs_in_the_v1_format(tmp_path: Path) -> None:
    value = os.urandom(3 * CHUNK + 11)
    with SessionStore(tmp_path / "root", key=KEY) as store:
        record = VariableRecord("v", "bytes", len(value), encoding="pickle", data=value)
        result = store.write(Session(name="nb", variables={"v": record}))
        blob_id = KEY.content_id(value)
        path = store.session_dir("nb") / "blobs" / f"{blob_id}.ipyb"
        assert fileformat.decode_blob(path.read_bytes(), KEY, expected_id=blob_id) == value
        assert result is not None
        assert store.read_blob("nb", blob_id) == value
        assert store.inspect(path) is None


def test_a_failure_while_streaming_a_blob_leaves_no_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def disk_full(*args: object, **options: object) -> int:
        write = args[-1]
        assert callable(write)
        write(memoryview(b"partial ciphertext"))
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(fileformat, "seal_to", disk_full)
    value = os.urandom(200_000)
    with SessionStore(tmp_path / "root", key=KEY) as store:
        record = VariableRecord("v", "bytes", len(value), encoding="pickle", data=value)
        with pytest.raises(StoreWriteError):
            store.write(Session(name="nb", variables={"v": record}))
        blobs = store.session_dir("nb") / "blobs"
        assert not blobs.exists() or list(blobs.iterdir()) == []


@pytest.mark.parametrize(
    "key",
    [KEY, crypto.PassphraseKey("correct horse"), None],
    ids=["master", "passphrase", "rekeying"],
)
def test_a_content_hasher_fed_in_pieces_gives_the_content_id(
    key: crypto.SealingKey | None, tmp_path: Path
) -> None:
    """Checking a value against its blob as it is serialized relies on this equality."""
    if key is None:  # the store's read-old-write-new key during a rekey
        from ipysession.store.either_key import EitherKey

        key = EitherKey(MasterKey(bytes(32)), KEY)
    data = os.urandom(300_000)
    hasher = key.content_hasher()
    for start in range(0, len(data), 65_536):
        hasher.update(memoryview(data)[start : start + 65_536])
    assert hasher.hexdigest() == key.content_id(data)
    assert key.content_hasher().hexdigest() != key.content_id(data)  # nothing fed: another id
