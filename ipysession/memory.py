"""Large buffers without the cost of zero-filling them, and one-copy snapshots.

A restored value's memory is written once, by the cipher, and then used as it is by the array
rebuilt on it. ``bytearray(n)`` asks for zeroed memory, which the kernel hands out one 4 KiB
page fault at a time as the cipher first touches it. :func:`empty` maps anonymous memory and has
the kernel fault it all in at once, in the cheapest way the platform offers
(:class:`Populate`, chosen once per process):

- Linux with transparent huge pages (``always`` or ``madvise``): the mapping is advised for huge
  pages (``MADV_HUGEPAGE``), then populated (``MADV_POPULATE_WRITE``, Linux 5.14): 2 MiB pages,
  512 times fewer faults. Populating 192 MiB on the development VM (AMD EPYC, 2 cores; medians
  of 9): 30 ms, against 137 ms with 4 KiB pages (``MAP_POPULATE``). A kernel without
  ``MADV_POPULATE_WRITE`` leaves the huge pages to be faulted in as they are first written.
- Linux without them: ``MAP_POPULATE`` (4 KiB pages, but one system call instead of a fault
  per page: about 30% less than a ``bytearray`` decrypted into).
- Elsewhere: the mapping is advised for huge pages where the platform has the advice.

The kernel still zeroes what it hands out; nothing of ours does. Small buffers are plain
``bytearray`` objects (a mapping costs a system call and at least a page).

:func:`snapshot` copies a buffer once into such memory, for a writer that must keep the bytes
of a live value while the value goes on changing. ``bytes`` are immutable, so they are kept as
they are, uncopied, as is memory that :func:`filled` made for a producer that copies anyway
(a tensor's device-to-host copy is then its only copy).

Plain Python (``mmap``); the lowest layer: it imports nothing of ipysession.
"""

from __future__ import annotations

import contextlib
import enum
import functools
import mmap
import sys
import weakref
from collections.abc import Callable
from pathlib import Path

__all__ = ["MAPPED_MIN", "BytesLike", "Populate", "empty", "filled", "populating", "snapshot"]

#: What :func:`snapshot` copies: a contiguous bytes-like object (any C or Fortran order).
BytesLike = bytes | bytearray | memoryview | mmap.mmap

#: From this size up, buffers are mapped anonymous memory; below it, ``bytearray``.
MAPPED_MIN = 1 << 20

_LINUX = sys.platform.startswith("linux")
# <asm-generic/mman-common.h>; Python has a name for it only from 3.14 (Linux 5.14 and later).
_MADV_POPULATE_WRITE = getattr(mmap, "MADV_POPULATE_WRITE", 23)
_THP_SETTING = Path("/sys/kernel/mm/transparent_hugepage/enabled")


class Populate(enum.Enum):
    """How :func:`empty` has the kernel fault a new mapping in (see the module's docstring)."""

    HUGE_PAGES = "advise huge pages, then populate"
    MAP_POPULATE = "map populated, 4 KiB pages"
    ADVISE_ONLY = "advise huge pages where the platform has the advice"


@functools.cache
def populating() -> Populate:
    """This process's way to populate new mappings (the machine's setting is read once)."""
    if not _LINUX:
        return Populate.ADVISE_ONLY
    try:
        setting = _THP_SETTING.read_text(encoding="ascii")
    except OSError:  # no transparent huge pages in this kernel
        return Populate.MAP_POPULATE
    if "[always]" in setting or "[madvise]" in setting:
        return Populate.HUGE_PAGES
    return Populate.MAP_POPULATE


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
    how = populating()
    try:
        if how is Populate.ADVISE_ONLY:
            mapped = mmap.mmap(-1, size)
            _advise_huge_pages(mapped)
        elif how is Populate.HUGE_PAGES:
            # Private: anonymous shared memory is shmem, which its own huge page setting governs.
            mapped = mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
            _advise_huge_pages(mapped)
            _populate(mapped)
        else:
            flags = mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS | mmap.MAP_POPULATE
            mapped = mmap.mmap(-1, size, flags=flags)
    except (OSError, ValueError):  # no anonymous mappings here (rare): the allocator's memory
        return memoryview(bytearray(size))
    return memoryview(mapped)


def _populate(mapped: mmap.mmap) -> None:
    """Fault the whole mapping in now; a kernel before 5.14 refuses the advice, and then the
    (huge) pages are faulted in as they are first written: slower, never wrong.

    Through the C library, whose call lets other threads run meanwhile: ``mmap.madvise`` holds
    the GIL, and a loading worker populating 512 MiB with it stalled the kernel's main thread
    for about 45 ms each time."""
    madvise = _c_madvise()
    if madvise is None:
        with contextlib.suppress(OSError):
            mapped.madvise(_MADV_POPULATE_WRITE)
        return
    import ctypes  # here, not at import: only large buffers need it

    window = (ctypes.c_char * len(mapped)).from_buffer(mapped)
    try:
        madvise(ctypes.addressof(window), len(mapped), _MADV_POPULATE_WRITE)  # -1: as above
    finally:
        del window  # the mapping can be closed again once no C view of it is left


@functools.cache
def _c_madvise() -> Callable[[int, int, int], int] | None:
    import ctypes

    try:
        call = ctypes.CDLL(None, use_errno=True).madvise
    except (AttributeError, OSError):  # no C library to call: mmap.madvise instead
        return None
    call.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    call.restype = ctypes.c_int
    return call


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
