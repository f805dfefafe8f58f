"""Large buffers without the cost of zero-filling them, and one-copy snapshots.

A restored value's memory is written once, by the cipher, and then used as it is by the array
rebuilt on it. ``bytearray(n)`` asks for zeroed memory, which the kernel hands out one 4 KiB
page fault at a time as the cipher first touches it. :func:`empty` maps anonymous memory and
has the kernel populate the whole mapping in one call (``MAP_POPULATE``, Linux): a 96 MiB
buffer decrypted into costs about 30% less than into a ``bytearray`` on the machine this was
measured on (the kernel's own zeroing remains; nothing of ours). Elsewhere the mapping is
advised for huge pages (``MADV_HUGEPAGE``) where the platform has the advice. Small buffers are
plain ``bytearray`` objects (a mapping costs a system call and at least a page).

:func:`snapshot` copies a buffer once into such memory, for a writer that must keep the bytes
of a live value while the value goes on changing. ``bytes`` are immutable, so they are kept as
they are, uncopied, as is memory that :func:`filled` made for a producer that copies anyway
(a tensor's device-to-host copy is then its only copy).

Plain Python (``mmap``); the lowest layer: it imports nothing of ipysession.
"""

from __future__ import annotations

import contextlib
import mmap
import weakref
from collections.abc import Callable

__all__ = ["MAPPED_MIN", "BytesLike", "empty", "filled", "snapshot"]

#: What :func:`snapshot` copies: a contiguous bytes-like object (any C or Fortran order).
BytesLike = bytes | bytearray | memoryview | mmap.mmap

#: From this size up, buffers are mapped anonymous memory; below it, ``bytearray``.
MAPPED_MIN = 1 << 20

# MAP_POPULATE exists on Linux only. Measured there, it beat advising huge pages and then
# populating with madvise(MADV_POPULATE_WRITE): transparent huge pages are often unavailable in
# virtual machines, and the populate itself is what saves the faults.
_POPULATE = getattr(mmap, "MAP_POPULATE", 0)


def empty(size: int) -> memoryview:
    """A writable, C-contiguous buffer of ``size`` bytes (format ``"B"``) whose contents are
    undefined until written: the caller writes every byte it hands on.

    The memory is released when the last view or object using it goes (an array rebuilt on
    it keeps it alive).
    """
    if size < 0:
        msg = f"a buffer cannot have {size} bytes"
        raise ValueError(msg)
    if size < MAPPED_MIN:
        return memoryview(bytearray(size))
    try:
        if _POPULATE:
            flags = mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS | _POPULATE
            mapped = mmap.mmap(-1, size, flags=flags)
        else:
            mapped = mmap.mmap(-1, size)
            _advise_huge_pages(mapped)
    except (OSError, ValueError):  # no anonymous mappings here (rare): the allocator's memory
        return memoryview(bytearray(size))
    return memoryview(mapped)


def _advise_huge_pages(mapped: mmap.mmap) -> None:
    """A hint: a platform without huge pages costs only the page faults it would save."""
    advice = getattr(mmap, "MADV_HUGEPAGE", None)
    if advice is not None and hasattr(mapped, "madvise"):
        with contextlib.suppress(OSError):
            mapped.madvise(advice)


def filled(size: int, fill: Callable[[memoryview], object]) -> bytes | memoryview:
    """New memory of ``size`` bytes, written by ``fill`` (given it writable), then read-only:
    a snapshot that nothing else holds, which :func:`snapshot` keeps without a copy.

    For a producer that copies a value into host memory anyway (a device-to-host copy): its
    copy is the snapshot, not the first of two.
    """
    buffer = empty(size)
    fill(buffer)
    return _frozen(buffer)


def snapshot(data: BytesLike) -> bytes | memoryview:
    """The bytes of ``data`` as they are now, in memory order, copied once; kept as they are
    (no copy) when nothing can change them: ``bytes``, or what :func:`filled` and this
    function made. The result is read-only: it stands for what was captured.
    """
    if isinstance(data, bytes):
        return data
    with memoryview(data) as source:
        kept = _unchangeable(source)
        if kept is not None:
            return kept
        if not source.c_contiguous or source.nbytes < MAPPED_MIN:  # Fortran order is rare
            return source.tobytes(order="A")  # bytes, in memory order: one copy
        flat = source.cast("B") if source.ndim != 1 or source.format != "B" else source
        copy = empty(flat.nbytes)
        copy[:] = flat
        if flat is not source:
            flat.release()
    return _frozen(copy)


#: Mappings made by :func:`filled` and :func:`snapshot`, written once and then only read.
_FROZEN: weakref.WeakSet[mmap.mmap] = weakref.WeakSet()


def _frozen(buffer: memoryview) -> bytes | memoryview:
    owner = buffer.obj
    if isinstance(owner, mmap.mmap):
        _FROZEN.add(owner)
        return buffer.toreadonly()
    return bytes(buffer)  # small: one more small copy, and immutable


def _unchangeable(source: memoryview) -> bytes | memoryview | None:
    """What ``source`` shows, uncopied, if it is the whole of an object nobody can change."""
    owner = source.obj
    while isinstance(owner, memoryview):  # a pickle.PickleBuffer's wraps the view it was given
        owner = owner.obj
    if isinstance(owner, bytes) and source.nbytes == len(owner):
        return owner
    if isinstance(owner, mmap.mmap) and owner in _FROZEN and source.nbytes == len(owner):
        return memoryview(owner).toreadonly()
    return None
