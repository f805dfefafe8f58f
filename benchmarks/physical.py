"""The physical limits of a restore on this machine, measured in the same run as the kernels.

A restore of large values reads files, decrypts them (AES-256-GCM) and copies bytes into the
objects unpickled from them. What that can cost at best here:

- **file read, cold**: a file of the workload's size read with its pages dropped from the page
  cache first (``fsync``, then ``posix_fadvise(POSIX_FADV_DONTNEED)``); whether they really left
  is checked with ``mincore(2)`` and reported, since a file system may keep them (tmpfs, some
  overlays) and a run without the check says "warm only";
- **file read, warm**: the same file, its pages in the cache;
- **AES-GCM decrypt**: authenticated decryption in memory, the cipher the store uses;
- **memcpy**: one copy of a buffer, what unpickling a value out of its bytes costs at least.

Bandwidths are medians over runs, of buffers large enough to leave every cache but memory.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import mmap
import os
import secrets
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "ColdRead",
    "Rate",
    "aes_gcm_decrypt",
    "drop_from_cache",
    "limits",
    "memcpy",
    "read_cold",
    "read_warm",
    "resident_fraction",
    "write_file",
]

#: Buffers for the in-memory measures: far beyond any CPU cache, small enough for any machine.
CHUNK = 64 * 1024 * 1024
#: A file whose resident share stays above this after the drop was not dropped.
_DROPPED_BELOW = 0.05


@dataclass(frozen=True)
class Rate:
    """``size`` bytes in ``seconds`` (median of ``runs``)."""

    size: int
    seconds: float
    runs: int

    @property
    def bandwidth(self) -> float:
        """Bytes per second."""
        return self.size / self.seconds

    def seconds_for(self, size: int) -> float:
        return size / self.bandwidth


@dataclass(frozen=True)
class ColdRead:
    """A cold read, and whether the page cache was really dropped before each run.

    ``dropped`` is ``None`` where it could not be checked (no ``mincore`` or no
    ``posix_fadvise``): the figure is then a warm read, said as such by ``how``.
    """

    rate: Rate
    dropped: bool | None
    how: str


def write_file(path: Path, size: int) -> Path:
    """A file of ``size`` random bytes (incompressible, as encrypted blobs are), on disk."""
    block = secrets.token_bytes(min(size, 4 * 1024 * 1024))
    with path.open("wb") as out:
        left = size
        while left > 0:
            out.write(block[: min(left, len(block))])
            left -= len(block)
        out.flush()
        os.fsync(out.fileno())
    return path


def _libc() -> Any:
    name = ctypes.util.find_library("c")
    return ctypes.CDLL(name, use_errno=True) if name else None


def resident_fraction(path: Path) -> float | None:
    """The share of ``path``'s pages in the page cache, by ``mincore(2)``; ``None`` where it
    cannot be asked (not Linux or BSD, no libc)."""
    libc = _libc()
    if libc is None or not hasattr(libc, "mincore") or not hasattr(libc, "mmap"):
        return None
    size = path.stat().st_size
    if size == 0:
        return 0.0
    page = mmap.PAGESIZE
    pages = (size + page - 1) // page
    libc.mmap.restype = ctypes.c_void_p
    libc.mmap.argtypes = (
        ctypes.c_void_p,
        ctypes.c_size_t,
        ctypes.c_int,
        ctypes.c_int,
        ctypes.c_int,
        ctypes.c_long,
    )
    libc.munmap.argtypes = (ctypes.c_void_p, ctypes.c_size_t)
    libc.mincore.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p)
    fd = os.open(path, os.O_RDONLY)
    try:
        address = libc.mmap(None, size, mmap.PROT_READ, mmap.MAP_SHARED, fd, 0)
        if address in (None, ctypes.c_void_p(-1).value):
            return None
        try:
            vector = (ctypes.c_ubyte * pages)()
            if libc.mincore(ctypes.c_void_p(address), size, vector) != 0:
                return None
            return sum(byte & 1 for byte in vector) / pages
        finally:
            libc.munmap(ctypes.c_void_p(address), size)
    finally:
        os.close(fd)


def drop_from_cache(path: Path) -> bool | None:
    """Ask the kernel to drop ``path``'s pages; whether they left (``None``: not checkable)."""
    advise = getattr(os, "posix_fadvise", None)
    if advise is None:
        return None
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)  # dirty pages cannot be dropped
        advise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)
    resident = resident_fraction(path)
    return None if resident is None else resident < _DROPPED_BELOW


