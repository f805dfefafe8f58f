"""Blobs: one check that a blob holds the value its name promises, on every path that reads one."""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from ipysession.errors import CorruptFile, FileProblem, ProblemKind
from ipysession.keys.crypto import MasterKey, PassphraseKey
from ipysession.model import VariableRecord
from ipysession.store import SessionStore, fileformat
from ipysession.store.blobs import check_blob_name
from tests.builders import KEY, OTHER_KEY, make_session

VALUE = b"a" * 100_000
OTHER_VALUE = b"b" * 100_000
MISMATCH = "does not match its name"


def _swapped(store: SessionStore) -> Path:
    """A session with two blobs, the file of the first replaced by the (authentic) second."""
    session = make_session(big=VALUE)
    session.variables["other"] = VariableRecord(
        "other", "bytes", len(OTHER_VALUE), encoding="pickle", data=OTHER_VALUE
    )
    store.write(session)
    blobs = store.session_dir("nb") / "blobs"
    swapped = blobs / f"{KEY.content_id(VALUE)}.ipyb"
    shutil.copyfile(blobs / f"{KEY.content_id(OTHER_VALUE)}.ipyb", swapped)
    return swapped


def _read_blob(store: SessionStore, path: Path) -> FileProblem | None:
    with pytest.raises(CorruptFile, match=MISMATCH) as info:
        store.read_blob("nb", KEY.content_id(VALUE))
    [problem] = info.value.problems
    return problem


def _inspect(store: SessionStore, path: Path) -> FileProblem | None:
    return store.inspect(path)


def _repair(store: SessionStore, path: Path) -> FileProblem | None:
    [problem] = store.repair().quarantined
    return problem


def _rekey(store: SessionStore, path: Path) -> FileProblem | None:
    [problem] = store.rekey(OTHER_KEY).problems
    return problem


@pytest.mark.parametrize("operation", [_read_blob, _inspect, _repair, _rekey])
def test_every_reader_refuses_a_blob_swapped_for_another(
    tmp_path: Path, operation: Callable[[SessionStore, Path], FileProblem | None]
) -> None:
    with SessionStore(tmp_path, key=KEY, gc_grace=0) as store:
        swapped = _swapped(store)
        problem = operation(store, swapped)
    assert problem is not None
    assert (problem.path, problem.kind) == (swapped, ProblemKind.CORRUPT)
    assert MISMATCH in problem.message


def test_a_write_does_not_reuse_a_swapped_blob(tmp_path: Path) -> None:
    with SessionStore(tmp_path, key=KEY, gc_grace=0) as store:
        swapped = _swapped(store)
    with SessionStore(tmp_path, key=KEY, gc_grace=0) as store:  # has not verified it yet
        assert store.write(make_session(cells=2, big=VALUE)).blobs_written == 1
        assert store.read_blob("nb", KEY.content_id(VALUE)) == VALUE
    [moved] = (tmp_path / "quarantine").rglob(f"{swapped.name}.*")
    assert moved.read_bytes() != swapped.read_bytes()


def _header(value: bytes, key: MasterKey | PassphraseKey) -> fileformat.Header:
    return fileformat.read_header(fileformat.encode_blob(value, key))


def test_check_blob_name(caplog: pytest.LogCaptureFixture) -> None:
    path = Path("blobs/x.ipyb")
    check_blob_name(path, VALUE, KEY.content_id(VALUE), _header(VALUE, KEY), KEY)
    with pytest.raises(CorruptFile, match=MISMATCH) as info:
        check_blob_name(path, VALUE, KEY.content_id(OTHER_VALUE), _header(VALUE, KEY), KEY)
    assert info.value.path == path
    passphrase = PassphraseKey("correct horse")
    wrong_id = passphrase.content_id(OTHER_VALUE)
    with pytest.raises(CorruptFile, match=MISMATCH):
        check_blob_name(path, VALUE, wrong_id, _header(VALUE, passphrase), passphrase)
    # Sealed under a previous master key (an interrupted rekey): its name is that key's content
    # id, which cannot be checked; accepted, and said so.
    both = MasterKey(OTHER_KEY.raw, previous=(KEY.raw,))
    with caplog.at_level(logging.WARNING, logger="ipysession"):
        check_blob_name(path, VALUE, KEY.content_id(VALUE), _header(VALUE, KEY), both)
    assert "sealed under a previous key" in caplog.text
