"""ipysession.atomic: a file replaced whole or not at all, and one named only once written."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from ipysession.atomic import TEMP_PREFIX, PendingFile, write_atomically


def _temps(folder: Path) -> list[Path]:
    return [p for p in folder.iterdir() if p.name.startswith(TEMP_PREFIX)]


def test_write_atomically_replaces_the_target_private_to_its_owner(tmp_path: Path) -> None:
    target = tmp_path / "file"
    target.write_bytes(b"old")
    st = write_atomically(target, b"new")
    assert target.read_bytes() == b"new"
    assert st.st_ino == target.stat().st_ino
    if os.name == "posix":
        assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert _temps(tmp_path) == []


def test_a_failing_writer_leaves_the_target_as_it_was_and_no_temporary_file(
    tmp_path: Path,
) -> None:
    target = tmp_path / "file"
    target.write_bytes(b"old")

    def fails_midway(f: object) -> None:
        f.write(b"half of the new")  # type: ignore[attr-defined]
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError, match="No space left"):
        write_atomically(target, fails_midway)
    assert target.read_bytes() == b"old"
    assert _temps(tmp_path) == []


def test_a_pending_file_is_named_once_written(tmp_path: Path) -> None:
    with PendingFile(tmp_path, ".ipyb") as pending:
        pending.file.write(b"content")
        (temporary,) = _temps(tmp_path)
        assert temporary.name.startswith(f"{TEMP_PREFIX}.ipyb.")
        st = pending.name_as(tmp_path / "named.ipyb")
    assert (tmp_path / "named.ipyb").read_bytes() == b"content"
    assert st.st_size == len(b"content")
    assert _temps(tmp_path) == []


def test_a_pending_file_left_unnamed_is_removed(tmp_path: Path) -> None:
    with PendingFile(tmp_path, "x") as pending:
        pending.file.write(b"content")
        pending.discard()
        pending.discard()  # safe twice
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(RuntimeError, match="interrupted"):
        _write_then_fail(tmp_path)
    assert list(tmp_path.iterdir()) == []


def _write_then_fail(folder: Path) -> None:
    with PendingFile(folder, "x") as pending:
        pending.file.write(b"content")
        msg = "interrupted"
        raise RuntimeError(msg)


def test_naming_over_an_existing_file_replaces_it_whole(tmp_path: Path) -> None:
    target = tmp_path / "named"
    target.write_bytes(b"previous")
    with PendingFile(tmp_path, "named") as pending:
        pending.file.write(b"next")
        assert target.read_bytes() == b"previous"  # untouched until it is named
        pending.name_as(target)
    assert target.read_bytes() == b"next"
