"""The sealed file format: tampering always fails closed, keys and versions are told apart,
nothing is unpickled before authentication, secrets never reach the disk in the clear."""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import os
import pickle
import zlib
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ipysession.errors import CorruptFile, NewerFormat, SessionError, StoreWriteError, WrongKey
from ipysession.keys import crypto
from ipysession.keys.crypto import MasterKey, PassphraseKey
from ipysession.model import (
    ConnectionRecord,
    HistoryEntry,
    Preferences,
    Session,
    VariableRecord,
)
from ipysession.store import SessionStore, fileformat, problems_of
from ipysession.store.fileformat import HEADER_SIZE, decode_blob, decode_session, encode_blob

KEY = MasterKey(bytes(range(32)), description="test key")
OTHER_KEY = MasterKey(bytes(range(1, 33)), description="other test key")
SECRET = "pl4nted-s3cret-9f8e7d"


def small_session(name: str = "fmt") -> Session:
    return Session(
        name=name,
        history=[HistoryEntry("x = 1", 1, 1.0)],
        variables={"x": VariableRecord("x", "int", 5, encoding="pickle", data=b"\x80\x04K\x01.")},
    )


SMALL_FILE = fileformat.encode_session(small_session().to_dict(), KEY)
SMALL_BLOB = encode_blob(b"value bytes " * 4, KEY)


# --- round trip ---------------------------------------------------------------------------------


def test_round_trip() -> None:
    session = small_session()
    data = fileformat.encode_session(session.to_dict(), KEY)
    doc = decode_session(data, KEY)
    assert doc.pop("format") == fileformat.FORMAT_VERSION
    assert Session.from_dict(doc) == session
    value = os.urandom(5000)
    assert decode_blob(encode_blob(value, KEY), KEY, expected_id=KEY.content_id(value)) == value
    compressible = b"abc" * 100_000
    blob = encode_blob(compressible, KEY)
    assert len(blob) < len(compressible) // 10
    assert decode_blob(blob, KEY) == compressible


def test_every_write_uses_a_fresh_nonce() -> None:
    one = fileformat.encode_session(small_session().to_dict(), KEY)
    two = fileformat.encode_session(small_session().to_dict(), KEY)
    assert fileformat.read_header(one).nonce != fileformat.read_header(two).nonce
    assert one[HEADER_SIZE:] != two[HEADER_SIZE:]


def test_a_blob_is_not_a_session_and_back() -> None:
    with pytest.raises(CorruptFile, match="blob"):
        decode_session(SMALL_BLOB, KEY)
    with pytest.raises(CorruptFile, match="session file"):
        decode_blob(SMALL_FILE, KEY)


def test_a_swapped_blob_is_refused() -> None:
    with pytest.raises(CorruptFile, match="swapped"):
        decode_blob(SMALL_BLOB, KEY, expected_id=KEY.content_id(b"something else"))


# --- single-byte changes ------------------------------------------------------------------------


def expected_error(original: bytes, offset: int, changed: int) -> type[SessionError]:
    """What changing byte ``offset`` to ``changed`` must give."""
    if 8 <= offset < 10:
        version = int.from_bytes(
            (original[:offset] + bytes([changed]) + original[offset + 1 :])[8:10], "big"
        )
        # Only a version a little ahead of ours reads as a newer release's; anything else in
        # the version field is damage (a random header once said "upgrade ipysession").
        newer = fileformat.FORMAT_VERSION < version <= fileformat.FORMAT_VERSION + 16
        return NewerFormat if newer else CorruptFile
    if 12 <= offset < 20:
        # The key id names the key that sealed the file. A changed key id matches no key we
        # hold, and from the header alone that is indistinguishable from a file sealed under
        # another key, so it is reported as a wrong key. It still never decrypts: the key id is
        # part of the associated data too.
        return WrongKey
    # Magic, flags, salt, nonce, ciphertext, tag: wrong magic, wrong kind or failed
    # authentication, all reported as a corrupt file.
    return CorruptFile


