"""Blobs of several MiB: sealed into a temporary file while their id is hashed, then named by
it; read back into memory the restored array uses; a damaged one fails only its variable; a
crash in the middle of writing one leaves the previous generation readable."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from ipysession.capture.namespace import CaptureLimits, capture_value, restore_value
from ipysession.errors import CorruptFile
from ipysession.model import Session, VariableRecord
from ipysession.store import SessionStore
from ipysession.store.blobs import SEAL_THEN_NAME_MIN
from tests.builders import KEY, make_session
from tests.store.disk_helpers import age, flip

np = pytest.importorskip("numpy")

MiB = 1024 * 1024
LIMITS = CaptureLimits(max_variable_bytes=1024 * MiB, max_session_bytes=1024 * MiB)


def _blobs(store: SessionStore, name: str = "nb") -> list[Path]:
    return sorted((store.session_dir(name) / "blobs").iterdir())


def _array(seed: int, mib: int) -> object:
    return np.random.default_rng(seed).standard_normal(mib * MiB // 8)


def _with_arrays(**arrays: object) -> Session:
    variables = {}
    for name, array in arrays.items():
        record = capture_value(name, array, limits=LIMITS)
        assert isinstance(record, VariableRecord)
        variables[name] = record
    return make_session(variables=variables)


def _restore(store: SessionStore, record: VariableRecord) -> object:
    data = record.data if record.data is not None else store.read_blob("nb", str(record.blob))
    buffers = [store.read_blob("nb", str(b.blob)) for b in record.buffers]
    return restore_value(record, data, buffers=buffers)


def test_multi_mib_values_round_trip_named_by_their_content(tmp_path: Path) -> None:
    value = os.urandom(SEAL_THEN_NAME_MIN + 12_345)  # odd: the last chunk is a partial one
    with SessionStore(tmp_path, key=KEY) as store:
        store.write(make_session(big=value))
        (path,) = _blobs(store)
        assert path.name == f"{KEY.content_id(value)}.ipyb"  # sealed, then named by its id
        record = store.read("nb").session.variables["big"]
        assert record.blob == KEY.content_id(value)
        back = store.read_blob("nb", record.blob)
        assert back == value
        assert not back.readonly


def test_an_array_comes_back_on_the_memory_its_blob_was_decrypted_into(tmp_path: Path) -> None:
    array = _array(1, 9)
    with SessionStore(tmp_path, key=KEY) as store:
        store.write(_with_arrays(a=array))
        record = store.read("nb").session.variables["a"]
        (buffer,) = record.buffers
        assert buffer.blob is not None
        memory = store.read_blob("nb", buffer.blob)
        restored = restore_value(record, record.data or b"", buffers=[memory])
        assert np.array_equal(restored, array)
        assert restored.flags.writeable
        assert np.frombuffer(memory, dtype=np.uint8).ctypes.data == restored.ctypes.data


def test_an_equal_large_value_keeps_the_blob_already_there(tmp_path: Path) -> None:
    value = os.urandom(SEAL_THEN_NAME_MIN)
    with SessionStore(tmp_path, key=KEY) as store:
        store.write(make_session(cells=1, big=value))
        (path,) = _blobs(store)
        before = path.stat()
        store.write(make_session(cells=2, big=value))
        assert _blobs(store) == [path]  # no second file, no temporary one left
        assert path.stat().st_ino == before.st_ino
        assert store.read_blob("nb", KEY.content_id(value)) == value


def test_a_damaged_large_blob_fails_only_its_variable_with_the_reason(tmp_path: Path) -> None:
    kept, damaged = _array(2, 6), _array(3, 6)
    with SessionStore(tmp_path, key=KEY) as store:
        store.write(_with_arrays(kept=kept, damaged=damaged))
        session = store.read("nb").session
        (bad,) = session.variables["damaged"].buffers
        flip(store.session_dir("nb") / "blobs" / f"{bad.blob}.ipyb", offset=5 * MiB)
        with pytest.raises(CorruptFile, match="authenticat") as caught:
            _restore(store, session.variables["damaged"])
        assert caught.value.problems  # quarantined, and the problem says where it went
        assert np.array_equal(_restore(store, session.variables["kept"]), kept)


def test_a_failure_while_sealing_a_large_blob_leaves_no_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ipysession.store import fileformat

    real = fileformat.seal_to

    def disk_full(*args: object, **options: object) -> int:
        write = args[4]
        assert callable(write)
        write(memoryview(b"partial ciphertext"))
        raise OSError(28, "No space left on device")

    with SessionStore(tmp_path, key=KEY) as store:
        store.write(make_session(cells=1, big=os.urandom(SEAL_THEN_NAME_MIN)))
        first = _blobs(store)
        monkeypatch.setattr(fileformat, "seal_to", disk_full)
        with pytest.raises(Exception, match="No space left"):
            store.write(make_session(cells=2, big=os.urandom(SEAL_THEN_NAME_MIN)))
        monkeypatch.setattr(fileformat, "seal_to", real)
        assert _blobs(store) == first
        assert len(store.read("nb").session.history) == 1


_CRASH = textwrap.dedent(
    """
    import os, signal, sys
    from pathlib import Path
    from ipysession.store import SessionStore, fileformat
    from tests.builders import KEY, make_session

    real = fileformat.seal_to

    def killed_midway(key, nonce, plaintext, aad, write, **options):
        view = memoryview(plaintext)
        real(key, nonce, view[: len(view) // 2], aad, write, **options)
        sys.stdout.flush()
        os.kill(os.getpid(), signal.SIGKILL)

    store = SessionStore(Path(sys.argv[1]), key=KEY)
    fileformat.seal_to = killed_midway
    store.write(make_session(cells=2, big=os.urandom(int(sys.argv[2]))))
    """
)


def test_a_crash_while_writing_a_large_blob_leaves_the_previous_state_readable(
    tmp_path: Path,
) -> None:
    root = tmp_path / "root"
    first = os.urandom(SEAL_THEN_NAME_MIN)
    with SessionStore(root, key=KEY) as store:
        store.write(make_session(cells=1, big=first))
    crashed = subprocess.run(
        [sys.executable, "-c", _CRASH, str(root), str(SEAL_THEN_NAME_MIN)],
        capture_output=True,
        check=False,
        timeout=120,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert crashed.returncode == -signal.SIGKILL, crashed.stderr.decode()
    with SessionStore(root, key=KEY) as store:
        blobs = store.session_dir("nb") / "blobs"
        partial = [p for p in blobs.iterdir() if p.name.startswith(".tmp-")]
        assert len(partial) == 1  # the half-written blob, under its temporary name
        result = store.read("nb")  # ignored: the previous generation reads, whole
        assert result.problems == []
        assert len(result.session.history) == 1
        assert store.read_blob("nb", KEY.content_id(first)) == first
        assert store.repair(grace=600).temp_files_removed == []  # too young: maybe a writer's
        age(partial[0], 3600)
        assert store.repair(grace=600).temp_files_removed == partial
        assert not partial[0].exists()
        assert store.read_blob("nb", KEY.content_id(first)) == first