def _read_all(path: Path, buffer: bytearray) -> int:
    view = memoryview(buffer)
    total = 0
    with path.open("rb", buffering=0) as source:
        while count := source.readinto(view):
            total += count
    return total


def _median_seconds(run: Callable[[], object], runs: int) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def read_warm(path: Path, runs: int = 5) -> Rate:
    """Read ``path`` whole with its pages cached (one read first puts them there)."""
    buffer = bytearray(min(CHUNK, max(path.stat().st_size, 1)))
    size = _read_all(path, buffer)
    return Rate(size, _median_seconds(lambda: _read_all(path, buffer), runs), runs)


def read_cold(path: Path, runs: int = 3) -> ColdRead:
    """Read ``path`` whole after dropping its pages before each run, saying whether they left."""
    buffer = bytearray(min(CHUNK, max(path.stat().st_size, 1)))
    times, outcomes = [], []
    for _ in range(runs):
        outcomes.append(drop_from_cache(path))
        started = time.perf_counter()
        size = _read_all(path, buffer)
        times.append(time.perf_counter() - started)
    rate = Rate(size, statistics.median(times), runs)
    if any(outcome is None for outcome in outcomes):
        return ColdRead(rate, None, "warm only: the page cache could not be dropped or checked")
    if all(outcomes):
        return ColdRead(rate, True, "page cache dropped before each run (checked with mincore)")
    return ColdRead(rate, False, "warm only: the file system kept the pages (mincore)")


def aes_gcm_decrypt(size: int = CHUNK, runs: int = 5) -> Rate:
    """AES-256-GCM authenticated decryption of ``size`` bytes in memory."""
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    cipher = AESGCM(AESGCM.generate_key(bit_length=256))
    nonce = secrets.token_bytes(12)
    sealed = cipher.encrypt(nonce, secrets.token_bytes(size), b"")
    return Rate(size, _median_seconds(lambda: cipher.decrypt(nonce, sealed, b""), runs), runs)


def memcpy(size: int = CHUNK, runs: int = 5) -> Rate:
    """One copy of ``size`` bytes into memory already allocated (and touched)."""
    source = bytearray(secrets.token_bytes(min(size, 1024 * 1024))) * max(1, size // (1 << 20))
    target = bytearray(len(source))

    def copy() -> None:
        target[:] = source

    copy()
    return Rate(len(source), _median_seconds(copy, runs), runs)


def limits(size: int, directory: Path, *, runs: int = 3) -> dict[str, Any]:
    """Every measure above for a workload of ``size`` bytes, JSON-ready.

    ``restore_limit_s`` is what binding ``size`` bytes of values costs at least here: decrypting
    them, then one copy out of the decrypted bytes (unpickling), at the measured bandwidths.
    """
    path = write_file(directory / "physical-limit.bin", size)
    try:
        cold = read_cold(path, runs)
        warm = read_warm(path, runs)
    finally:
        path.unlink(missing_ok=True)
    chunk = min(size, CHUNK)
    decrypt = aes_gcm_decrypt(chunk, runs)
    copy = memcpy(chunk, runs)
    return {
        "bytes": size,
        "runs": runs,
        "file_read_cold": {**asdict(cold.rate), "dropped": cold.dropped, "how": cold.how},
        "file_read_warm": asdict(warm),
        "aes_gcm_decrypt": asdict(decrypt),
        "memcpy": asdict(copy),
        "restore_limit_s": decrypt.seconds_for(size) + copy.seconds_for(size),
    }
