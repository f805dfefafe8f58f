"""Opening files others may have planted (:mod:`ipysession.safe_open`): only regular files, no
symbolic link below the root, never more than the limit, and never a hang."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from ipysession import safe_open
from ipysession.errors import SessionError, UnsafeFile

posix_only = pytest.mark.skipif(os.name != "posix", reason="FIFOs and symlinks as on POSIX")

#: Bounds a regression (a blocking open) so that it fails instead of hanging the suite.
DEADLINE = 60.0


def finishes(call: Callable[[], object]) -> BaseException | object:
    """What ``call`` returned or raised, run in a daemon thread: a call still blocked at the
    deadline fails the test instead of hanging it."""
    outcome: list[object] = []

    def target() -> None:
        try:
            outcome.append(call())
        except BaseException as exc:  # handed to the test to assert on
            outcome.append(exc)

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(DEADLINE)
    assert outcome, f"still blocked after {DEADLINE:g} s"
    return outcome[0]


def test_a_regular_file_is_read_whole(tmp_path: Path) -> None:
    path = tmp_path / "a.json"
    path.write_bytes(b"hello")
    assert safe_open.read_regular(path, limit=5) == b"hello"
    assert safe_open.read_regular(path, limit=5, root=tmp_path) == b"hello"


def test_a_file_over_the_limit_is_refused_unread(tmp_path: Path) -> None:
    path = tmp_path / "big.json"
    path.write_bytes(b"123456")
    with pytest.raises(UnsafeFile) as caught:
        safe_open.read_regular(path, limit=5)
    assert caught.value.path == path
    assert "6 bytes" in str(caught.value)
    assert "Move it away" in str(caught.value)


def test_a_missing_file_is_file_not_found(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        safe_open.read_regular(tmp_path / "none", limit=10)
    with pytest.raises(FileNotFoundError):
        safe_open.read_regular(tmp_path / "no-dir" / "none", limit=10, root=tmp_path)


@posix_only
@pytest.mark.parametrize("with_root", [False, True])
def test_a_fifo_is_refused_without_blocking(tmp_path: Path, with_root: bool) -> None:
    fifo = tmp_path / "lease.json"
    os.mkfifo(fifo)
    root = tmp_path if with_root else None
    error = finishes(lambda: safe_open.read_regular(fifo, limit=1 << 20, root=root))
    assert isinstance(error, UnsafeFile)
    assert isinstance(error, SessionError)
    assert error.path == fifo
    message = str(error)
    assert "FIFO" in message
    assert str(fifo) in message
    assert "Move it away or remove it" in message


@posix_only
def test_a_device_is_refused_without_reading(tmp_path: Path) -> None:
    error = finishes(lambda: safe_open.read_regular(Path("/dev/zero"), limit=1 << 20))
    assert isinstance(error, UnsafeFile)
    assert "character device" in str(error)


def test_a_directory_is_refused(tmp_path: Path) -> None:
    with pytest.raises(UnsafeFile, match="a directory"):
        safe_open.read_regular(tmp_path, limit=10)


@posix_only
@pytest.mark.parametrize("with_root", [False, True])
def test_a_symlinked_file_is_never_followed(tmp_path: Path, with_root: bool) -> None:
    secret = tmp_path / "elsewhere.txt"
    secret.write_bytes(b"not yours")
    link = tmp_path / "master.key"
    link.symlink_to(secret)
    root = tmp_path if with_root else None
    with pytest.raises(UnsafeFile, match="symbolic link") as caught:
        safe_open.read_regular(link, limit=100, root=root)
    assert caught.value.path == link


@posix_only
def test_a_symlinked_directory_below_the_root_is_refused(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "x.ipyb").write_bytes(b"planted")
    root = tmp_path / "root"
    (root / "sdir").mkdir(parents=True)
    (root / "sdir" / "blobs").symlink_to(outside)
    target = root / "sdir" / "blobs" / "x.ipyb"
    with pytest.raises(UnsafeFile) as caught:
        safe_open.read_regular(target, limit=100, root=root)
    assert caught.value.path == root / "sdir" / "blobs"
    assert "never follows links" in str(caught.value)
    assert safe_open.read_regular(target, limit=100) == b"planted"  # without a root: allowed
    with pytest.raises(UnsafeFile):
        safe_open.check_directory(root / "sdir" / "blobs", root=root)
    with pytest.raises(UnsafeFile):
        safe_open.ensure_directory(root / "sdir" / "blobs" / "deeper", root=root)
    assert not (outside / "deeper").exists()


@posix_only
def test_the_root_itself_may_be_a_symlink(tmp_path: Path) -> None:
    real = tmp_path / "real"
    (real / "sdir").mkdir(parents=True)
    (real / "sdir" / "f").write_bytes(b"ok")
    root = tmp_path / "link"
    root.symlink_to(real)
    assert safe_open.read_regular(root / "sdir" / "f", limit=10, root=root) == b"ok"
    assert safe_open.check_directory(root / "sdir", root=root)
    assert safe_open.ensure_directory(root / "sdir" / "new", root=root).is_dir()


def test_directories_are_checked_and_created(tmp_path: Path) -> None:
    assert safe_open.check_directory(tmp_path, root=tmp_path)
    assert not safe_open.check_directory(tmp_path / "a" / "b", root=tmp_path)
    made = safe_open.ensure_directory(tmp_path / "a" / "b", root=tmp_path)
    assert safe_open.check_directory(made, root=tmp_path)
    if os.name == "posix":
        assert made.stat().st_mode & 0o777 == 0o700
    (tmp_path / "a" / "file").write_bytes(b"")
    with pytest.raises(NotADirectoryError, match="in the way"):
        safe_open.ensure_directory(tmp_path / "a" / "file" / "c", root=tmp_path)
    assert not safe_open.check_directory(tmp_path / "a" / "file", root=tmp_path)
    with pytest.raises(NotADirectoryError):
        safe_open.read_regular(tmp_path / "a" / "file" / "x", limit=10, root=tmp_path)


def test_paths_outside_the_root_are_a_programming_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="not inside"):
        safe_open.read_regular(Path("/etc/passwd"), limit=10, root=tmp_path)
    with pytest.raises(ValueError, match="climbs out"):
        safe_open.check_directory(tmp_path / ".." / "x", root=tmp_path)
