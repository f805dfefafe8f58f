"""ipysession.memory: buffers allocated without zero-filling, and one-copy snapshots."""

from __future__ import annotations

import mmap
import os
import pickle
import sys
from pathlib import Path

import pytest

from ipysession import memory

SIZES = [0, 1, 4097, memory.MAPPED_MIN - 1, memory.MAPPED_MIN, 3 * memory.MAPPED_MIN + 7]


@pytest.mark.parametrize("size", SIZES)
def test_empty_is_writable_bytes_of_the_size_asked(size: int) -> None:
    buffer = memory.empty(size)
    assert (buffer.nbytes, buffer.format, buffer.ndim) == (size, "B", 1)
    assert not buffer.readonly
    assert buffer.c_contiguous
    content = os.urandom(size)
    buffer[:] = content
    assert buffer == content


def test_empty_refuses_a_negative_size() -> None:
    with pytest.raises(ValueError, match="-1 bytes"):
        memory.empty(-1)


def test_a_large_buffer_outlives_the_view_it_was_handed_out_as() -> None:
    # An array rebuilt on a restored buffer keeps only a view of a view of it.
    size = 2 * memory.MAPPED_MIN + 3
    content = os.urandom(size)
    buffer = memory.empty(size)
    buffer[:] = content
    tail = buffer[size // 2 :]
    del buffer
    assert bytes(tail) == content[size // 2 :]


def test_pickle_rebuilds_an_out_of_band_array_on_the_buffer_itself() -> None:
    np = pytest.importorskip("numpy")
    array = np.arange(memory.MAPPED_MIN // 8 + 5, dtype=np.float64)
    kept: list[pickle.PickleBuffer] = []
    stream = pickle.dumps(array, protocol=5, buffer_callback=kept.append)
    with kept[0].raw() as raw:
        buffer = memory.empty(raw.nbytes)
        buffer[:] = raw
    restored = pickle.loads(stream, buffers=[buffer])
    assert np.array_equal(restored, array)
    restored[0] = -1.0  # writable, and the buffer's own memory
    assert buffer[:8] == np.float64(-1.0).tobytes()


@pytest.mark.parametrize("size", SIZES)
def test_snapshot_keeps_the_content_as_it_was(size: int) -> None:
    live = bytearray(os.urandom(size))
    before = bytes(live)
    taken = memory.snapshot(live)
    if size:
        live[0] ^= 0xFF  # the value changes after the capture
    assert bytes(taken) == before
    assert memoryview(taken).readonly


def test_snapshot_keeps_bytes_without_a_copy() -> None:
    data = os.urandom(memory.MAPPED_MIN + 1)
    assert memory.snapshot(data) is data


def test_snapshot_of_typed_and_fortran_ordered_memory_keeps_its_bytes_in_memory_order() -> None:
    np = pytest.importorskip("numpy")
    c_order = np.arange(12, dtype=np.int32).reshape(3, 4)
    assert bytes(memory.snapshot(memoryview(c_order))) == c_order.tobytes()
    f_order = np.asfortranarray(c_order)
    assert bytes(memory.snapshot(memoryview(f_order))) == f_order.tobytes(order="A")


@pytest.mark.parametrize("size", [0, 10, memory.MAPPED_MIN + 1])
def test_what_filled_made_is_read_only_and_snapshot_keeps_it_uncopied(size: int) -> None:
    content = os.urandom(size)

    def write(into: memoryview) -> None:
        into[:] = content

    made = memory.filled(size, write)
    assert bytes(made) == content
    assert memoryview(made).readonly
    kept = memory.snapshot(made)
    assert memoryview(kept).obj is memoryview(made).obj
    again = memory.snapshot(kept)  # a snapshot of a snapshot is the snapshot
    assert memoryview(again).obj is memoryview(made).obj


def test_the_pickler_keeps_an_out_of_band_bytes_object_and_copies_live_memory_once() -> None:
    from ipysession.capture import pickling

    frozen = os.urandom(pickling.OUT_OF_BAND_MIN)
    live = bytearray(os.urandom(pickling.OUT_OF_BAND_MIN))
    serialized = pickling.serialize((pickle.PickleBuffer(frozen), pickle.PickleBuffer(live)))
    kept_frozen, kept_live = serialized.buffers
    assert kept_frozen is frozen  # immutable: no copy
    before = bytes(live)
    live[0] ^= 0xFF
    assert bytes(kept_live) == before  # live: the copy made at capture


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="huge pages are Linux's here")
def test_a_large_buffer_is_populated_with_huge_pages_where_the_kernel_grants_them() -> None:
    # Read from the machine, not assumed: the way follows the kernel's setting.
    setting = Path("/sys/kernel/mm/transparent_hugepage/enabled")
    granted = setting.exists() and (
        "[always]" in setting.read_text() or "[madvise]" in setting.read_text()
    )
    expected = memory.Populate.HUGE_PAGES if granted else memory.Populate.MAP_POPULATE
    assert memory.populating() is expected
    size = 16 * 1024 * 1024 + 4097  # several huge pages and a tail of small ones
    huge_before = _anon_huge_kib()
    buffer = memory.empty(size)
    assert isinstance(buffer.obj, mmap.mmap)
    if granted:
        # Resident before anything is written (populated, not faulted in later), most of it in
        # 2 MiB pages: the kernel's own accounting of this process says so.
        assert _anon_huge_kib() - huge_before >= 8 * 1024
    content = os.urandom(size)
    buffer[:] = content
    assert buffer == content


def _anon_huge_kib() -> int:
    for line in Path("/proc/self/smaps_rollup").read_text().splitlines():
        if line.startswith("AnonHugePages:"):
            return int(line.split()[1])
    return 0
