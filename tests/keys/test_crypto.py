"""AES-256-GCM sealing, streaming, key ids and keyed content ids (:mod:`ipysession.keys.crypto`)."""

from __future__ import annotations

import io

import pytest

from ipysession.keys import crypto
from ipysession.keys.crypto import AuthenticationFailed, MasterKey, PassphraseKey

KEY = bytes(range(32))
OTHER_KEY = bytes(range(1, 33))
HEADER = b"IPYSESS\0 header in the clear"
PLAINTEXT = b"x = 42\n" * 50


def test_round_trip_with_a_fresh_nonce_each_time() -> None:
    first_nonce, second_nonce = crypto.new_nonce(), crypto.new_nonce()
    assert len(first_nonce) == crypto.NONCE_SIZE
    assert first_nonce != second_nonce
    sealed = crypto.seal(KEY, first_nonce, PLAINTEXT, HEADER)
    assert PLAINTEXT not in sealed
    assert len(sealed) == len(PLAINTEXT) + crypto.TAG_SIZE
    assert crypto.unseal(KEY, first_nonce, sealed, HEADER) == PLAINTEXT
    # The same plaintext under another nonce is another ciphertext.
    assert crypto.seal(KEY, second_nonce, PLAINTEXT, HEADER) != sealed


def test_every_tampered_byte_fails_authentication() -> None:
    nonce = crypto.new_nonce()
    plaintext = b"small but whole"
    sealed = crypto.seal(KEY, nonce, plaintext, HEADER)
    for index in range(len(sealed)):
        tampered = bytearray(sealed)
        tampered[index] ^= 0x01
        with pytest.raises(AuthenticationFailed):
            crypto.unseal(KEY, nonce, bytes(tampered), HEADER)
    for index in range(len(HEADER)):
        header = bytearray(HEADER)
        header[index] ^= 0x01
        with pytest.raises(AuthenticationFailed):
            crypto.unseal(KEY, nonce, sealed, bytes(header))
    with pytest.raises(AuthenticationFailed):
        crypto.unseal(KEY, nonce, sealed[:-1], HEADER)


def test_a_wrong_key_is_told_apart_from_a_corrupt_file() -> None:
    writer = MasterKey(KEY)
    key, salt, written_id = writer.for_writing()
    nonce = crypto.new_nonce()
    sealed = crypto.seal(key, nonce, PLAINTEXT, HEADER)
    # Wrong key: the key id in the header is not one the reader holds, so it never decrypts.
    assert MasterKey(OTHER_KEY).for_reading(salt, written_id) is None
    # Right key, damaged bytes: the key is found, and authentication fails.
    found = writer.for_reading(salt, written_id)
    assert found == KEY
    with pytest.raises(AuthenticationFailed):
        crypto.unseal(found, nonce, sealed[:10] + b"\0" + sealed[11:], HEADER)


def test_a_rotated_key_reads_with_both_and_writes_with_the_new_one() -> None:
    old = MasterKey(KEY)
    new = MasterKey(OTHER_KEY, previous=(KEY,))
    _, salt, old_id = old.for_writing()
    assert new.for_reading(salt, old_id) == KEY
    assert new.for_writing()[0] == OTHER_KEY


@pytest.mark.parametrize("size", [0, 1, crypto.STREAM_CHUNK - 1, crypto.STREAM_CHUNK + 17])
def test_streaming_seal_and_open_match_the_one_shot_ones(size: int) -> None:
    plaintext = bytes(i % 251 for i in range(size))
    nonce = crypto.new_nonce()
    out = io.BytesIO()
    written = crypto.seal_to(KEY, nonce, plaintext, HEADER, out.write)
    sealed = out.getvalue()
    assert written == len(sealed)
    assert sealed == crypto.seal(KEY, nonce, plaintext, HEADER)
    opened = crypto.unseal_from(
        KEY, nonce, io.BytesIO(sealed).readinto, len(sealed) - crypto.TAG_SIZE, HEADER
    )
    assert opened == plaintext