@pytest.mark.parametrize(
    ("original", "decode"), [(SMALL_FILE, decode_session), (SMALL_BLOB, decode_blob)]
)
def test_flipping_any_single_byte_fails_closed(original: bytes, decode: Any) -> None:
    assert len(original) < 400  # small enough to try every offset
    tried = 0
    for offset in range(len(original)):
        for mask in (0x01, 0x80, 0xFF):
            changed = original[offset] ^ mask
            damaged = original[:offset] + bytes([changed]) + original[offset + 1 :]
            expected = expected_error(original, offset, changed)
            with pytest.raises(SessionError) as info:
                decode(damaged, KEY)
            assert type(info.value) is expected, (offset, mask, info.value)
            tried += 1
    assert tried == 3 * len(original)


def test_every_truncation_fails_closed() -> None:
    for length in range(len(SMALL_FILE)):
        with pytest.raises(CorruptFile):
            decode_session(SMALL_FILE[:length], KEY)
    with pytest.raises(CorruptFile):
        decode_session(SMALL_FILE + b"\0", KEY)


# --- keys and versions --------------------------------------------------------------------------


def test_wrong_key_is_reported_as_wrong_key() -> None:
    with pytest.raises(WrongKey) as info:
        decode_session(SMALL_FILE, OTHER_KEY)
    message = str(info.value)
    assert "different key" in message
    assert "corrupt" not in message.lower()
    assert "damaged" not in message.lower()
    assert "other test key" in message  # names the key in use, never its bytes
    assert bytes(range(1, 33)).hex() not in message


def newer_file(version: int) -> bytes:
    """A well-formed file of a future format version, sealed under KEY."""
    raw, salt, key_id = KEY.for_writing()
    header = fileformat.Header(
        version, fileformat.FLAG_COMPRESSED, key_id, salt, crypto.new_nonce()
    )
    packed = header.pack()
    return packed + crypto.seal(raw, header.nonce, b"x\x9c\x03\x00\x00\x00\x00\x01", packed)


def test_newer_version_names_both_versions() -> None:
    with pytest.raises(NewerFormat) as info:
        decode_session(newer_file(7), KEY)
    assert info.value.found == 7
    assert info.value.supported == fileformat.FORMAT_VERSION
    message = str(info.value)
    assert "version 7" in message
    assert f"version {fileformat.FORMAT_VERSION}" in message


def sealed(payload: bytes, flags: int = fileformat.FLAG_COMPRESSED) -> bytes:
    """An authentic file (sealed under KEY) around an arbitrary payload."""
    raw, salt, key_id = KEY.for_writing()
    header = fileformat.Header(1, flags, key_id, salt, crypto.new_nonce())
    packed = header.pack()
    return packed + crypto.seal(raw, header.nonce, payload, packed)


@pytest.mark.parametrize(
    ("payload", "flags", "message"),
    [
        (zlib.compress(json.dumps({"format": 2, "name": "x"}).encode()), 1, "says format 2"),
        (b"not zlib at all", 1, "does not decompress"),
        (zlib.compress(b"{not json"), 1, "not valid JSON"),
        (zlib.compress(b"\xff\xfe"), 1, "not valid JSON"),
        (zlib.compress(b"[1, 2]"), 1, "not a JSON object"),
        (b"[1, 2]", 0, "not a JSON object"),
        (zlib.compress(b"{}"), 1 | 0x100, "flags"),
    ],
)
def test_authentic_but_malformed_payloads_are_corrupt(
    payload: bytes, flags: int, message: str
) -> None:
    with pytest.raises(CorruptFile, match=message):
        decode_session(sealed(payload, flags), KEY)


# --- never unpickle before authentication -------------------------------------------------------


