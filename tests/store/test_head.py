"""Generation names and rollbacks: a name decides nothing, each generation says which one it is,
and the sealed head record reports newest generations deleted or put back from an older copy."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from ipysession.keys import crypto
from ipysession.store import SessionStore, fileformat, head
from tests.builders import KEY, OTHER_KEY, make_session


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SessionStore]:
    with SessionStore(tmp_path / "root", key=KEY) as store:
        yield store


def saves(store: SessionStore, count: int) -> Path:
    """Generations 1..count of session "nb", generation N holding N history cells."""
    for cells in range(1, count + 1):
        assert store.write(make_session(cells=cells)).generation == cells
    return store.session_dir("nb")


def gen(sdir: Path, number: int) -> Path:
    return sdir / f"gen-{number:08d}.ipys"


def format_1_file(doc: dict[str, object]) -> bytes:
    """A file as format 1 wrote it (no binding), sealed under KEY."""
    raw, salt, key_id = KEY.for_writing()
    header = fileformat.Header(1, 0, key_id, salt, crypto.new_nonce()).pack()
    payload = json.dumps({**doc, "format": 1}).encode()
    return header + crypto.seal(raw, header[-12:], payload, header)


# --- names ----------------------------------------------------------------------------------------


def test_a_planted_eighteen_digit_name_never_decides_the_next_number(store: SessionStore) -> None:
    sdir = saves(store, 1)
    planted = sdir / "gen-999999999999999999.ipys"
    planted.write_bytes(os.urandom(64))  # no key needed to plant it
    problems = []
    for cells in range(2, 8):  # every acknowledged save is read back
        written = store.write(make_session(cells=cells))
        assert written.generation == cells
        assert written.path == gen(sdir, cells)
        result = store.read("nb")
        assert (result.generation, len(result.session.history)) == (cells, cells)
        problems += result.problems
    [problem] = problems  # reported once, then in quarantine
    assert problem.path == planted
    assert problem.kind == "corrupt"
    assert "no ipysession writes that name" in problem.message
    assert problem.quarantined_to is not None
    assert not planted.exists()


@pytest.mark.parametrize(
    "name",
    [
        "gen-1000000000000000000.ipys",
        "gen-9007199254740993.ipys",
        "gen-5.ipys",
        "gen-00000000.ipys",
    ],
)
def test_names_no_ipysession_writes_are_quarantined_and_never_counted(
    store: SessionStore, name: str
) -> None:
    sdir = saves(store, 2)
    shutil.copy(gen(sdir, 2), sdir / name)  # even an authentic file under such a name
    result = store.read("nb")
    assert result.generation == 2
    assert [p.path.name for p in result.problems] == [name]
    assert store.write(make_session(cells=3)).generation == 3


def test_long_names_are_scanned(store: SessionStore) -> None:
    sdir = saves(store, 1)
    # Nine digits is how generation 123456789 is named: listed and read (then refused, since
    # the file says it is generation 1).
    shutil.copy(gen(sdir, 1), sdir / "gen-123456789.ipys")
    [newest, first] = store.generations("nb")
    assert (newest.number, first.number) == (123456789, 1)
    assert newest.problem is not None
    assert "not generation 123456789" in newest.problem.message


def test_a_file_no_key_opens_never_decides_the_number(store: SessionStore) -> None:
    sdir = saves(store, 2)
    with SessionStore(store.root, key=OTHER_KEY) as other:
        other.write(make_session(cells=9))  # another key's generation 3, and its head record
    # Our head record is gone (overwritten by theirs): only our authentic generations count,
    # and the name taken by theirs is stepped over, never written over.
    assert store.write(make_session(cells=3)).path == gen(sdir, 4)
    assert gen(sdir, 3).exists()


# --- rollback -----------------------------------------------------------------------------------


def test_an_older_generation_copied_over_the_newest_is_a_substitution(store: SessionStore) -> None:
    sdir = saves(store, 3)
    shutil.copy(gen(sdir, 1), gen(sdir, 3))
    result = store.read("nb")
    assert result.generation == 2
    [problem] = result.problems
    assert problem.path == gen(sdir, 3)
    assert problem.kind == "corrupt"
    assert "holds generation 1 of this session, not generation 3" in problem.message
    assert "rollback or a substitution" in problem.message
    assert problem.quarantined_to is not None
    assert result.rollback is None  # generation 3 was there; its problem says what happened


def test_a_generation_renamed_to_a_newer_number_is_a_substitution(store: SessionStore) -> None:
    sdir = saves(store, 3)
    gen(sdir, 1).rename(gen(sdir, 9))
    result = store.read("nb")
    assert result.generation == 3
    assert [p.path for p in result.problems] == [gen(sdir, 9)]
    assert "not generation 9" in result.problems[0].message
    assert store.write(make_session(cells=4)).generation == 4  # 9 decided nothing


def test_deleting_the_newest_generations_is_reported(store: SessionStore) -> None:
    sdir = saves(store, 4)
    gen(sdir, 4).unlink()
    gen(sdir, 3).unlink()
    result = store.read("nb")
    assert result.generation == 2
    assert result.problems == []
    assert result.rollback is not None
    assert (result.rollback.head, result.rollback.used) == (4, 2)
    assert "generations 3-4" in result.rollback.message
    assert "rollback" in result.rollback.message
    assert str(sdir) in result.rollback.message
    assert store.rollback("nb") == result.rollback  # what doctor says, moving nothing
    # The next save is numbered after the head, never reusing a number, and ends the report.
    assert store.write(make_session(cells=5)).generation == 5
    assert store.read("nb").rollback is None


def test_the_directory_put_back_from_an_older_copy_is_reported(
    store: SessionStore, tmp_path: Path
) -> None:
    sdir = saves(store, 2)
    backup = tmp_path / "backup"
    shutil.copytree(sdir, backup)
    store.write(make_session(cells=3))
    for path in sdir.glob("gen-*"):
        path.unlink()
    for path in backup.glob("gen-*"):  # every generation put back, the head record not
        shutil.copy(path, sdir / path.name)
    result = store.read("nb")
    assert result.generation == 2
    assert result.rollback is not None
    assert result.rollback.head == 3
    assert "generation 3 is not in" in result.rollback.message.lower()


def test_a_replaced_newest_generation_with_its_own_number_is_reported(store: SessionStore) -> None:
    sdir = saves(store, 2)
    # Authentic, bound to generation 2, but not the file that was written as generation 2.
    doc = make_session(cells=7).to_dict()
    bound = fileformat.Binding(generation=2)
    gen(sdir, 2).write_bytes(fileformat.encode_session(doc, KEY, bound=bound))
    result = store.read("nb")
    assert result.generation == 2
    assert result.rollback is not None
    assert "digest differs" in result.rollback.message


def test_a_missing_head_record_is_reported_until_the_next_save(store: SessionStore) -> None:
    sdir = saves(store, 2)
    head.head_path(sdir).unlink()
    result = store.read("nb")
    assert result.generation == 2
    assert result.rollback is not None
    assert result.rollback.head is None
    assert "head record" in result.rollback.message
    assert "missing" in result.rollback.message
    store.write(make_session(cells=3))
    assert store.read("nb").rollback is None


def test_another_sessions_head_record_is_refused(store: SessionStore) -> None:
    sdir = saves(store, 2)
    store.write(make_session(name="other", cells=1))
    shutil.copy(head.head_path(store.session_dir("other")), head.head_path(sdir))
    result = store.read("nb")
    assert result.generation == 2
    [problem] = result.problems
    assert problem.path == head.head_path(sdir)
    assert "does not belong" in problem.message
    assert problem.quarantined_to is not None


def test_a_damaged_head_record_decides_nothing(store: SessionStore) -> None:
    sdir = saves(store, 2)
    head.head_path(sdir).write_bytes(os.urandom(200))
    result = store.read("nb")
    assert result.generation == 2
    assert [p.path for p in result.problems] == [head.head_path(sdir)]
    assert store.write(make_session(cells=3)).generation == 3


def test_a_format_1_file_above_the_head_is_not_taken_as_the_newest(store: SessionStore) -> None:
    sdir = saves(store, 2)
    old = format_1_file(make_session(cells=1).to_dict())  # an old, unbound generation
    gen(sdir, 5).write_bytes(old)
    result = store.read("nb")
    assert result.generation == 2
    [problem] = result.problems
    assert problem.path == gen(sdir, 5)
    assert "format 1" in problem.message
    assert store.write(make_session(cells=3)).generation == 3


def test_format_1_generations_below_the_head_still_read(store: SessionStore) -> None:
    sdir = store.session_dir("nb")
    sdir.mkdir(parents=True)
    gen(sdir, 1).write_bytes(format_1_file(make_session(cells=1).to_dict()))
    # A session written only in format 1: read as before, no head asked for.
    assert (store.read("nb").generation, store.read("nb").rollback) == (1, None)
    assert store.write(make_session(cells=2)).generation == 2
    assert len(store.read("nb", generation=1).session.history) == 1
    assert store.read("nb").rollback is None


def test_a_checkpoint_is_bound_to_its_label(store: SessionStore) -> None:
    sdir = saves(store, 2)
    store.checkpoint("nb", "one")
    (sdir / "checkpoints" / "one.ipys").rename(sdir / "checkpoints" / "two.ipys")
    with pytest.raises(fileformat.CorruptFile, match="checkpoint 'one'"):
        store.read("nb", checkpoint="two")
    shutil.copy(gen(sdir, 1), sdir / "checkpoints" / "three.ipys")
    with pytest.raises(fileformat.CorruptFile, match="generation 1 of this session"):
        store.read("nb", checkpoint="three")


def test_rekey_keeps_the_head_record_true(store: SessionStore) -> None:
    sdir = saves(store, 3)
    report = store.rekey(OTHER_KEY)
    assert report.problems == []
    with SessionStore(store.root, key=OTHER_KEY) as other:
        assert other.read("nb").rollback is None
        gen(sdir, 3).unlink()
        assert other.read("nb").rollback is not None  # the rekeyed head still names 3
