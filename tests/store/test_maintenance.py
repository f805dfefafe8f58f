"""Maintenance of the store (inspect, repair, rekey, share_blobs), through SessionStore's
methods of the same names as the command line and the manager call them."""

from __future__ import annotations

import os
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import filelock
import pytest

from ipysession.errors import CorruptFile, FileProblem, WrongKey
from ipysession.keys.crypto import MasterKey
from ipysession.model import VariableRecord
from ipysession.store import SessionStore, fileformat
from ipysession.store.names import session_dir_for
from tests.builders import BIG, KEY, OTHER_KEY, make_session
from tests.store.disk_helpers import age, blob_files, flip


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path / "root"


@pytest.fixture
def store(root: Path) -> Iterator[SessionStore]:
    with SessionStore(root, key=KEY, gc_grace=0) as s:
        yield s


# --- inspect and repair --------------------------------------------------------------------------


def test_inspect(store: SessionStore, root: Path) -> None:
    good = store.write(make_session(big=os.urandom(70_000))).path
    blob = next((store.session_dir("nb") / "blobs").iterdir())
    assert store.inspect(good) is None
    assert store.inspect(blob) is None
    flip(good)
    problem = store.inspect(good)
    assert isinstance(problem, FileProblem)
    assert problem.kind == "corrupt"
    assert good.exists()  # inspect moves nothing
    with SessionStore(root, key=OTHER_KEY) as other:
        wrong = other.inspect(blob)
    assert wrong is not None
    assert wrong.kind == "wrong-key"
    missing = store.inspect(root / "nope.ipys")
    assert missing is not None
    assert missing.kind == "unreadable"


def test_repair(store: SessionStore, root: Path) -> None:
    value = os.urandom(70_000)
    for cells in (1, 2, 3):
        store.write(make_session(cells=cells, big=value))
    sdir = store.session_dir("nb")
    blobs = sdir / "blobs"
    flip(sdir / "gen-00000001.ipys")
    stale = [sdir / ".tmp-gen-00000009.ipys.1.abcd", blobs / ".tmp-x.ipyb.1.abcd"]
    for path in stale:
        path.write_bytes(b"partial")
        age(path, 3600)
    fresh_tmp = sdir / ".tmp-gen-00000010.ipys.2.ef01"
    fresh_tmp.write_bytes(b"partial")
    orphan_value, young_value = os.urandom(70_000), os.urandom(70_000)
    orphan = blobs / f"{KEY.content_id(orphan_value)}.ipyb"
    orphan.write_bytes(fileformat.encode_blob(orphan_value, KEY))
    age(orphan, 3600)
    young = blobs / f"{KEY.content_id(young_value)}.ipyb"
    young.write_bytes(fileformat.encode_blob(young_value, KEY))
    trash = root / "sessions" / ".deleting-old-000000000000-1234"
    (trash / "blobs").mkdir(parents=True)

    report = store.repair(grace=600)
    assert [p.path.name for p in report.quarantined] == ["gen-00000001.ipys"]
    assert report.quarantined[0].quarantined_to is not None
    assert sorted(report.temp_files_removed) == sorted([trash, *stale])
    assert report.blobs_removed == [orphan]
    assert report.left_in_place == []
    assert report.sessions_skipped == []
    assert report.files_checked == 3 + 3 + 1  # generations, blobs (value, orphan, young), head
    assert fresh_tmp.exists()
    assert young.exists()
    assert not trash.exists()
    assert store.read_blob("nb", KEY.content_id(value)) == value
    assert store.read("nb").generation == 3

    again = store.repair(grace=600)
    assert again.quarantined == []
    assert again.blobs_removed == []


def test_repair_leaves_wrong_key_files_and_keeps_blobs_it_cannot_account_for(root: Path) -> None:
    with SessionStore(root, key=KEY) as store:
        store.write(make_session(big=os.urandom(70_000)))
    with SessionStore(root, key=OTHER_KEY) as other:
        other.checkpoint("nb", "theirs", make_session(big=os.urandom(70_000)))
        report = other.repair(grace=0)
        # Its own checkpoint is fine; our generation, blob and head record are under another key:
        # left alone, and no blob is collected since the other key's references cannot be read.
        assert sorted(p.kind for p in report.left_in_place) == ["wrong-key"] * 3
        assert report.quarantined == []
        assert report.blobs_removed == []
    assert len(list((store.session_dir("nb") / "blobs").iterdir())) == 2


def test_repair_skips_a_session_being_written(store: SessionStore) -> None:
    store.write(make_session())
    quick = SessionStore(store.root, key=KEY, lock_timeout=0.1)
    with filelock.FileLock(store.session_dir("nb") / "session.lock"):
        report = quick.repair()
    assert [p for p, _ in report.sessions_skipped] == [store.session_dir("nb")]


def test_repair_quarantines_a_damaged_blob(store: SessionStore) -> None:
    value = os.urandom(70_000)
    store.write(make_session(big=value))
    blob = store.session_dir("nb") / "blobs" / f"{KEY.content_id(value)}.ipyb"
    flip(blob, 100)
    report = store.repair()
    assert [p.path for p in report.quarantined] == [blob]
    assert not blob.exists()
    with pytest.raises(CorruptFile, match="missing"):
        store.read_blob("nb", KEY.content_id(value))


def test_inspect_never_holds_a_large_blob_s_ciphertext_whole(store: SessionStore) -> None:
    # `ipysession doctor` on a session of gigabytes: the blob is authenticated a chunk at a
    # time into the value's own memory (mapped, not the Python heap), never read whole first.
    value = os.urandom(24 * 1024 * 1024)
    store.write(make_session(big=value))
    path = store.session_dir("nb") / "blobs" / f"{KEY.content_id(value)}.ipyb"
    tracemalloc.start()
    try:
        assert store.inspect(path) is None
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < len(value) // 4


