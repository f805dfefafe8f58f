"""SessionStore on real files with real keys: generations, blobs, quarantine, conflicts, faults.

Maintenance (inspect, repair, rekey, share_blobs) is in ``test_maintenance.py``.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import stat
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import filelock
import pytest

from ipysession.errors import (
    CorruptFile,
    LockTimeout,
    NewerFormat,
    SessionNotFound,
    StoreError,
    StoreWriteError,
    WriteConflict,
    WrongKey,
)
from ipysession.model import HistoryEntry, Session, VariableRecord
from ipysession.store import SessionStore, fileformat, problems_of
from ipysession.store.blobs import MISSING_BLOB
from ipysession.store.names import session_dir_for, slug_for
from ipysession.store.retention import Retention
from tests.builders import BIG, KEY, OTHER_KEY, make_session
from tests.store.disk_helpers import age, blob_files, flip, gen_files

MB = 1 << 20


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path / "root"


@pytest.fixture
def store(root: Path) -> Iterator[SessionStore]:
    with SessionStore(root, key=KEY, gc_grace=0) as s:
        yield s


# --- names and layout ---------------------------------------------------------------------------


def test_slugs_are_readable_safe_and_unique() -> None:
    assert slug_for("/home/ada/proj/analysis.ipynb").startswith("home-ada-proj-analysis.ipynb-")
    names = [
        "nb",
        "NB",
        "a/b",
        "a-b",
        "a b",
        "../../etc/passwd",
        "",
        "///",
        "x" * 500,
        "x" * 501,
        "naïve café.ipynb",
        "日本語",
        "CON",
        "con.txt",
        ".hidden",
    ]
    slugs = {}
    for name in names:
        if not name:
            with pytest.raises(StoreError, match="Invalid session name"):
                slug_for(name)
            continue
        slug = slug_for(name)
        assert slug == slug_for(name)  # stable
        assert len(slug) <= 60
        assert "/" not in slug
        assert "\\" not in slug
        assert not slug.startswith(".")
        assert slug.split(".")[0].upper() not in {"CON", "PRN", "AUX", "NUL"}
        slugs[slug.lower()] = name  # unique even on case-insensitive file systems
    assert len(slugs) == len(names) - 1
    assert slug_for("naïve café.ipynb").startswith("naive-cafe.ipynb-")
    assert slug_for("日本語").startswith("session-")


def test_layout_and_permissions(store: SessionStore, root: Path) -> None:
    big = os.urandom(100_000)
    result = store.write(make_session(big=big))
    store.checkpoint("nb", "first")
    sdir = session_dir_for(root, "nb")
    assert sdir == store.session_dir("nb")
    assert result.path == sdir / "gen-00000001.ipys"
    flip(result.path)
    store.write(make_session(cells=2, big=big))
    with pytest.raises(CorruptFile):
        store.read("nb", generation=1)
    blob_id = KEY.content_id(big)
    flip(sdir / "blobs" / f"{blob_id}.ipyb")
    with pytest.raises(CorruptFile):
        store.read_blob("nb", blob_id)

    quarantine = root / "quarantine" / slug_for("nb")
    dirs = [root, root / "sessions", sdir, sdir / "blobs", sdir / "checkpoints"]
    dirs += [root / "quarantine", quarantine, quarantine / "blobs"]
    for d in dirs:
        assert stat.S_IMODE(d.stat().st_mode) == 0o700, d
    files = [p for p in root.rglob("*") if p.is_file()]
    names = {p.name.split(".")[0] for p in files}
    assert {"session", "gen-00000002", "first"} <= names
    assert any(p.parent.name == "blobs" for p in files)
    assert any("quarantine" in p.parts for p in files)
    for f in files:
        assert stat.S_IMODE(f.stat().st_mode) == 0o600, f


# --- write, read, generations -------------------------------------------------------------------


def test_round_trip_keeps_small_values_inline_and_large_in_blobs(store: SessionStore) -> None:
    big = os.urandom(200_000)
    session = make_session(cells=3, big=big, connections=2)
    result = store.write(session)
    assert result.generation == 1
    assert result.blobs_written == 1
    assert result.bytes_written > 200_000
    assert result.merged is False

    read = store.read("nb")
    assert read.generation == 1
    assert read.problems == []
    got = read.session
    assert got.variables["x"].data == b"\x80\x04K\x01."
    big_record = got.variables["big"]
    assert big_record.data is None
    assert big_record.blob == KEY.content_id(big)
    assert store.read_blob("nb", big_record.blob) == big
    assert got.history == session.history
    assert got.connections == session.connections
    # The caller's session is not changed by externalizing.
    assert session.variables["big"].data == big


def test_generations_rotate(root: Path) -> None:
    with SessionStore(root, key=KEY, retention=Retention((), keep=3)) as store:
        for i in range(7):
            assert store.write(make_session(cells=i + 1)).generation == i + 1
        assert gen_files(store, "nb") == [f"gen-0000000{n}.ipys" for n in (5, 6, 7)]
        infos = store.generations("nb")
        assert [g.number for g in infos] == [7, 6, 5]
        assert [g.cells for g in infos] == [7, 6, 5]
        assert all(g.problem is None and g.variables == 1 for g in infos)
        assert infos[0].writer_kernel_id == "k1"
        assert infos[0].writer == f"host pid {os.getpid()}, kernel k1"
        assert infos[0].size == infos[0].path.stat().st_size


def test_an_unchanged_large_value_is_written_once(store: SessionStore) -> None:
    big = os.urandom(MB)
    first = store.write(make_session(cells=1, big=big))
    assert first.blobs_written == 1
    for cells in range(2, 7):
        result = store.write(make_session(cells=cells, big=big))
        assert result.blobs_written == 0
        assert result.bytes_written < 10_000
    assert blob_files(store, "nb") == [f"{KEY.content_id(big)}.ipyb"]
    # Two variables holding equal values share one blob too.
    twin = make_session(cells=7, big=big)
    twin.variables["twin"] = VariableRecord("twin", "bytes", MB, encoding="pickle", data=big)
    assert store.write(twin).blobs_written == 0
    assert len(blob_files(store, "nb")) == 1


def test_gc_never_deletes_a_blob_a_kept_generation_or_checkpoint_refers_to(root: Path) -> None:
    values = [os.urandom(70_000) for _ in range(5)]
    ids = [KEY.content_id(v) for v in values]
    with SessionStore(root, key=KEY, retention=Retention((), keep=2), gc_grace=0) as store:
        store.write(make_session(big=values[0]))
        store.checkpoint("nb", "with-0")
        for value in values[1:]:
            store.write(make_session(big=value))
        # Kept: generations 4 and 5 (values 3, 4) and the checkpoint (value 0).
        assert blob_files(store, "nb") == sorted(f"{ids[i]}.ipyb" for i in (0, 3, 4))
        checkpoint = store.read("nb", checkpoint="with-0").session
        assert store.read_blob("nb", checkpoint.variables["big"].blob or "") == values[0]
        for number in (4, 5):
            session = store.read("nb", generation=number).session
            assert store.read_blob("nb", session.variables["big"].blob or "") == values[number - 1]


def test_gc_respects_generations_written_by_another_process(root: Path) -> None:
    value = os.urandom(70_000)
    with SessionStore(root, key=KEY, retention=Retention((), keep=3), gc_grace=0) as other:
        other.write(make_session(big=value))
    # A fresh store has never seen that generation: it must read its references, not guess.
    with SessionStore(root, key=KEY, retention=Retention((), keep=3), gc_grace=0) as store:
        store.write(make_session(cells=2))
        store.write(make_session(cells=3))
        assert blob_files(store, "nb") == [f"{KEY.content_id(value)}.ipyb"]
        store.write(make_session(cells=4))  # generation 1 rotates away: now it may go
        assert blob_files(store, "nb") == []


def test_gc_leaves_young_unreferenced_blobs_alone(root: Path) -> None:
    # The default grace: 10 minutes.
    with SessionStore(root, key=KEY, retention=Retention((), keep=1)) as store:
        store.write(make_session(big=os.urandom(70_000)))
        store.write(make_session(big=os.urandom(70_000)))
        assert len(blob_files(store, "nb")) == 2  # the first is unreferenced but fresh
        for name in blob_files(store, "nb"):
            age(store.session_dir("nb") / "blobs" / name, 3600)
        store.write(make_session(cells=3, big=None))
        assert blob_files(store, "nb") == []


def test_a_dangling_blob_reference_is_not_fatal_and_never_written(store: SessionStore) -> None:
    # A generation never refers to a blob that is not on disk (issue 12): the variable is
    # written as skipped, and reported so the kernel can capture it again.
    session = make_session()
    session.variables["lost"] = VariableRecord(
        "lost", "bytes", 9, encoding="pickle", blob="ab" * 32
    )
    result = store.write(session)
    written = store.read("nb").session
    assert written.variables["lost"].blob is None
    assert written.variables["lost"].skipped == MISSING_BLOB
    assert written.variables["x"].saved
    assert result.lost_blobs == {"lost": "ab" * 32}
    assert result.generation == 1


def test_read_by_generation_and_checkpoint(store: SessionStore) -> None:
    for cells in (1, 2, 3):
        store.write(make_session(cells=cells))
    assert len(store.read("nb", generation=2).session.history) == 2
    path = store.checkpoint("nb", "v3")
    assert path.name == "v3.ipys"
    assert path.parent.name == "checkpoints"
    store.write(make_session(cells=4))
    read = store.read("nb", checkpoint="v3")
    assert read.generation is None
    assert len(read.session.history) == 3
    explicit = store.checkpoint("nb", "explicit", make_session(cells=9, big=os.urandom(70_000)))
    assert len(store.read("nb", checkpoint="explicit").session.history) == 9
    infos = store.checkpoints("nb")
    assert {i.label for i in infos} == {"v3", "explicit"}
    assert {i.cells for i in infos} == {3, 9}
    assert all(i.problem is None for i in infos)
    assert explicit in {i.path for i in infos}

    with pytest.raises(SessionNotFound, match="no generation 9"):
        store.read("nb", generation=9)
    with pytest.raises(SessionNotFound, match="no checkpoint 'nope'"):
        store.read("nb", checkpoint="nope")
    with pytest.raises(ValueError, match="not both"):
        store.read("nb", generation=1, checkpoint="v3")
    with pytest.raises(StoreError, match="already has a checkpoint"):
        store.checkpoint("nb", "v3")
    store.checkpoint("nb", "v3", overwrite=True)
    assert len(store.read("nb", checkpoint="v3").session.history) == 4


@pytest.mark.parametrize(
    "label", ["", "../x", "a/b", ".hidden", "-x", "CON", "nul.txt", "x" * 65, "end."]
)
def test_checkpoint_labels_are_safe_file_names(store: SessionStore, label: str) -> None:
    store.write(make_session())
    with pytest.raises(StoreError, match="Invalid checkpoint label"):
        store.checkpoint("nb", label)


def test_missing_session(store: SessionStore) -> None:
    assert not store.exists("ghost")
    for call in (
        lambda: store.read("ghost"),
        lambda: store.generations("ghost"),
        lambda: store.checkpoints("ghost"),
        lambda: store.delete("ghost"),
        lambda: store.read_blob("ghost", "ab"),
        lambda: store.checkpoint("ghost", "cp"),
    ):
        with pytest.raises(SessionNotFound, match="ghost"):
            call()
    assert store.list() == []


def test_a_session_is_found_by_its_slug(store: SessionStore) -> None:
    store.write(make_session(name="/work/deep/nb.ipynb"))
    slug = slug_for("/work/deep/nb.ipynb")
    assert store.exists(slug)
    assert store.read(slug).session.name == "/work/deep/nb.ipynb"


# --- quarantine and fallback --------------------------------------------------------------------


def test_a_corrupt_newest_generation_is_quarantined_and_the_previous_read(
    store: SessionStore, root: Path
) -> None:
    for cells in (1, 2, 3):
        store.write(make_session(cells=cells))
    newest = store.session_dir("nb") / "gen-00000003.ipys"
    flip(newest, 100)
    result = store.read("nb")
    assert result.generation == 2
    assert len(result.session.history) == 2
    [problem] = result.problems
    assert problem.kind == "corrupt"
    assert problem.path == newest
    assert "authentication" in problem.message
    assert not newest.exists()
    assert problem.quarantined_to is not None
    assert problem.quarantined_to.parent == root / "quarantine" / slug_for("nb")
    assert problem.quarantined_to.name.startswith("gen-00000003.ipys.")
    assert problem.quarantined_to.exists()
    # The next write continues after the newest written one (the head record names it), so the
    # quarantined file's number is never reused, and nothing is lost.
    assert store.write(make_session(cells=3)).generation == 4


def test_flipping_any_byte_of_the_newest_falls_back_to_the_previous(
    store: SessionStore, root: Path
) -> None:
    store.write(make_session(cells=1))
    good = store.write(make_session(cells=2)).path
    original = good.read_bytes()
    kinds: dict[str, int] = {}
    for offset in range(len(original)):
        damaged = bytearray(original)
        damaged[offset] ^= 0xFF
        good.write_bytes(bytes(damaged))
        result = store.read("nb")
        assert result.generation == 1, offset
        [problem] = result.problems
        kinds[problem.kind] = kinds.get(problem.kind, 0) + 1
        if problem.kind == "corrupt":
            assert not good.exists()
            assert problem.quarantined_to is not None
        else:  # wrong key (key id bytes): left in place
            assert good.exists()
            assert problem.quarantined_to is None
            good.unlink()
    # A version byte turned to 0xFF claims a version no release is near: damage, not "newer".
    assert kinds == {"corrupt": len(original) - 8, "wrong-key": 8}
    assert len(list((root / "quarantine").rglob("gen-*"))) == len(original) - 8


def test_wrong_key_files_are_left_in_place_and_reported(root: Path) -> None:
    with SessionStore(root, key=KEY) as store:
        store.write(make_session(cells=1))
        store.write(make_session(cells=2))
    with SessionStore(root, key=OTHER_KEY) as other:
        with pytest.raises(WrongKey) as info:
            other.read("nb")
        assert "different key" in str(info.value)
        # Both generations and the head record.
        assert [p.kind for p in problems_of(info.value)] == ["wrong-key"] * 3
        summary = other.list()[0]
        assert summary.name is None
        assert summary.problem is not None
        assert summary.problem.kind == "wrong-key"
        assert summary.generations == 2
    assert len(list(store.session_dir("nb").glob("gen-*"))) == 2
    assert not (root / "quarantine").exists()


def _make_newer(path: Path, version: int = 9) -> None:
    data = bytearray(path.read_bytes())
    data[8:10] = version.to_bytes(2, "big")
    path.write_bytes(bytes(data))


def test_newer_format_is_skipped_and_named(store: SessionStore) -> None:
    store.write(make_session(cells=1))
    newest = store.write(make_session(cells=2)).path
    _make_newer(newest)
    result = store.read("nb")
    assert result.generation == 1
    assert [p.kind for p in result.problems] == ["newer-format"]
    assert newest.exists()
    (store.session_dir("nb") / "gen-00000001.ipys").unlink()
    with pytest.raises(NewerFormat) as info:
        store.read("nb")
    assert info.value.found == 9
    assert info.value.supported == fileformat.FORMAT_VERSION
    assert "version 9" in str(info.value)


def test_nothing_readable_raises_the_most_telling_error(store: SessionStore, root: Path) -> None:
    for cells in (1, 2, 3):
        store.write(make_session(cells=cells))
    sdir = store.session_dir("nb")
    flip(sdir / "gen-00000001.ipys")
    flip(sdir / "gen-00000002.ipys")
    flip(sdir / "gen-00000003.ipys")
    with pytest.raises(CorruptFile) as info:
        store.read("nb")
    assert "No generation of session 'nb' could be read" in str(info.value)
    assert [p.kind for p in problems_of(info.value)] == ["corrupt"] * 3
    assert len(list((root / "quarantine").rglob("gen-*"))) == 3
    assert gen_files(store, "nb") == []

    # Wrong key beats corrupt: it says which key to use.
    with SessionStore(root, key=OTHER_KEY) as other:
        other.write(make_session(cells=1))
    store.write(make_session(cells=1))
    flip(sdir / "gen-00000002.ipys")
    with pytest.raises(WrongKey) as info2:
        store.read("nb")
    assert [p.kind for p in problems_of(info2.value)] == ["corrupt", "wrong-key"]


def test_a_generation_read_by_number_is_quarantined_when_corrupt(store: SessionStore) -> None:
    store.write(make_session(cells=1))
    store.write(make_session(cells=2))
    flip(store.session_dir("nb") / "gen-00000001.ipys")
    with pytest.raises(CorruptFile) as info:
        store.read("nb", generation=1)
    assert problems_of(info.value)[0].quarantined_to is not None
    assert store.read("nb").generation == 2


def test_an_authentic_file_of_another_session_is_not_accepted(store: SessionStore) -> None:
    store.write(make_session(name="a"))
    other = store.write(make_session(name="b", cells=5)).path
    shutil.copy(other, store.session_dir("a") / "gen-00000002.ipys")
    result = store.read("a")
    assert result.generation == 1
    assert result.session.name == "a"
    assert "does not belong" in result.problems[0].message


def test_unknown_files_and_junk_in_the_session_dir_are_ignored(store: SessionStore) -> None:
    store.write(make_session(cells=1))
    sdir = store.session_dir("nb")
    (sdir / "gen-00000009.ipys.bak").write_bytes(b"junk")
    (sdir / "notes.txt").write_text("hello")
    (sdir / "gen-00000005.ipys").write_bytes(b"")  # zero length
    (sdir / "gen-00000006.ipys").write_bytes(os.urandom(50_000))  # random junk
    result = store.read("nb")
    assert result.generation == 1
    assert sorted(p.kind for p in result.problems) == ["corrupt", "corrupt"]
    assert (sdir / "notes.txt").exists()


def test_a_swapped_or_missing_blob_only_fails_that_value(store: SessionStore) -> None:
    one, two = os.urandom(70_000), os.urandom(70_000)
    session = make_session(big=one)
    session.variables["two"] = VariableRecord("two", "bytes", 1, encoding="pickle", data=two)
    store.write(session)
    blobs = store.session_dir("nb") / "blobs"
    id_one, id_two = KEY.content_id(one), KEY.content_id(two)
    (blobs / f"{id_one}.ipyb").replace(blobs / f"{id_two}.ipyb")  # two's name, one's content
    with pytest.raises(CorruptFile, match="swapped") as info:
        store.read_blob("nb", id_two)
    assert problems_of(info.value)[0].quarantined_to is not None
    with pytest.raises(CorruptFile, match="missing"):
        store.read_blob("nb", id_one)
    with pytest.raises(CorruptFile, match="Invalid blob reference"):
        store.read_blob("nb", "../../gen-00000001")
    assert store.read("nb").session.variables["x"].data is not None


def test_rotation_moves_foreign_files_to_quarantine_instead_of_deleting(root: Path) -> None:
    with SessionStore(root, key=OTHER_KEY) as other:
        foreign = other.write(make_session(cells=1)).path
    with SessionStore(root, key=KEY, retention=Retention((), keep=2)) as store:
        store.write(make_session(cells=2))
        store.write(make_session(cells=3))
        assert not foreign.exists()
        assert len(list((root / "quarantine").rglob("gen-00000001.ipys.*"))) == 1
        assert store.read("nb").generation == 3


# --- concurrency --------------------------------------------------------------------------------


def test_write_conflict_without_merge(store: SessionStore) -> None:
    store.write(make_session(cells=1))
    base = store.read("nb").generation
    store.write(make_session(cells=2, kernel="other"))
    with pytest.raises(WriteConflict, match="another writer"):
        store.write(make_session(cells=5), base_generation=base)
    assert gen_files(store, "nb") == ["gen-00000001.ipys", "gen-00000002.ipys"]
    # Up to date: no conflict.
    assert store.write(make_session(cells=3), base_generation=2).merged is False


def test_merge_is_called_with_theirs_and_ours(store: SessionStore) -> None:
    store.write(make_session(cells=1))
    theirs_written = make_session(cells=2, kernel="other")
    theirs_written.variables["theirs"] = VariableRecord(
        "theirs", "int", 1, encoding="pickle", data=b"T"
    )
    store.write(theirs_written)
    ours = make_session(cells=1)
    ours.history.append(HistoryEntry("ours", 9, 9.0))
    calls: list[tuple[Session, Session]] = []

    def merge(theirs: Session, mine: Session) -> Session:
        calls.append((theirs, mine))
        merged = Session(name=mine.name, history=[*theirs.history, mine.history[-1]])
        merged.variables = {**theirs.variables, **mine.variables}
        return merged

    result = store.write(ours, base_generation=1, merge=merge)
    assert result.merged is True
    assert result.generation == 3
    [(theirs, mine)] = calls
    assert theirs.writer.kernel_id == "other"
    assert len(theirs.history) == 2
    assert mine is ours
    got = store.read("nb").session
    assert [h.source for h in got.history] == ["cell 0", "cell 1", "ours"]
    assert set(got.variables) == {"x", "theirs"}

    with pytest.raises(WriteConflict, match="named"):
        store.write(ours, base_generation=1, merge=lambda t, o: make_session(name="else"))


def test_lock_timeout(store: SessionStore) -> None:
    store.write(make_session())
    lock = filelock.FileLock(store.session_dir("nb") / "session.lock")
    quick = SessionStore(store.root, key=KEY, lock_timeout=0.2)
    with lock, pytest.raises(LockTimeout, match=r"for more than 0\.2 s") as info:
        quick.write(make_session(cells=2))  # gives up instead of waiting for the lock forever
    assert info.value.path == store.session_dir("nb") / "session.lock"
    assert quick.write(make_session(cells=2)).generation == 2


def test_concurrent_writers_in_threads_never_share_a_generation(root: Path) -> None:
    results: list[int] = []
    errors: list[BaseException] = []

    def writer(kernel: str) -> None:
        with SessionStore(root, key=KEY, keep=50) as own:
            for i in range(15):
                try:
                    results.append(own.write(make_session(cells=i, kernel=kernel)).generation)
                except BaseException as exc:  # pragma: no cover - reported below
                    errors.append(exc)

    threads = [threading.Thread(target=writer, args=(f"k{n}",)) for n in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert sorted(results) == list(range(1, 31))
    with SessionStore(root, key=KEY) as store:
        assert all(g.problem is None for g in store.generations("nb"))


# --- listing ------------------------------------------------------------------------------------


def test_list_summarizes_and_never_raises(store: SessionStore, root: Path) -> None:
    big = os.urandom(100_000)
    store.write(make_session(name="a", cells=2, big=big, connections=2))
    time.sleep(0.01)
    for cells in (1, 2, 3):
        store.write(make_session(name="b", cells=cells))
    store.write(make_session(name="broken"))
    flip(store.session_dir("broken") / "gen-00000001.ipys")
    (root / "sessions" / "empty-000000000000").mkdir()

    summaries = {s.slug: s for s in store.list()}
    a = summaries[slug_for("a")]
    assert a.name == "a"
    assert (a.variables, a.connections, a.generations, a.newest_readable) == (2, 2, 1, 1)
    gen_size = (store.session_dir("a") / "gen-00000001.ipys").stat().st_size
    blob_size = next((store.session_dir("a") / "blobs").iterdir()).stat().st_size
    assert a.size_bytes == gen_size + blob_size
    assert a.problem is None
    b = summaries[slug_for("b")]
    assert (b.name, b.generations, b.newest_readable, b.variables) == ("b", 3, 3, 1)
    broken = summaries[slug_for("broken")]
    assert broken.name is None
    assert broken.problem is not None
    assert broken.problem.kind == "corrupt"
    assert broken.newest_readable is None
    assert (store.session_dir("broken") / "gen-00000001.ipys").exists()  # list moves nothing
    empty = summaries["empty-000000000000"]
    assert empty.problem is not None
    assert empty.generations == 0
    ordered = [s.name for s in store.list() if s.name]
    assert ordered.index("b") < ordered.index("a")  # most recently updated first


def test_list_decodes_each_newest_generation_once_and_builds_no_session(
    root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # What keeps `ipysession list` fast however many sessions there are: a fresh store (as the
    # command line has) decodes only the newest generation of each session, reads only its
    # summary fields (no Session built, no history entry, no blob), and a second listing is
    # answered from memory.
    with SessionStore(root, key=KEY) as writer:
        for i in range(20):
            for cells in (1, 2, 3):
                writer.write(make_session(name=f"/home/u/nb{i}.ipynb", cells=cells, big=BIG))
    decoded: list[Path] = []
    real_decode = fileformat.open_session

    def counting_decode(data: bytes, key: object, *, path: Path | None, limit: int) -> object:
        assert path is not None
        decoded.append(path)
        return real_decode(data, key, path=path, limit=limit)  # type: ignore[arg-type]

    def no_session(*args: object, **kwargs: object) -> Session:
        raise AssertionError("list() built a whole session")

    def no_blob(*args: object, **kwargs: object) -> object:
        raise AssertionError("list() read a stored value")

    monkeypatch.setattr(fileformat, "open_session", counting_decode)
    monkeypatch.setattr(Session, "from_dict", no_session)
    monkeypatch.setattr(fileformat, "read_blob", no_blob)
    monkeypatch.setattr(fileformat, "decode_blob", no_blob)
    with SessionStore(root, key=KEY) as fresh:
        listed = fresh.list()
        assert len(listed) == 20
        assert all(s.newest_readable == 3 and s.variables == 2 for s in listed)
        assert sorted(decoded) == sorted(
            session_dir_for(root, s.name or "") / "gen-00000003.ipys" for s in listed
        )
        decoded.clear()
        assert fresh.list() == listed
        assert decoded == []


# --- delete and close -----------------------------------------------------------------------------


def test_delete(store: SessionStore, root: Path) -> None:
    store.write(make_session(name="keep"))
    store.write(make_session(big=os.urandom(70_000)))
    store.checkpoint("nb", "cp")
    assert store.exists("nb")
    assert store.delete("nb") == store.session_dir("nb")
    assert not store.exists("nb")
    assert not store.session_dir("nb").exists()
    assert [s.name for s in store.list()] == ["keep"]
    assert [p.name for p in (root / "sessions").iterdir()] == [slug_for("keep")]
    with pytest.raises(SessionNotFound):
        store.read("nb")
    with pytest.raises(SessionNotFound):
        store.delete("nb")
    assert store.write(make_session()).generation == 1  # a new life


def test_close_is_safe_twice_and_final(root: Path) -> None:
    store = SessionStore(root, key=KEY)
    store.write(make_session())
    store.close()
    store.close()
    with pytest.raises(StoreError, match="closed"):
        store.read("nb")
    with pytest.raises(StoreError, match="closed"):
        store.write(make_session())
    with pytest.raises(ValueError, match="keep"):
        SessionStore(root, key=KEY, keep=0)
    assert KEY.description in repr(SessionStore(root, key=KEY))


def test_default_root_comes_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("IPYSESSION_DIR", str(tmp_path / "env-root"))
    with SessionStore(key=KEY) as store:
        assert store.root == tmp_path / "env-root"
        assert store.quarantine_dir == tmp_path / "env-root" / "quarantine"


# --- real write faults (as root, permissions are no obstacle: use faults root cannot bypass) ----


def _assert_untouched(root: Path, name: str, generation: int) -> None:
    with SessionStore(root, key=KEY) as store:
        result = store.read(name)
        assert result.generation == generation
        assert result.problems == []
    leftovers = [p for p in root.rglob(".tmp-*")]
    assert leftovers == []


def test_a_directory_where_the_generation_should_be_is_stepped_over(store: SessionStore) -> None:
    store.write(make_session(cells=1))
    in_the_way = store.session_dir("nb") / "gen-00000002.ipys"
    in_the_way.mkdir()
    # Nothing that is there is ever written over: the next free number is used instead.
    assert store.write(make_session(cells=2)).generation == 3
    assert in_the_way.is_dir()
    assert len(store.read("nb").session.history) == 2


def test_a_file_where_the_session_dir_should_be(store: SessionStore, root: Path) -> None:
    store.write(make_session(name="other"))
    store.session_dir("nb").write_text("not a directory")
    with pytest.raises(StoreWriteError) as info:
        store.write(make_session())
    assert info.value.errno in (errno.EEXIST, errno.ENOTDIR)
    assert "in the way" in str(info.value)


def test_a_read_only_session_dir(store: SessionStore, root: Path) -> None:
    store.write(make_session(cells=1))
    sdir = store.session_dir("nb")
    # chattr +i makes a directory immutable even for root (ext4, xfs, btrfs).
    if (
        shutil.which("chattr") is None
        or subprocess.run(["chattr", "+i", str(sdir)], capture_output=True).returncode
    ):
        pytest.skip("chattr +i is not available here")
    try:
        with pytest.raises(StoreWriteError) as info:
            store.write(make_session(cells=2))
    finally:
        subprocess.run(["chattr", "-i", str(sdir)], check=True)
    assert info.value.errno in (errno.EPERM, errno.EACCES, errno.EROFS)
    assert f"Check permissions of {sdir}" in str(info.value)
    _assert_untouched(root, "nb", 1)


_FAULT_SCRIPT = textwrap.dedent(
    """
    import errno, json, os, resource, signal, sys
    from pathlib import Path
    from ipysession.keys.crypto import MasterKey
    from ipysession.errors import StoreWriteError
    from ipysession.model import HistoryEntry, Session, VariableRecord
    from ipysession.store import SessionStore

    root, fault = Path(sys.argv[1]), sys.argv[2]
    store = SessionStore(root, key=MasterKey(bytes.fromhex(sys.argv[3])))
    small = Session("nb")
    store.write(small)
    big = os.urandom(1 << 20)
    record = VariableRecord("big", "bytes", len(big), encoding="pickle", data=big)
    session = Session("nb", variables={"big": record})
    if fault == "fsize":
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (64 * 1024, resource.RLIM_INFINITY))
    elif fault == "full-disk-generation":
        with open(root / "filler", "wb", buffering=0) as f:
            try:
                while True:
                    f.write(b"x" * 4096)
            except OSError as exc:
                assert exc.errno == errno.ENOSPC
        session = Session("nb", history=[])
    outcome = {}
    try:
        store.write(session)
        outcome["error"] = None
    except StoreWriteError as exc:
        outcome = {"error": str(exc), "errno": exc.errno, "path": str(exc.path)}
    if fault == "fsize":
        resource.setrlimit(resource.RLIMIT_FSIZE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
    else:
        (root / "filler").unlink(missing_ok=True)
    # What is left: the previous generation, readable, and no temp file.
    after = SessionStore(root, key=store.key).read("nb")
    outcome["after"] = [after.generation, len(after.problems)]
    outcome["leftovers"] = [str(p) for p in root.rglob(".tmp-*")]
    print(json.dumps(outcome))
    """
)


def _run_fault(root: Path, fault: str, *, tmpfs: bool) -> dict[str, object]:
    command = [sys.executable, "-c", _FAULT_SCRIPT, str(root), fault, KEY.raw.hex()]
    if tmpfs:
        if shutil.which("unshare") is None:
            pytest.skip("unshare is not available")
        probe = subprocess.run(["unshare", "-m", "true"], capture_output=True)
        if probe.returncode:
            pytest.skip("cannot create a mount namespace here (needs root or user namespaces)")
        root.mkdir(parents=True)
        script = f'mount -t tmpfs -o size=512k,mode=0700 tmpfs "{root}" && exec "$@"'
        command = ["unshare", "-m", "sh", "-c", script, "sh", *command]
    done = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    outcome: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return outcome


def test_disk_full_while_writing_a_value(tmp_path: Path) -> None:
    outcome = _run_fault(tmp_path / "full", "full-disk-blob", tmpfs=True)
    assert outcome["errno"] == errno.ENOSPC
    assert "Free space" in str(outcome["error"])
    assert str(outcome["path"]).endswith(".ipyb")
    assert outcome["after"] == [1, 0]
    assert outcome["leftovers"] == []


def test_disk_full_while_writing_a_generation(tmp_path: Path) -> None:
    outcome = _run_fault(tmp_path / "full", "full-disk-generation", tmpfs=True)
    assert outcome["errno"] == errno.ENOSPC
    assert "Free space" in str(outcome["error"])
    assert str(outcome["path"]).endswith("gen-00000002.ipys")
    assert outcome["after"] == [1, 0]
    assert outcome["leftovers"] == []


def test_file_size_limit(root: Path) -> None:
    outcome = _run_fault(root, "fsize", tmpfs=False)
    assert outcome["errno"] == errno.EFBIG
    assert "file size limit" in str(outcome["error"])
    assert outcome["after"] == [1, 0]
    _assert_untouched(root, "nb", 1)


# --- less travelled paths -----------------------------------------------------------------------


def test_an_authentic_file_that_is_not_a_valid_session_is_corrupt(store: SessionStore) -> None:
    store.write(make_session(cells=1))
    bad = store.session_dir("nb") / "gen-00000002.ipys"
    doc = {"name": "nb", "history": "not a list"}
    bad.write_bytes(fileformat.encode_session(doc, KEY, bound=fileformat.Binding(generation=2)))
    summary = store.list()[0]
    assert summary.newest_readable == 1
    assert summary.problem is not None
    assert summary.problem.kind == "corrupt"
    [info2, info1] = store.generations("nb")
    assert info2.problem is not None
    assert info1.problem is None
    result = store.read("nb")
    assert result.generation == 1
    assert "does not hold a valid session" in result.problems[0].message
    assert result.problems[0].quarantined_to is not None


def test_a_blob_left_by_another_process_is_verified_once_then_reused(root: Path) -> None:
    value = os.urandom(MB)
    with SessionStore(root, key=KEY) as other:
        other.write(make_session(big=value))
    blob = session_dir_for(root, "nb") / "blobs" / f"{KEY.content_id(value)}.ipyb"
    inode = blob.stat().st_ino
    with SessionStore(root, key=KEY) as store:
        assert store.write(make_session(cells=2, big=value)).blobs_written == 0
        assert store.write(make_session(cells=3, big=value)).blobs_written == 0
    assert blob.stat().st_ino == inode
    # A damaged blob is not reused: it is quarantined and written again.
    flip(blob, 200)
    with SessionStore(root, key=KEY) as store:
        assert store.write(make_session(cells=4, big=value)).blobs_written == 1
        assert store.read_blob("nb", KEY.content_id(value)) == value
    assert len(list((root / "quarantine").rglob("*.ipyb.*"))) == 1


def test_merge_with_nothing_readable_on_disk_is_a_conflict(root: Path) -> None:
    with SessionStore(root, key=KEY) as store:
        store.write(make_session(cells=1))
    with SessionStore(root, key=OTHER_KEY) as other:
        other.write(make_session(cells=2))
    with SessionStore(root, key=OTHER_KEY) as other:
        flip(other.session_dir("nb") / "gen-00000002.ipys")
        with pytest.raises(WriteConflict, match="can be read to merge with") as info:
            other.write(make_session(cells=3), base_generation=1, merge=lambda t, o: o)
        assert sorted(p.kind for p in problems_of(info.value)) == ["corrupt", "wrong-key"]
        with pytest.raises(WrongKey):
            other.checkpoint("nb", "cp")
