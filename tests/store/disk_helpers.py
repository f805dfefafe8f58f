"""Looking at and damaging a store's files directly, as the store tests need to."""

from __future__ import annotations

import os
import time
from pathlib import Path

from ipysession.store import SessionStore


def gen_files(store: SessionStore, name: str) -> list[str]:
    return sorted(p.name for p in store.session_dir(name).glob("gen-*.ipys"))


def blob_files(store: SessionStore, name: str) -> list[str]:
    return sorted(p.name for p in (store.session_dir(name) / "blobs").glob("*.ipyb"))


def flip(path: Path, offset: int = -1) -> None:
    """Flip one bit of the file at ``offset``: what a disk error or a tamperer does."""
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))


def age(path: Path, seconds: float) -> None:
    """Make ``path`` look ``seconds`` old."""
    then = time.time() - seconds
    os.utime(path, (then, then))