class _Evil:
    """Unpickling this creates the marker file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (open, (str(self.marker), "w"))


def _flip_last_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[-1] ^= 0x01  # inside the GCM tag
    path.write_bytes(bytes(data))


def test_malicious_pickle_with_bad_tag_is_never_unpickled(tmp_path: Path) -> None:
    marker = tmp_path / "unpickled-marker"
    payload = pickle.dumps(_Evil(marker))
    # The payload is live: unpickling it does create the marker.
    pickle.loads(payload).close()
    assert marker.exists()
    marker.unlink()

    root = tmp_path / "store"
    big_payload = payload + b"\0" * 100  # still a valid pickle prefix, stored as a blob
    session = Session(
        name="evil",
        variables={
            "inline": VariableRecord(
                "inline", "object", len(payload), encoding="pickle", data=payload
            ),
            "blob": VariableRecord(
                "blob", "object", len(big_payload), encoding="pickle", data=big_payload
            ),
        },
    )
    with SessionStore(root, key=KEY, blob_threshold=len(payload)) as store:
        written = store.write(session)
        blob_id = store.read("evil").session.variables["blob"].blob
        assert blob_id is not None
        # Reading a valid file hands back bytes and never unpickles either.
        assert store.read_blob("evil", blob_id) == big_payload
        assert not marker.exists()

        blob_path = root / "sessions" / written.path.parent.name / "blobs" / f"{blob_id}.ipyb"
        _flip_last_byte(written.path)
        _flip_last_byte(blob_path)

        with pytest.raises(CorruptFile) as info:
            store.read("evil")
        assert [p.kind for p in problems_of(info.value)] == ["corrupt"]
        with pytest.raises(CorruptFile):
            store.read_blob("evil", blob_id)
    assert not marker.exists()
    quarantined = sorted(p.name for p in (root / "quarantine").rglob("*") if p.is_file())
    assert len(quarantined) == 2
    assert any(name.startswith("gen-00000001.ipys.") for name in quarantined)
    assert any(name.startswith(f"{blob_id}.ipyb.") for name in quarantined)
    assert not written.path.exists()
    assert not blob_path.exists()


# --- fuzzing ------------------------------------------------------------------------------------


def _decode_all(data: bytes) -> None:
    for decode in (decode_session, decode_blob):
        with contextlib.suppress(SessionError):
            decode(data, KEY)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400))
def test_random_bytes_only_raise_session_errors(data: bytes) -> None:
    _decode_all(data)
    _decode_all(fileformat.MAGIC + data)
    _decode_all(SMALL_FILE[:HEADER_SIZE] + data)


_mutation = st.one_of(
    st.tuples(st.just("flip"), st.integers(0, 10_000), st.integers(1, 255)),
    st.tuples(st.just("insert"), st.integers(0, 10_000), st.binary(min_size=1, max_size=8)),
    st.tuples(st.just("delete"), st.integers(0, 10_000), st.integers(1, 16)),
    st.tuples(st.just("truncate"), st.integers(0, 10_000), st.just(0)),
)


def _mutate(data: bytes, mutations: list[tuple[str, int, Any]]) -> bytes:
    for kind, position, arg in mutations:
        at = position % (len(data) + 1)
        if kind == "flip" and data:
            at %= len(data)
            data = data[:at] + bytes([data[at] ^ arg]) + data[at + 1 :]
        elif kind == "insert":
            data = data[:at] + arg + data[at:]
        elif kind == "delete":
            data = data[:at] + data[at + arg :]
        elif kind == "truncate":
            data = data[:at]
    return data


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from([SMALL_FILE, SMALL_BLOB]), st.lists(_mutation, min_size=1, max_size=4))
def test_mutated_files_only_raise_session_errors(
    original: bytes, mutations: list[tuple[str, int, Any]]
) -> None:
    mutated = _mutate(original, mutations)
    if mutated == original:
        return
    for decode in (decode_session, decode_blob):
        with pytest.raises(SessionError):
            decode(mutated, KEY)


# --- secrets ------------------------------------------------------------------------------------


def _secret_forms() -> list[bytes]:
    raw = SECRET.encode()
    return [
        raw,
        base64.b64encode(raw),
        SECRET.encode("utf-16-le"),
        raw.hex().encode(),
    ]


def test_a_planted_secret_never_reaches_disk_logs_or_errors(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="ipysession")
    session = Session(
        name="secretive",
        preferences=Preferences(env={"API_TOKEN": SECRET}),
        connections={
            "db": ConnectionRecord(
                name="db", kind="sqlalchemy", params={"host": "db"}, secrets={"password": SECRET}
            )
        },
        variables={
            "big": VariableRecord("big", "bytes", 1, encoding="pickle", data=os.urandom(100_000))
        },
    )
    texts: list[str] = []
    root = tmp_path / "store"
    with SessionStore(root, key=KEY) as store:
        for _ in range(3):
            texts.append(repr(store.write(session)))
        result = store.read("secretive")
        assert result.session.connections["db"].secrets == {"password": SECRET}
        assert result.session.preferences.env == {"API_TOKEN": SECRET}
        texts += [repr(result), repr(store.list()), repr(store.generations("secretive"))]
        store.checkpoint("secretive", "cp")
    with SessionStore(root, key=OTHER_KEY) as wrong, pytest.raises(WrongKey) as info:
        wrong.read("secretive")
    texts.append(str(info.value))
    texts += [p.message for p in problems_of(info.value)]

    files = [p for p in root.rglob("*") if p.is_file()]
    assert len(files) >= 5
    for path in files:
        content = path.read_bytes()
        for form in _secret_forms():
            assert form not in content, path
    for text in [*texts, caplog.text]:
        assert SECRET not in text


# --- passphrase keys ----------------------------------------------------------------------------


def test_passphrase_keys_work_and_derive_once_per_salt(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_scrypt = crypto.Scrypt
    derived: list[bytes] = []

    def counting_scrypt(*, salt: bytes, **kwargs: Any) -> Any:
        derived.append(salt)
        return real_scrypt(salt=salt, **kwargs)

    monkeypatch.setattr(crypto, "Scrypt", counting_scrypt)

    writer = PassphraseKey("correct horse battery staple")
    big = os.urandom(100_000)
    with SessionStore(tmp_path, key=writer) as store:
        for i in range(3):
            session = small_session("pp")
            session.variables["big"] = VariableRecord(
                "big", "bytes", len(big), encoding="pickle", data=big
            )
            session.history.append(HistoryEntry(f"y = {i}", i + 2, 2.0))
            store.write(session)
    assert len(derived) == len(set(derived)) == 2  # content-id salt + this process's write salt

    derived.clear()
    reader = PassphraseKey("correct horse battery staple")
    with SessionStore(tmp_path, key=reader) as store:
        for _ in range(3):
            result = store.read("pp")
            blob_id = result.session.variables["big"].blob
            assert blob_id is not None
            assert store.read_blob("pp", blob_id) == big
        assert [g.problem for g in store.generations("pp")] == [None, None, None]
    assert len(derived) == len(set(derived)) == 2  # content-id salt + the writer's salt

    data = next(tmp_path.rglob("gen-*.ipys")).read_bytes()
    assert fileformat.read_header(data).uses_passphrase
    with pytest.raises(WrongKey, match="passphrase") as info:
        decode_session(data, PassphraseKey("wrong passphrase"))
    assert "IPYSESSION_PASSPHRASE" in str(info.value)


# --- junk headers and decompression bombs -------------------------------------------------------


def test_junk_after_the_magic_is_corrupt_not_a_newer_version() -> None:
    # Random bytes after our magic once read as "format version 44672 is newer ... upgrade".
    junk = fileformat.MAGIC + (44672).to_bytes(2, "big") + os.urandom(HEADER_SIZE + 6)
    with pytest.raises(CorruptFile, match="damaged header") as info:
        decode_session(junk, KEY)
    assert "upgrade" not in str(info.value).lower()
    # The same version field in a header a newer release could have written is still "newer".
    near = fileformat.FORMAT_VERSION + fileformat.NEWER_WINDOW
    assert isinstance(_error_of(newer_file(near)), NewerFormat)
    assert isinstance(_error_of(newer_file(near + 1)), CorruptFile)
    # Unknown high flag bits, or a salt without the passphrase flag: no release writes those.
    plausible = bytearray(newer_file(fileformat.FORMAT_VERSION + 1))
    plausible[10:12] = (0x0101).to_bytes(2, "big")
    assert isinstance(_error_of(bytes(plausible)), CorruptFile)
    salted = bytearray(newer_file(fileformat.FORMAT_VERSION + 1))
    salted[20] = 1
    assert isinstance(_error_of(bytes(salted)), CorruptFile)


def _error_of(data: bytes) -> SessionError:
    with pytest.raises(SessionError) as info:
        decode_session(data, KEY)
    return info.value


def bomb(inflated: int, *, version: int = fileformat.FORMAT_VERSION) -> bytes:
    """An authentic session file whose payload inflates to ``inflated`` bytes of JSON."""
    raw, salt, key_id = KEY.for_writing()
    header = fileformat.Header(
        version, fileformat.FLAG_COMPRESSED, key_id, salt, crypto.new_nonce()
    )
    packed = header.pack()
    inflater = zlib.compressobj(9)
    prefix = b'{"format":%d,"name":"nb","pad":"' % version
    chunks = [inflater.compress(prefix)]
    block = b"a" * (1 << 20)
    for _ in range(inflated // len(block)):
        chunks.append(inflater.compress(block))
    chunks.append(inflater.compress(b'"}') + inflater.flush())
    return packed + crypto.seal(raw, header.nonce, b"".join(chunks), packed)


def test_a_decompression_bomb_is_refused_at_the_limit_without_inflating_it(
    tmp_path: Path,
) -> None:
    import tracemalloc

    data = bomb(256 << 20)  # about 256 KB on disk, 256 MiB inflated
    assert len(data) < 1 << 20
    path = tmp_path / "gen-00000001.ipys"
    tracemalloc.start()
    try:
        with pytest.raises(CorruptFile) as info:
            decode_session(data, KEY, path=path, limit=1 << 20)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 8 << 20  # bounded by the limit, not by what the bomb would inflate to
    message = str(info.value)
    assert "1,048,576 bytes" in message
    assert str(path) in message
    # Under the limit the same kind of file reads (and is rejected only for being no session).
    assert decode_session(bomb(2 << 20), KEY, limit=4 << 20)["name"] == "nb"


def test_a_bomb_as_the_newest_generation_falls_back_to_the_previous(tmp_path: Path) -> None:
    with SessionStore(tmp_path / "root", key=KEY, max_document_bytes=1 << 20) as store:
        store.write(small_session("nb"))
        store.write(small_session("nb"))
        newest = store.session_dir("nb") / "gen-00000002.ipys"
        newest.write_bytes(bomb(64 << 20))
        result = store.read("nb")
        assert result.generation == 1
        [problem] = result.problems
        assert problem.kind == "corrupt"
        assert "limit of 1,048,576 bytes" in problem.message
        assert problem.quarantined_to is not None


def test_out_of_memory_while_decoding_is_a_damaged_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with SessionStore(tmp_path / "root", key=KEY) as store:
        noise = base64.b64encode(os.urandom(30_000)).decode()  # stored uncompressed
        first = store.write(Session(name="nb", history=[HistoryEntry(noise, 1, 1.0)])).path
        store.write(Session(name="nb", history=[HistoryEntry("y" * 100_000, 1, 1.0)]))
        newest = store.session_dir("nb") / "gen-00000002.ipys"
        assert fileformat.read_header(newest.read_bytes()).flags & fileformat.FLAG_COMPRESSED
        assert not fileformat.read_header(first.read_bytes()).flags & fileformat.FLAG_COMPRESSED

        class Exhausted:
            def decompress(self, data: bytes, max_length: int) -> bytes:
                raise MemoryError

        monkeypatch.setattr(fileformat.zlib, "decompressobj", Exhausted)
        result = store.read("nb")  # never a MemoryError out of read
        assert result.generation == 1
        [problem] = result.problems
        assert problem.path == newest
        assert "memory" in problem.message
        assert problem.quarantined_to is not None


def test_a_document_over_the_limit_is_never_written(tmp_path: Path) -> None:
    with SessionStore(tmp_path / "root", key=KEY, max_document_bytes=64 * 1024) as store:
        store.write(small_session("nb"))
        big = Session(name="nb", history=[HistoryEntry(os.urandom(40_000).hex(), 1, 1.0)])
        with pytest.raises(StoreWriteError, match="over the limit of 65,536 bytes"):
            store.write(big)
        assert store.read("nb").generation == 1
