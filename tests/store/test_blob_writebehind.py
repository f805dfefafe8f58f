"""Write-behind while a large blob is sealed: the disk is asked to store each few MiB as soon as
they are written, the file holds exactly the bytes written, and a blob written so reads back."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from ipysession.store import SessionStore, writebehind
from ipysession.store.blobs import SEAL_THEN_NAME_MIN
from ipysession.store.writebehind import WriteBehind
from tests.builders import KEY, make_session

KiB = 1024


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="sync_file_range is Linux's")
def test_linux_starts_the_write_out_with_sync_file_range() -> None:
    assert writebehind._start_write_out() is not None


def test_each_hint_covers_bytes_the_kernel_already_has_in_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = writebehind._start_write_out()
    hints: list[tuple[int, int]] = []
    path = tmp_path / "out.bin"
    pieces = [os.urandom(n) for n in (5 * KiB, 1, 64 * KiB - 1, 64 * KiB, 200 * KiB, 3)]
    expected = b"".join(pieces)

    def start(fd: int, offset: int, count: int) -> None:
        # The hinted range is in the file already: flushed out of Python's buffer first.
        assert os.pread(fd, count, offset) == expected[offset : offset + count]
        hints.append((offset, count))
        if real is not None:
            real(fd, offset, count)  # and the real call accepts it

    monkeypatch.setattr(writebehind, "_start_write_out", lambda: start)
    with path.open("w+b") as fh:  # readable too, so that the check above can read it
        writer = WriteBehind(fh, every=64 * KiB)
        for piece in pieces:
            assert writer.write(memoryview(piece)) == len(piece)
    assert path.read_bytes() == expected
    assert hints, "no write-out was started"
    starts = [offset for offset, _ in hints]
    assert starts[0] == 0
    assert all(a + n == b for (a, n), b in zip(hints, starts[1:], strict=False))  # contiguous
    assert all(count >= 64 * KiB for _, count in hints)
    assert sum(count for _, count in hints) <= len(expected)


def test_without_the_call_it_writes_the_same_bytes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(writebehind, "_start_write_out", lambda: None)  # not Linux
    data = os.urandom(300 * KiB)
    path = tmp_path / "out.bin"
    with path.open("wb") as fh:
        writer = WriteBehind(fh, every=64 * KiB)
        for start in range(0, len(data), 7 * KiB):
            writer.write(data[start : start + 7 * KiB])
    assert path.read_bytes() == data


def test_a_large_blob_written_behind_reads_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(writebehind, "WRITE_BEHIND_BYTES", 256 * KiB)  # several hints per blob
    value = os.urandom(SEAL_THEN_NAME_MIN + 12_345)
    with SessionStore(tmp_path, key=KEY) as store:
        store.write(make_session(big=value))
        record = store.read("nb").session.variables["big"]
        assert record.blob == KEY.content_id(value)
        assert bytes(store.read_blob("nb", record.blob)) == value
