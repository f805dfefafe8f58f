"""SessionStore.rename: a renamed or moved notebook keeps its session.

Every file is bound to the session's name, so a rename re-seals each of them under the new name
into a directory beside the target and moves it into place whole. Crashes are injected by making
one step raise; afterwards the old session must still read as before.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ipysession.errors import SessionExists, SessionNotFound, StoreError, StoreWriteError
from ipysession.keys.crypto import MasterKey
from ipysession.store import SessionStore, fileformat, head, maintenance
from ipysession.store.disk import Disk
from ipysession.store.names import RENAMING_PREFIX, session_dir_for
from tests.builders import BIG, KEY, OTHER_KEY, make_session

OLD = "/home/me/proj/analysis.ipynb"
NEW = "/home/me/proj/renamed.ipynb"

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
# TEST KEY, published on purpose (see tests/fixtures/make_fixtures.py); it protects nothing.
FIXTURE_KEY = b"test key only, not a secret!!!!!"


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path / "root"


@pytest.fixture
def store(root: Path) -> Iterator[SessionStore]:
    with SessionStore(root, key=KEY, gc_grace=0) as s:
        yield s


def saved(store: SessionStore) -> str:
    """Session OLD with three generations, a checkpoint and a blob; returns its id."""
    store.write(make_session(OLD, cells=1, big=BIG, id="a" * 32))
    store.write(make_session(OLD, cells=2, big=BIG, id="a" * 32))
    store.checkpoint(OLD, "before-refactor")
    store.write(make_session(OLD, cells=3, big=BIG, id="a" * 32))
    return "a" * 32


def leftovers(root: Path) -> list[str]:
    return sorted(p.name for p in (root / "sessions").iterdir() if p.name.startswith("."))


def test_rename_keeps_values_history_checkpoints_blobs_and_the_id(store: SessionStore) -> None:
    session_id = saved(store)
    before = store.read(OLD)
    generations = [g.number for g in store.generations(OLD)]
    blob_id = before.session.variables["big"].blob
    assert blob_id is not None

    new_dir = store.rename(OLD, NEW)

    assert new_dir == store.session_dir(NEW)
    assert not store.exists(OLD)
    assert not store.session_dir(OLD).exists()
    after = store.read(NEW)
    assert after.problems == []
    assert after.rollback is None
    assert after.generation == before.generation
    assert after.session.name == NEW
    assert after.session.id == session_id
    assert [h.source for h in after.session.history] == [h.source for h in before.session.history]
    assert after.session.variables["x"].data == before.session.variables["x"].data
    assert after.session.variables["big"].blob == blob_id
    assert store.read_blob(NEW, blob_id) == BIG
    assert [g.number for g in store.generations(NEW)] == generations
    checkpoint = store.read(NEW, checkpoint="before-refactor")
    assert checkpoint.session.name == NEW
    assert [h.source for h in checkpoint.session.history] == ["cell 0", "cell 1"]
    for number in generations:
        assert store.read(NEW, generation=number).session.name == NEW
    assert leftovers(store.root) == []
    assert [s.name for s in store.list()] == [NEW]


def test_the_head_record_names_the_new_session_and_the_newest_generation(
    store: SessionStore,
) -> None:
    saved(store)
    newest = store.read(OLD).generation
    store.rename(OLD, NEW)
    sdir = store.session_dir(NEW)
    disk = Disk(store.root, key=KEY, lock_timeout=5, max_file_bytes=1 << 30)
    record = head.read_head(disk, sdir)
    assert record is not None
    assert record.session == NEW
    assert record.generation == newest
    # The renamed session keeps saving after the head, numbering on.
    written = store.write(make_session(NEW, cells=4, id="a" * 32))
    assert newest is not None
    assert written.generation == newest + 1


def test_rename_refuses_an_existing_target_and_changes_nothing(store: SessionStore) -> None:
    saved(store)
    store.write(make_session(NEW, cells=5))
    with pytest.raises(SessionExists, match="exists already"):
        store.rename(OLD, NEW)
    assert len(store.read(NEW).session.history) == 5
    assert len(store.read(OLD).session.history) == 3
    assert leftovers(store.root) == []


def test_rename_refuses_a_missing_session_and_the_same_name(store: SessionStore) -> None:
    saved(store)
    with pytest.raises(SessionNotFound):
        store.rename("/nowhere/missing.ipynb", NEW)
    with pytest.raises(StoreError, match="already has that name"):
        store.rename(OLD, OLD)
    assert not store.exists(NEW)
    assert store.read(OLD).session.name == OLD


@pytest.mark.parametrize("step", ["_link_blobs", "_reseal", "_move_into_place"])
def test_a_crash_before_the_new_directory_is_in_place_leaves_the_old_session(
    store: SessionStore, monkeypatch: pytest.MonkeyPatch, step: str
) -> None:
    saved(store)
    before = store.read(OLD)

    def crash(*_args: object, **_kwargs: object) -> None:
        raise OSError("injected crash")

    monkeypatch.setattr(maintenance, step, crash)
    with pytest.raises(OSError, match="injected crash"):
        store.rename(OLD, NEW)
    assert not store.exists(NEW)
    after = store.read(OLD)
    assert after.session == before.session
    assert after.generation == before.generation
    assert after.problems == []
    assert after.rollback is None
    assert store.read_blob(OLD, before.session.variables["big"].blob or "") == BIG
    assert leftovers(store.root) == []


def test_a_crash_after_the_move_leaves_both_readable(
    store: SessionStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    saved(store)
    before = store.read(OLD)

    def crash(self: Disk, sdir: Path, what: str) -> Path:
        raise StoreWriteError(f"Cannot {what}: injected crash", path=sdir)

    monkeypatch.setattr(Disk, "move_aside", crash)
    with pytest.raises(StoreWriteError, match="ipysession delete") as caught:
        store.rename(OLD, NEW)
    assert "saved under" in str(caught.value)
    assert store.read(OLD).session == before.session
    assert store.read(NEW).session.id == before.session.id


def test_a_leftover_of_a_killed_rename_is_removed_by_repair(
    store: SessionStore, monkeypatch: pytest.MonkeyPatch, root: Path
) -> None:
    saved(store)

    # A kill leaves the half-written directory: no clean-up runs.
    def killed(*_args: object, **_kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(maintenance, "_move_into_place", killed)
    monkeypatch.setattr(maintenance.shutil, "rmtree", lambda *_a, **_k: None)
    with pytest.raises(KeyboardInterrupt):
        store.rename(OLD, NEW)
    monkeypatch.undo()
    (leftover,) = leftovers(root)
    assert leftover.startswith(RENAMING_PREFIX)
    assert store.read(OLD).session.name == OLD
    assert [s.name for s in store.list()] == [OLD]

    # One younger than the grace period may be a rename under way: it stays.
    store.repair(grace=3600)
    assert leftovers(root) == [leftover]
    then = time.time() - 7200
    os.utime(root / "sessions" / leftover, (then, then))
    report = store.repair(grace=3600)
    assert leftovers(root) == []
    assert root / "sessions" / leftover in report.temp_files_removed
    assert store.read(OLD).session.name == OLD


def test_a_file_under_another_key_refuses_the_rename(store: SessionStore, root: Path) -> None:
    saved(store)
    with SessionStore(root, key=OTHER_KEY) as other:
        foreign = other.checkpoint(OLD, "theirs", make_session(OLD, cells=9))
    with pytest.raises(StoreError, match="nothing was renamed"):
        store.rename(OLD, NEW)
    assert foreign.exists()
    assert not store.exists(NEW)
    assert len(store.read(OLD).session.history) == 3
    assert leftovers(root) == []


def test_a_format_1_session_is_renamed_into_the_current_format(tmp_path: Path) -> None:
    key = MasterKey(FIXTURE_KEY, description="fixture test key")
    name = "fixtures/v1.ipynb"
    sdir = session_dir_for(tmp_path, name)
    (sdir / "blobs").mkdir(parents=True)
    shutil.copy(FIXTURES / "v1-session.ipys", sdir / "gen-00000001.ipys")
    blob_id = key.content_id(b"\x80\x04\x95" + bytes(range(256)) * 300)
    shutil.copy(FIXTURES / "v1-blob.ipyb", sdir / "blobs" / f"{blob_id}.ipyb")
    with SessionStore(tmp_path, key=key) as store:
        before = store.read(name).session
        store.rename(name, "fixtures/moved.ipynb")
        result = store.read("fixtures/moved.ipynb")
        assert result.generation == 1
        assert result.session.variables == before.variables
        assert result.session.history == before.history
        assert bytes(store.read_blob("fixtures/moved.ipynb", blob_id)).startswith(b"\x80\x04\x95")
        data = (store.session_dir("fixtures/moved.ipynb") / "gen-00000001.ipys").read_bytes()
        decoded = fileformat.open_session(data, key)
        assert decoded.doc["format"] == fileformat.FORMAT_VERSION
        assert decoded.binding == fileformat.Binding(generation=1)
        assert not store.exists(name)


def test_blobs_are_copied_where_hard_links_fail(
    store: SessionStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    saved(store)
    blob_id = store.read(OLD).session.variables["big"].blob
    assert blob_id is not None

    # Another device, or a filesystem without hard links (simulated: os.link fails so).
    def no_links(*_args: object, **_kwargs: object) -> None:
        raise OSError(18, "Invalid cross-device link")

    monkeypatch.setattr(maintenance.os, "link", no_links)
    store.rename(OLD, NEW)
    assert store.read_blob(NEW, blob_id) == BIG