# --- rekey ----------------------------------------------------------------------------------------


def test_rekey_reencrypts_everything_and_renames_blobs(root: Path) -> None:
    values = {name: os.urandom(70_000) for name in ("a", "b")}
    with SessionStore(root, key=KEY) as store:
        for name, value in values.items():
            store.write(make_session(name=name, cells=1, big=value))
            store.write(make_session(name=name, cells=2, big=value))
            store.checkpoint(name, "cp")
        before = {name: store.read(name).session for name in values}
        report = store.rekey(OTHER_KEY)
        assert report.sessions == 2
        assert report.files_rewritten == 2 * 3
        assert report.blobs_rewritten == 2
        assert report.problems == []
        assert store.key is OTHER_KEY
    with SessionStore(root, key=OTHER_KEY) as new:
        for name, value in values.items():
            session = new.read(name).session
            new_id = OTHER_KEY.content_id(value)
            assert session.variables["big"].blob == new_id
            assert new.read_blob(name, new_id) == value
            assert blob_files(new, name) == [f"{new_id}.ipyb"]
            assert session.history == before[name].history
            assert new.read(name, checkpoint="cp").session.variables["big"].blob == new_id
    with SessionStore(root, key=KEY) as old, pytest.raises(WrongKey):
        old.read("a")
    for path in root.rglob("*.ipy?"):
        header = fileformat.read_header(path.read_bytes())
        assert header.key_id == OTHER_KEY.for_writing()[2]


def test_an_interrupted_rekey_stays_readable_and_can_be_finished(root: Path) -> None:
    value = os.urandom(70_000)
    with SessionStore(root, key=KEY) as store:
        store.write(make_session(cells=1, big=value))
        store.write(make_session(cells=2, big=value))
    # As if rekey had rewritten the newest generation and crashed: the key store now knows the
    # new key and still the old one.
    both = MasterKey(OTHER_KEY.raw, previous=(KEY.raw,))
    sdir = session_dir_for(root, "nb")
    newest = sdir / "gen-00000002.ipys"
    doc = fileformat.decode_session(newest.read_bytes(), KEY)
    doc["variables"]["big"]["blob"] = OTHER_KEY.content_id(value)
    doc.pop("format")
    bound = fileformat.Binding(generation=2)
    newest.write_bytes(fileformat.encode_session(doc, OTHER_KEY, bound=bound))
    (sdir / "blobs" / f"{OTHER_KEY.content_id(value)}.ipyb").write_bytes(
        fileformat.encode_blob(value, OTHER_KEY)
    )
    with SessionStore(root, key=both) as store:
        for generation in (1, 2):
            session = store.read("nb", generation=generation).session
            assert store.read_blob("nb", session.variables["big"].blob or "") == value
        report = store.rekey(both)
        assert report.problems == []
        assert blob_files(store, "nb") == [f"{OTHER_KEY.content_id(value)}.ipyb"]
    with SessionStore(root, key=OTHER_KEY) as new:
        for generation in (1, 2):
            session = new.read("nb", generation=generation).session
            assert new.read_blob("nb", session.variables["big"].blob or "") == value


def test_rekey_reports_what_it_cannot_reencrypt_and_keeps_old_blobs(root: Path) -> None:
    value, damaged_value = os.urandom(70_000), os.urandom(70_000)
    third = MasterKey(b"a third test key; public as well", description="third key")
    with SessionStore(root, key=KEY) as store:
        store.write(make_session(big=value))
        session = make_session(cells=2, big=value)
        session.variables["damaged"] = VariableRecord(
            "damaged", "bytes", 1, encoding="pickle", data=damaged_value
        )
        store.write(session)
    sdir = session_dir_for(root, "nb")
    flip(sdir / "blobs" / f"{KEY.content_id(damaged_value)}.ipyb", 100)
    with SessionStore(root, key=third) as foreign:
        foreign.checkpoint("nb", "foreign", make_session(cells=9))
    with SessionStore(root, key=KEY) as store:
        report = store.rekey(OTHER_KEY)
    kinds = sorted(p.kind for p in report.problems)
    assert kinds == ["corrupt", "wrong-key"]
    assert report.files_rewritten == 2
    # The foreign checkpoint may refer to old blob names: old blobs stay.
    assert (sdir / "blobs" / f"{KEY.content_id(value)}.ipyb").exists()
    assert (sdir / "blobs" / f"{OTHER_KEY.content_id(value)}.ipyb").exists()
    with SessionStore(root, key=OTHER_KEY) as new:
        got = new.read("nb").session
        assert new.read_blob("nb", got.variables["big"].blob or "") == value
        with pytest.raises(CorruptFile):
            new.read_blob("nb", got.variables["damaged"].blob or "")


# --- share_blobs ---------------------------------------------------------------------------------


def test_share_blobs_gives_a_fork_the_values_of_its_source(store: SessionStore) -> None:
    store.write(make_session(big=BIG))
    blob_id = KEY.content_id(BIG)
    missing_id = KEY.content_id(b"never stored")
    assert store.share_blobs("nb", "fork", [blob_id, blob_id, missing_id]) == 1
    assert store.read_blob("fork", blob_id) == BIG
    assert blob_files(store, "fork") == [f"{blob_id}.ipyb"]
    assert store.share_blobs("nb", "fork", [blob_id]) == 0  # already there
    assert store.share_blobs("nb", "fork", []) == 0
    # The fork's blob is not collected: a generation of the fork refers to it.
    fork = make_session(name="fork")
    fork.variables["big"] = VariableRecord(
        "big", "bytes", len(BIG), encoding="pickle", blob=blob_id
    )
    store.write(fork)
    assert store.read_blob("fork", blob_id) == BIG
