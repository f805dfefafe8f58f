"""The key file and the location marker on disk (:mod:`ipysession.keys.files`)."""

from __future__ import annotations

import json
import os
import stat
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from ipysession.errors import KeyStoreError
from ipysession.keys import files
from ipysession.keys.crypto import new_master_key

posix_only = pytest.mark.skipif(os.name != "posix", reason="POSIX permissions")


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@posix_only
def test_key_file_is_0600_in_a_0700_dir(tmp_path: Path) -> None:
    directory = tmp_path / "config"
    path = directory / files.KEY_FILE_NAME
    key = new_master_key()
    files.write_key_file(path, files.KeyFile(key))
    assert mode(directory) == 0o700
    assert mode(path) == 0o600
    assert not list(directory.glob("*.tmp"))  # written atomically, nothing left over
    assert files.read_key_file(path) == files.KeyFile(key)


def test_key_file_with_a_pending_key_round_trips(tmp_path: Path) -> None:
    path = tmp_path / files.KEY_FILE_NAME
    old, new = new_master_key(), new_master_key()
    files.write_key_file(path, files.KeyFile(old, new))
    content = files.read_key_file(path)
    assert content is not None
    assert content.keys() == {files.key_id(old): old, files.key_id(new): new}
    assert old.hex() not in repr(content)


def test_missing_files_read_as_none(tmp_path: Path) -> None:
    assert files.read_key_file(tmp_path / files.KEY_FILE_NAME) is None
    assert files.read_marker(tmp_path / files.MARKER_FILE_NAME) is None


def test_marker_round_trips(tmp_path: Path) -> None:
    path = tmp_path / files.MARKER_FILE_NAME
    marker = files.Marker("keyring", "00ff" * 4, "aa11" * 4, files.now(), "OS keyring (test)")
    files.write_marker(path, marker)
    assert files.read_marker(path) == marker
    document = json.loads(path.read_text())
    assert document["version"] == 1
    assert document["backend"] == "keyring"
    if os.name == "posix":
        assert mode(path) == 0o600


@pytest.mark.parametrize(
    "text",
    [
        "not json",
        "{}",
        '{"backend": "vault", "key_id": "00"}',
        '{"backend": "file", "key_id": 7}',
        '{"backend": "file", "key_id": "00", "pending_key_id": 5}',
    ],
)
def test_malformed_marker_is_an_error_naming_the_file(tmp_path: Path, text: str) -> None:
    path = tmp_path / files.MARKER_FILE_NAME
    path.write_text(text)
    with pytest.raises(KeyStoreError, match="marker is damaged") as caught:
        files.read_marker(path)
    assert caught.value.path == path
    assert str(path) in str(caught.value)


@pytest.mark.parametrize(
    "text",
    [
        "not json",
        '{"format": "ipysession-master-key", "version": 1, "key": "c2hvcnQ="}',
        '{"format": "something else", "version": 1, "key": "AAAA"}',
    ],
)
def test_malformed_key_file_is_an_error_naming_the_file(tmp_path: Path, text: str) -> None:
    path = tmp_path / files.KEY_FILE_NAME
    path.write_text(text)
    with pytest.raises(KeyStoreError, match="key file is damaged") as caught:
        files.read_key_file(path)
    assert caught.value.path == path
    assert str(path) in str(caught.value)


def test_a_damaged_key_file_never_echoes_the_key(tmp_path: Path) -> None:
    path = tmp_path / files.KEY_FILE_NAME
    encoded = files.encode_key(new_master_key())
    path.write_text(json.dumps({"format": "something else", "version": 1, "key": encoded}))
    with pytest.raises(KeyStoreError) as caught:
        files.read_key_file(path)
    assert encoded not in str(caught.value)
    assert encoded not in repr(caught.value)


def test_decode_key_accepts_only_32_byte_base64() -> None:
    key = new_master_key()
    assert files.decode_key(files.encode_key(key)) == key
    for bad in (None, 5, "", "not base64!", files.encode_key(b"short")):
        assert files.decode_key(bad) is None


# --- planted files: never waited on, never followed ----------------------------------------------

#: Bounds a regression (a blocking open) so that it fails instead of hanging the suite.
DEADLINE = 60.0


def outcome_of(call: Callable[[], object]) -> object:
    """What ``call`` returned or raised, from a daemon thread; still blocked at the deadline
    fails the test."""
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


@posix_only
@pytest.mark.parametrize(
    ("name", "read"),
    [
        (files.KEY_FILE_NAME, files.read_key_file),
        (files.MARKER_FILE_NAME, files.read_marker),
    ],
)
def test_a_fifo_as_the_key_file_or_marker_is_refused_at_once(
    tmp_path: Path, name: str, read: Callable[[Path], object]
) -> None:
    path = tmp_path / name
    os.mkfifo(path)
    error = outcome_of(lambda: read(path))
    assert isinstance(error, KeyStoreError)
    assert error.path == path
    assert "FIFO" in str(error)
    assert "Move it away or remove it" in str(error)


@posix_only
def test_a_symlinked_key_file_is_not_followed(tmp_path: Path) -> None:
    real = tmp_path / "elsewhere.key"
    files.write_key_file(real, files.KeyFile(new_master_key()))
    path = tmp_path / "config" / files.KEY_FILE_NAME
    path.parent.mkdir()
    path.symlink_to(real)
    with pytest.raises(KeyStoreError, match="symbolic link") as caught:
        files.read_key_file(path)
    assert caught.value.path == path


def test_a_huge_key_file_is_not_read(tmp_path: Path) -> None:
    path = tmp_path / files.KEY_FILE_NAME
    with open(path, "wb") as f:
        f.truncate(1 << 30)  # sparse: nothing on disk
    with pytest.raises(KeyStoreError, match="not read"):
        files.read_key_file(path)


@posix_only
def test_a_symlinked_key_lock_is_refused_not_truncated(tmp_path: Path) -> None:
    precious = tmp_path / "precious.txt"
    precious.write_text("keep me")
    lock = tmp_path / "config" / files.LOCK_FILE_NAME
    lock.parent.mkdir()
    lock.symlink_to(precious)
    with pytest.raises(KeyStoreError, match="symbolic link"), files.creation_lock(lock, timeout=5):
        pass
    assert precious.read_text() == "keep me"