def test_streaming_open_refuses_tampered_and_short_input() -> None:
    nonce = crypto.new_nonce()
    sealed = crypto.seal(KEY, nonce, PLAINTEXT, HEADER)
    length = len(sealed) - crypto.TAG_SIZE
    tampered = bytearray(sealed)
    tampered[3] ^= 0x80
    with pytest.raises(AuthenticationFailed):
        crypto.unseal_from(KEY, nonce, io.BytesIO(bytes(tampered)).readinto, length, HEADER)
    with pytest.raises(AuthenticationFailed, match="ends early"):
        crypto.unseal_from(KEY, nonce, io.BytesIO(sealed[:-5]).readinto, length, HEADER)
    with pytest.raises(AuthenticationFailed, match="shorter than its tag"):
        crypto.unseal_from(KEY, nonce, io.BytesIO(b"").readinto, -1, HEADER)


def test_content_ids_are_stable_and_depend_on_the_key() -> None:
    value = b"a large value, stored once as a blob"
    first = MasterKey(KEY).content_id(value)
    assert first == MasterKey(KEY).content_id(value)  # stable across instances and processes
    assert first != MasterKey(OTHER_KEY).content_id(value)  # reveals nothing without the key
    assert first != MasterKey(KEY).content_id(value + b"!")
    hasher = MasterKey(KEY).content_hasher()
    hasher.update(value[:7])
    hasher.update(value[7:])
    assert hasher.hexdigest() == first
    # Passphrase keys: stable across instances (each with its own write salt), key-dependent.
    phrase_id = PassphraseKey("correct horse").content_id(value)
    assert phrase_id == PassphraseKey("correct horse").content_id(value)
    assert phrase_id != PassphraseKey("battery staple").content_id(value)


def test_key_ids_and_reprs_never_show_the_key() -> None:
    key = MasterKey(KEY, description="test key")
    assert len(key.key_id_hex) == 2 * crypto.KEY_ID_SIZE
    assert KEY.hex() not in repr(key)
    assert key.key_id_hex in repr(key)
    assert "correct horse" not in repr(PassphraseKey("correct horse"))
    with pytest.raises(ValueError, match="32 bytes"):
        MasterKey(b"short")
    with pytest.raises(ValueError, match="empty"):
        PassphraseKey("")


@pytest.mark.parametrize(
    "size",
    [0, 5, crypto.THREADED_DIGEST_MIN - 1, crypto.THREADED_DIGEST_MIN + 12_345],
    ids=["empty", "small", "inline", "on-a-helper-thread"],
)
def test_the_digest_fed_while_sealing_and_opening_is_the_content_id(size: int) -> None:
    content = MasterKey(KEY)
    plaintext = bytes(i % 253 for i in range(size))
    nonce = crypto.new_nonce()
    sealing = content.content_hasher()
    out = io.BytesIO()
    crypto.seal_to(KEY, nonce, plaintext, HEADER, out.write, digest=sealing.update)
    assert out.getvalue() == crypto.seal(KEY, nonce, plaintext, HEADER)
    assert sealing.hexdigest() == content.content_id(plaintext)
    opening = content.content_hasher()
    opened = crypto.unseal_into(
        KEY, nonce, io.BytesIO(out.getvalue()).readinto, size, HEADER, digest=opening.update
    )
    assert opened == plaintext
    assert opened.nbytes == size
    assert not opened.readonly
    assert opening.hexdigest() == content.content_id(plaintext)


def test_a_failing_digest_fails_the_seal_and_a_bad_tag_fails_a_large_open() -> None:
    plaintext = bytes(crypto.THREADED_DIGEST_MIN + 1)
    nonce = crypto.new_nonce()

    def broken(piece: memoryview) -> None:
        msg = "hasher broke"
        raise RuntimeError(msg)

    with pytest.raises(RuntimeError, match="hasher broke"):
        crypto.seal_to(KEY, nonce, plaintext, HEADER, io.BytesIO().write, digest=broken)
    sealed = bytearray(crypto.seal(KEY, nonce, plaintext, HEADER))
    sealed[-1] ^= 0x01
    fed: list[int] = []
    with pytest.raises(AuthenticationFailed):
        crypto.unseal_into(
            KEY,
            nonce,
            io.BytesIO(bytes(sealed)).readinto,
            len(plaintext),
            HEADER,
            digest=lambda piece: fed.append(len(piece)),
        )
    assert sum(fed) <= len(plaintext)  # the helper was stopped before the buffer was wiped
