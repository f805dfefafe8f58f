"""Planted files in the store: huge sparse files, files that exhaust memory, symbolic links out of
the store. Each costs at most one skipped file; none costs memory, a hang, or a file outside."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from ipysession.errors import SessionError, UnsafeFile
from ipysession.store import SessionStore
from tests.builders import BIG, KEY, make_session

posix_only = pytest.mark.skipif(os.name != "posix", reason="symlinks and rlimits as on POSIX")
linux_only = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="RLIMIT_AS as on Linux"
)

GIB = 1 << 30


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path / "root"


@pytest.fixture
def store(root: Path) -> Iterator[SessionStore]:
    with SessionStore(root, key=KEY, gc_grace=0) as s:
        yield s


def _read_in_child(root: Path, script: str) -> dict[str, object]:
    """Run ``script`` (which has ``store`` and sets ``result``) in a fresh interpreter and return
    ``result``: its memory is measured apart from the test run's."""
    code = (
        textwrap.dedent(
            f"""
        import json, resource, sys
        from pathlib import Path
        from ipysession.store import SessionStore
        from tests.builders import KEY
        store = SessionStore(Path({str(root)!r}), key=KEY)
        result = {{}}
        """
        )
        + textwrap.dedent(script)
        + "\nprint(json.dumps(result))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=Path(__file__).parents[2],
        check=False,
    )
    assert done.returncode == 0, done.stderr
    found: dict[str, object] = json.loads(done.stdout.splitlines()[-1])
    return found


@posix_only
def test_a_sparse_3_gib_junk_generation_is_refused_after_its_header(
    store: SessionStore, root: Path
) -> None:
    store.write(make_session(cells=1))
    store.write(make_session(cells=2))
    junk = store.session_dir("nb") / "gen-00000003.ipys"
    with open(junk, "wb") as f:
        f.truncate(3 * GIB)  # 0 bytes on disk: reading it whole cost 3.2 GB
    result = _read_in_child(
        root,
        """
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        read = store.read("nb")
        after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        result = {"generation": read.generation, "grown_kib": after - before,
                  "kinds": [str(p.kind) for p in read.problems],
                  "moved": [p.quarantined_to is not None for p in read.problems]}
        """,
    )
    assert result["generation"] == 2
    assert result["kinds"] == ["corrupt"]
    assert result["moved"] == [True]
    grown = result["grown_kib"]
    assert isinstance(grown, int)
    assert grown < 256 * 1024  # KiB: a few pages, nowhere near the file's 3 GiB


@linux_only
def test_running_out_of_memory_reading_a_generation_falls_back(
    store: SessionStore, root: Path
) -> None:
    store.write(make_session(cells=1))
    store.write(make_session(cells=2))
    sdir = store.session_dir("nb")
    newest = sdir / "gen-00000003.ipys"
    # A sane header (copied from a real generation), then 3 GiB of nothing: only reading it all
    # finds out, and under a memory limit that read fails.
    newest.write_bytes((sdir / "gen-00000002.ipys").read_bytes()[:64])
    os.truncate(newest, 3 * GIB)
    result = _read_in_child(
        root,
        """
        import resource
        with open("/proc/self/statm") as f:
            pages = int(f.read().split()[0])
        limit = pages * resource.getpagesize() + (1 << 30)
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
        read = store.read("nb")
        result = {"generation": read.generation,
                  "kinds": [str(p.kind) for p in read.problems],
                  "messages": [p.message for p in read.problems],
                  "moved": [p.quarantined_to is not None for p in read.problems]}
        """,
    )
    assert result["generation"] == 2
    assert result["kinds"] == ["corrupt"]
    assert result["moved"] == [True]
    assert "too large to read with the memory available" in str(result["messages"])
    assert not newest.exists()


@posix_only
def test_a_symlinked_session_dir_is_refused_and_nothing_is_written_through_it(
    tmp_path: Path, store: SessionStore
) -> None:
    outside = tmp_path / "outside"
    with SessionStore(outside, key=KEY) as other:
        other.write(make_session(cells=1))
        real = other.session_dir("nb")
    before = sorted(p.name for p in real.iterdir())
    sdir = store.session_dir("nb")
    sdir.parent.mkdir(parents=True)
    sdir.symlink_to(real)
    with pytest.raises(UnsafeFile, match="symbolic link") as caught:
        store.read("nb")
    assert caught.value.path == sdir
    assert "Replace the link" in str(caught.value)
    with pytest.raises(SessionError, match="symbolic link"):
        store.write(make_session(cells=2))
    assert sorted(p.name for p in real.iterdir()) == before
    assert store.list() == []  # a linked session dir is skipped, not listed


@posix_only
def test_a_symlinked_blobs_dir_is_never_read_or_written(
    tmp_path: Path, store: SessionStore
) -> None:
    store.write(make_session(big=BIG))
    sdir = store.session_dir("nb")
    outside = tmp_path / "outside-blobs"
    (sdir / "blobs").rename(outside)
    (sdir / "blobs").symlink_to(outside)
    planted = sorted(p.name for p in outside.iterdir())
    blob_id = store.read("nb").session.variables["big"].blob
    assert blob_id is not None
    with pytest.raises(SessionError, match="symbolic link"):
        store.read_blob("nb", blob_id)
    with pytest.raises(SessionError, match="symbolic link"):
        store.write(make_session(big=BIG + b"changed"))
    assert sorted(p.name for p in outside.iterdir()) == planted


@posix_only
def test_a_symlinked_quarantine_never_receives_a_file(tmp_path: Path, store: SessionStore) -> None:
    store.write(make_session(cells=1))
    store.write(make_session(cells=2))
    outside = tmp_path / "outside-quarantine"
    outside.mkdir()
    (store.root / "quarantine").symlink_to(outside)
    newest = store.session_dir("nb") / "gen-00000002.ipys"
    damaged = bytearray(newest.read_bytes())
    damaged[-1] ^= 1  # fails authentication: a file for quarantine
    newest.write_bytes(bytes(damaged))
    read = store.read("nb")
    assert read.generation == 1
    assert [p.quarantined_to for p in read.problems] == [None]  # left in place
    assert newest.exists()
    assert list(outside.iterdir()) == []


@posix_only
def test_a_symlinked_checkpoints_dir_is_not_listed(tmp_path: Path, store: SessionStore) -> None:
    store.write(make_session(cells=1))
    store.checkpoint("nb", "mine")
    sdir = store.session_dir("nb")
    outside = tmp_path / "outside-checkpoints"
    (sdir / "checkpoints").rename(outside)
    (sdir / "checkpoints").symlink_to(outside)
    with pytest.raises(SessionError):
        store.read("nb", checkpoint="mine")
    with pytest.raises(SessionError, match="symbolic link"):
        store.checkpoint("nb", "another")
    assert sorted(p.name for p in outside.iterdir()) == ["mine.ipys"]
