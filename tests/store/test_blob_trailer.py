"""Format 4: a blob seals its own id after its value, so a reader proves the name by
authenticating the file, without hashing the value again; older blobs are still hashed."""

from __future__ import annotations

import io
import os
import shutil
from pathlib import Path

import pytest

from ipysession.errors import CorruptFile, ProblemKind
from ipysession.keys.crypto import ContentHasher, MasterKey
from ipysession.model import VariableRecord
from ipysession.store import SessionStore, fileformat
from ipysession.store.blobs import SEAL_THEN_NAME_MIN
from tests.builders import KEY, make_session
from tests.store.disk_helpers import flip

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
MISMATCH = "does not match its name"

VALUES = {
    "small": os.urandom(100_000),
    "small-compressed": b"a" * 100_000,
    "large": os.urandom(SEAL_THEN_NAME_MIN + 12_345),
    "large-compressed": bytes(SEAL_THEN_NAME_MIN + 12_345),
}


class NoHashingKey(MasterKey):
    """A key that refuses to hash: reading a blob with it proves the read hashed nothing."""

    def content_hasher(self) -> ContentHasher:
        msg = "a version 4 blob must not be hashed to be read"
        raise AssertionError(msg)

    def content_id(self, data: bytes | bytearray | memoryview) -> str:
        msg = "a version 4 blob must not be hashed to be read"
        raise AssertionError(msg)


def _blob(store: SessionStore, blob_id: str) -> Path:
    return store.session_dir("nb") / "blobs" / f"{blob_id}.ipyb"


@pytest.mark.parametrize("kind", list(VALUES))
def test_a_version_4_blob_round_trips_and_ends_with_its_id(tmp_path: Path, kind: str) -> None:
    value = VALUES[kind]
    blob_id = KEY.content_id(value)
    with SessionStore(tmp_path, key=KEY) as store:
        store.write(make_session(big=value))
        path = _blob(store, blob_id)
        data = path.read_bytes()
        header = fileformat.read_header(data)
        assert header.version == 4
        assert bool(header.flags & fileformat.FLAG_COMPRESSED) == kind.endswith("compressed")
        read = fileformat.read_blob(io.BytesIO(data), len(data), KEY, expected_id=blob_id)
        assert read.content_id == blob_id
        assert read.value == value
        assert not read.value.readonly
        assert fileformat.decode_blob(data, KEY, expected_id=blob_id) == value
    with SessionStore(tmp_path, key=KEY) as store:  # a fresh process: nothing verified yet
        assert store.read_blob("nb", blob_id) == value


@pytest.mark.parametrize("kind", ["small", "large-compressed"])
def test_reading_a_version_4_blob_never_hashes_it(tmp_path: Path, kind: str) -> None:
    value = VALUES[kind]
    with SessionStore(tmp_path, key=KEY) as store:
        store.write(make_session(big=value))
    blob_id = KEY.content_id(value)
    refusing = NoHashingKey(KEY.raw, description="a key that refuses to hash")
    with SessionStore(tmp_path, key=refusing) as store:
        assert store.read_blob("nb", blob_id) == value
    data = _blob_path(tmp_path, blob_id).read_bytes()
    read = fileformat.read_blob(io.BytesIO(data), len(data), refusing, expected_id=blob_id)
    assert read.value == value


def _blob_path(root: Path, blob_id: str) -> Path:
    [path] = root.rglob(f"{blob_id}.ipyb")
    return path


def _two_blobs(store: SessionStore, first: bytes, second: bytes) -> None:
    session = make_session(big=first)
    session.variables["other"] = VariableRecord(
        "other", "bytes", len(second), encoding="pickle", data=second
    )
    store.write(session)


@pytest.mark.parametrize("how", ["renamed", "swapped"])
def test_a_renamed_or_swapped_version_4_blob_fails_only_its_variable(
    tmp_path: Path, how: str
) -> None:
    first, second = os.urandom(SEAL_THEN_NAME_MIN), os.urandom(100_000)
    first_id, second_id = KEY.content_id(first), KEY.content_id(second)
    with SessionStore(tmp_path, key=KEY) as store:
        _two_blobs(store, first, second)
        target = _blob(store, first_id)
        if how == "renamed":
            target.unlink()
            _blob(store, second_id).rename(target)
        else:
            shutil.copyfile(_blob(store, second_id), target)
    refusing = NoHashingKey(KEY.raw, description="a key that refuses to hash")
    with SessionStore(tmp_path, key=refusing) as store:
        with pytest.raises(CorruptFile, match=MISMATCH) as caught:
            store.read_blob("nb", first_id)
        assert caught.value.problems  # quarantined, and the problem says where it went
        if how == "swapped":
            assert store.read_blob("nb", second_id) == second


