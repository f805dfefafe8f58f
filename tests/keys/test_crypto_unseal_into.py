"""unseal_into decrypting into fresh memory (:func:`ipysession.memory.empty`: huge pages where
the kernel grants them): round trips around chunk and page boundaries, and on every failure
(a changed byte in any chunk or in the tag, a short file, a read that raises) nothing but the
error comes out: the memory is wiped first and no helper thread is left running."""

from __future__ import annotations

import io
import os
import threading
from collections.abc import Callable

import pytest

from ipysession import memory
from ipysession.keys import crypto
from ipysession.keys.crypto import AuthenticationFailed, MasterKey

KEY = bytes(range(32))
HEADER = b"IPYSESS\0 header in the clear"
CHUNK = crypto.STREAM_CHUNK
#: Several chunks, several 2 MiB huge pages, a content id hashed on a helper thread, a tail.
LARGE = 3 * crypto.THREADED_DIGEST_MIN // 2 + 12_345

SIZES = [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK + 5, LARGE]


def _sealed(size: int) -> tuple[bytes, bytes, bytes]:
    plaintext = os.urandom(size)
    nonce = crypto.new_nonce()
    return plaintext, nonce, crypto.seal(KEY, nonce, plaintext, HEADER)


def _wiped(buffer: memoryview) -> bool:
    return buffer == bytes(buffer.nbytes)


def _helpers() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if t.name == "ipysession-digest"}


@pytest.fixture
def handed_out(monkeypatch: pytest.MonkeyPatch) -> list[memoryview]:
    """The buffers memory.empty hands to the decryption (the real ones, recorded)."""
    made: list[memoryview] = []
    real = memory.empty

    def recording(size: int) -> memoryview:
        buffer = real(size)
        made.append(buffer)
        return buffer

    monkeypatch.setattr(memory, "empty", recording)
    return made


@pytest.mark.parametrize("size", SIZES, ids=[f"{s}B" for s in SIZES])
def test_unseal_into_round_trips_around_chunk_boundaries(
    size: int, handed_out: list[memoryview]
) -> None:
    plaintext, nonce, sealed = _sealed(size)
    hasher = MasterKey(KEY).content_hasher()
    opened = crypto.unseal_into(
        KEY, nonce, io.BytesIO(sealed).readinto, size, HEADER, digest=hasher.update
    )
    assert opened.nbytes == size
    assert opened == plaintext
    assert not opened.readonly
    assert hasher.hexdigest() == MasterKey(KEY).content_id(plaintext)
    assert [b.nbytes for b in handed_out] == [size]  # decrypted where it is handed back


def _where(size: int) -> dict[str, int]:
    last_chunk = (size - 1) // CHUNK * CHUNK
    return {
        "first chunk": 7,
        "middle chunk": size // 2,
        "last chunk": last_chunk + (size - last_chunk) // 2,
        "tag": size + crypto.TAG_SIZE - 1,
    }


@pytest.mark.parametrize("where", ["first chunk", "middle chunk", "last chunk", "tag"])
def test_a_changed_byte_anywhere_fails_and_wipes_the_memory(
    where: str, handed_out: list[memoryview]
) -> None:
    _, nonce, sealed = _sealed(LARGE)
    tampered = bytearray(sealed)
    tampered[_where(LARGE)[where]] ^= 0x04
    before = _helpers()
    with pytest.raises(AuthenticationFailed):
        crypto.unseal_into(
            KEY,
            nonce,
            io.BytesIO(bytes(tampered)).readinto,
            LARGE,
            HEADER,
            digest=MasterKey(KEY).content_hasher().update,
        )
    (buffer,) = handed_out
    assert buffer.nbytes == LARGE
    assert _wiped(buffer)  # every byte it had decrypted is zero again
    assert _helpers() == before  # the hashing helper was joined


def test_a_short_file_is_a_failed_authentication_and_wipes_the_memory(
    handed_out: list[memoryview],
) -> None:
    _, nonce, sealed = _sealed(LARGE)
    for cut in (LARGE // 2, LARGE, LARGE + crypto.TAG_SIZE - 1):
        with pytest.raises(AuthenticationFailed, match="ends early"):
            crypto.unseal_into(KEY, nonce, io.BytesIO(sealed[:cut]).readinto, LARGE, HEADER)
        assert _wiped(handed_out[-1])


def _failing_after(data: bytes, limit: int) -> Callable[[memoryview], int]:
    source = io.BytesIO(data)

    def readinto(buffer: memoryview) -> int:
        if source.tell() >= limit:
            raise OSError(5, "Input/output error")
        return source.readinto(buffer)

    return readinto


def test_a_read_that_raises_midway_propagates_wiped_and_leaves_no_thread(
    handed_out: list[memoryview],
) -> None:
    _, nonce, sealed = _sealed(LARGE)
    before = _helpers()
    with pytest.raises(OSError, match="Input/output error"):
        crypto.unseal_into(
            KEY,
            nonce,
            _failing_after(sealed, LARGE // 2),
            LARGE,
            HEADER,
            digest=MasterKey(KEY).content_hasher().update,
        )
    (buffer,) = handed_out
    assert _wiped(buffer)
    assert _helpers() == before