def test_a_damaged_trailer_fails_authentication(tmp_path: Path) -> None:
    value = os.urandom(100_000)
    blob_id = KEY.content_id(value)
    with SessionStore(tmp_path, key=KEY) as store:
        store.write(make_session(big=value))
        path = _blob(store, blob_id)
        flip(path, offset=path.stat().st_size - 16 - 1)  # the trailer's last byte
        with pytest.raises(CorruptFile, match="authenticat"):
            store.read_blob("nb", blob_id)


def test_a_version_3_blob_is_still_verified_by_its_hash() -> None:
    # TEST KEY, published on purpose (see tests/fixtures/make_fixtures.py); it protects nothing.
    fixture_key = MasterKey(b"test key only, not a secret!!!!!", description="fixture test key")
    value = b"\x80\x04\x95" + bytes(range(256)) * 300  # the v3 fixture's, literally
    other = bytes(range(256)) * 400  # the v3 buffer fixture's
    data = (FIXTURES / "v3-blob.ipyb").read_bytes()
    assert fileformat.read_header(data).version == 3
    read = fileformat.read_blob(io.BytesIO(data), len(data), fixture_key)
    assert read.value == value
    assert read.content_id == fixture_key.content_id(value)
    with pytest.raises(CorruptFile, match=MISMATCH):
        fileformat.decode_blob(data, fixture_key, expected_id=fixture_key.content_id(other))
    with pytest.raises(CorruptFile, match=MISMATCH):
        fileformat.read_blob(
            io.BytesIO(data), len(data), fixture_key, expected_id=fixture_key.content_id(other)
        )


def test_inspect_proves_a_version_4_blob_by_its_trailer_without_hashing(tmp_path: Path) -> None:
    first, second = os.urandom(100_000), os.urandom(SEAL_THEN_NAME_MIN)
    first_id, second_id = KEY.content_id(first), KEY.content_id(second)
    with SessionStore(tmp_path, key=KEY) as store:
        _two_blobs(store, first, second)
    refusing = NoHashingKey(KEY.raw, description="a key that refuses to hash")
    with SessionStore(tmp_path, key=refusing) as store:  # what `ipysession doctor` runs
        assert store.inspect(_blob(store, first_id)) is None
        assert store.inspect(_blob(store, second_id)) is None
        renamed = _blob(store, second_id).rename(_blob(store, "ab" * 32))
        problem = store.inspect(renamed)
        assert problem is not None
        assert (problem.kind, problem.path) == (ProblemKind.CORRUPT, renamed)
        assert MISMATCH in problem.message


def test_inspect_still_hashes_a_version_3_blob(tmp_path: Path) -> None:
    # TEST KEY, published on purpose (see tests/fixtures/make_fixtures.py); it protects nothing.
    fixture_key = MasterKey(b"test key only, not a secret!!!!!", description="fixture test key")
    value = b"\x80\x04\x95" + bytes(range(256)) * 300  # the v3 fixture's, literally
    named = tmp_path / f"{fixture_key.content_id(value)}.ipyb"
    misnamed = tmp_path / f"{fixture_key.content_id(b'another value')}.ipyb"
    for path in (named, misnamed):
        shutil.copyfile(FIXTURES / "v3-blob.ipyb", path)
    with SessionStore(tmp_path / "root", key=fixture_key) as store:
        assert store.inspect(named) is None
        problem = store.inspect(misnamed)
    # No trailer: only hashing the value can tell the misnamed copy from the right one.
    assert problem is not None
    assert problem.kind == ProblemKind.CORRUPT
    assert MISMATCH in problem.message


class CountingKey(MasterKey):
    """Counts the bytes it hashes: what rekey spends on content ids."""

    hashed = 0

    def content_id(self, data: bytes | bytearray | memoryview) -> str:
        CountingKey.hashed += memoryview(data).nbytes
        return super().content_id(data)


def test_rekey_proves_version_4_names_by_their_trailers_and_hashes_once(tmp_path: Path) -> None:
    first, second = os.urandom(100_000), os.urandom(SEAL_THEN_NAME_MIN)
    with SessionStore(tmp_path, key=KEY) as store:
        _two_blobs(store, first, second)
        renamed = _blob(store, KEY.content_id(second)).rename(_blob(store, "ab" * 32))
    # The old key never hashes: each name is proven by the blob's authenticated trailer.
    old = NoHashingKey(KEY.raw, description="the old key, which refuses to hash")
    new = CountingKey(os.urandom(32), description="the new key")
    CountingKey.hashed = 0
    with SessionStore(tmp_path, key=old) as store:
        report = store.rekey(new)
    assert [(p.kind, p.path.name) for p in report.problems] == [(ProblemKind.CORRUPT, renamed.name)]
    assert MISMATCH in report.problems[0].message
    assert CountingKey.hashed == len(first)  # once under the new key, not twice
    with SessionStore(tmp_path, key=new) as store:
        blob = store.read("nb").session.variables["big"].blob
        assert blob == new.content_id(first)
        assert bytes(store.read_blob("nb", blob)) == first
