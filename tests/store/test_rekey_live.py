"""A store that follows the key (a running kernel's) while ``ipysession rekey`` runs: no file is
ever sealed with a key that rekey removes, and values already stored stay reachable."""

from __future__ import annotations

import dataclasses
import threading
from pathlib import Path

import pytest

from ipysession.connections.records import make_record
from ipysession.errors import KeyUnavailable
from ipysession.keys.crypto import MasterKey
from ipysession.keys.resolution import KeyResolution, commit_rotation, resolve_key, rotate_key
from ipysession.keys.watch import KeyWatch
from ipysession.model import Session
from ipysession.store import SessionStore, fileformat
from ipysession.store.recent import RecentConnections
from tests.builders import BIG, CONN_SECRET, make_session, wait_for


def resolve(config_dir: Path) -> KeyResolution:
    return resolve_key(backend="file", config_dir=config_dir, environ={})


def kernel_store(root: Path, config_dir: Path) -> tuple[SessionStore, KeyWatch]:
    """A store as a kernel's SessionManager makes it: it asks the watch before each write."""
    watch = KeyWatch(resolve(config_dir), lambda: resolve(config_dir))
    return SessionStore(root, key=watch.current_key(), key_source=watch.current_key), watch


def run_rekey(root: Path, config_dir: Path) -> MasterKey:
    """What `ipysession rekey` does (another process: its own resolution and store)."""
    resolution = resolve(config_dir)
    _, new = rotate_key(resolution)
    with SessionStore(root, key=resolution.key) as store:
        store.rekey(new)
    commit_rotation(resolution, new)
    return MasterKey(new.raw)  # the new key alone: what a kernel starting afterwards has


def key_ids_on_disk(root: Path) -> set[str]:
    files = [p for p in (root / "sessions").rglob("*") if p.suffix in (".ipys", ".ipyb")]
    assert files
    return {fileformat.read_header(p.read_bytes()).key_id.hex() for p in files}


def as_reference(session: Session, blobs: dict[str, str]) -> Session:
    """The kernel's next snapshot: values already in blobs are kept as their blob id only."""
    variables = {
        name: dataclasses.replace(record, data=None, blob=blobs[name]) if name in blobs else record
        for name, record in session.variables.items()
    }
    return dataclasses.replace(session, variables=variables)


@pytest.fixture
def config_dir(tmp_path: Path) -> Path:
    return tmp_path / "config"


def test_a_write_after_rekey_seals_with_the_new_key_and_keeps_stored_values(
    tmp_path: Path, config_dir: Path
) -> None:
    root = tmp_path / "root"
    store, watch = kernel_store(root, config_dir)
    old_id = store.key.key_id_hex  # type: ignore[attr-defined]
    first = make_session("nb", big=BIG)
    written = store.write(first)
    assert written.blobs  # big went to a blob; the kernel keeps only its id from now on

    new_key = run_rekey(root, config_dir)
    assert new_key.key_id_hex != old_id

    nxt = as_reference(make_session("nb", cells=2, big=BIG), written.blobs)
    result = store.write(nxt)  # the store still holds the old key object: it must follow

    assert result.lost_blobs == {}
    assert store.key.key_id_hex == new_key.key_id_hex  # type: ignore[attr-defined]
    assert key_ids_on_disk(root) == {new_key.key_id_hex}
    with SessionStore(root, key=new_key) as fresh:  # the next kernel, after a restart
        back = fresh.read("nb")
        big = back.session.variables["big"]
        assert big.skipped is None
        assert big.blob is not None
        assert fresh.read_blob("nb", big.blob) == BIG
        assert len(back.session.history) == 2
    assert watch.resolution.key.key_id_hex == new_key.key_id_hex  # type: ignore[attr-defined]


def test_a_checkpoint_after_rekey_seals_with_the_new_key(tmp_path: Path, config_dir: Path) -> None:
    root = tmp_path / "root"
    store, _ = kernel_store(root, config_dir)
    store.write(make_session("nb"))
    new_key = run_rekey(root, config_dir)
    store.checkpoint("nb", "before-refactor", make_session("nb", cells=3))
    assert key_ids_on_disk(root) == {new_key.key_id_hex}


def test_writes_racing_a_rekey_never_leave_an_old_key_file(
    tmp_path: Path, config_dir: Path
) -> None:
    root = tmp_path / "root"
    store, _ = kernel_store(root, config_dir)
    blobs = store.write(make_session("nb", big=BIG)).blobs
    stop = threading.Event()
    writes: list[int] = []
    errors: list[BaseException] = []

    def keep_saving() -> None:  # the kernel's writer thread, one save per cell
        cells = 1
        while not stop.is_set():
            cells += 1
            try:
                store.write(as_reference(make_session("nb", cells=cells, big=BIG), blobs))
            except BaseException as exc:  # reported by the assertion below
                errors.append(exc)
                return
            writes.append(cells)

    writer = threading.Thread(target=keep_saving, name="test-writer", daemon=True)
    writer.start()
    wait_for(lambda: len(writes) >= 2, "the writer saving")
    new_key = run_rekey(root, config_dir)
    saved_before = len(writes)
    wait_for(lambda: len(writes) >= saved_before + 2, "the writer saving after the rekey")
    stop.set()
    writer.join(30)

    assert not errors
    assert key_ids_on_disk(root) == {new_key.key_id_hex}
    with SessionStore(root, key=new_key) as fresh:
        back = fresh.read("nb").session
        record = back.variables["big"]
        assert record.blob is not None
        assert fresh.read_blob("nb", record.blob) == BIG
        assert len(back.history) == writes[-1]


def test_a_kernel_that_cannot_read_the_new_key_writes_nothing(
    tmp_path: Path, config_dir: Path
) -> None:
    root = tmp_path / "root"
    store, _ = kernel_store(root, config_dir)
    store.write(make_session("nb"))
    before = store.generations("nb")
    rotate_key(resolve(config_dir))
    (config_dir / "master.key").write_text("{}")  # the key file is damaged meanwhile

    with pytest.raises(KeyUnavailable, match="Nothing was saved"):
        store.write(make_session("nb", cells=2))
    assert store.generations("nb") == before


def test_a_store_without_key_source_keeps_its_key(tmp_path: Path, config_dir: Path) -> None:
    root = tmp_path / "root"
    start = resolve(config_dir)
    with SessionStore(root, key=start.key) as store:
        store.write(make_session("nb"))
        rotate_key(start)
        store.write(make_session("nb", cells=2))
        assert store.key is start.key  # the CLI's own store: rekey sets its key itself


def test_without_a_rekey_blob_references_are_kept(tmp_path: Path, config_dir: Path) -> None:
    root = tmp_path / "root"
    store, _ = kernel_store(root, config_dir)
    blobs = store.write(make_session("nb", big=BIG)).blobs
    again = as_reference(make_session("nb", cells=2, big=BIG), blobs)
    assert store.write(again).lost_blobs == {}
    assert store.read("nb").session.variables["big"].blob == blobs["big"]


def test_a_kernel_reads_the_recent_list_after_rekey_and_adds_to_it_with_the_new_key(
    tmp_path: Path, config_dir: Path
) -> None:
    root = tmp_path / "root"
    store, _ = kernel_store(root, config_dir)
    old_key = store.key
    db = make_record("db", "sqlalchemy", f"postgresql://bob:{CONN_SECRET}@h/sales")
    store.recent_connections().remember(db)

    new_key = run_rekey(root, config_dir)

    # No session written since: the store still holds the old key object, and must follow.
    recent = store.recent_connections().records()
    assert [r.name for r in recent] == ["db"]
    assert recent[0].secrets == db.secrets
    store.recent_connections().remember(make_record("lite", "sqlalchemy", "sqlite:///x.db"))
    assert [r.name for r in RecentConnections(root, new_key).records()] == ["lite", "db"]
    assert RecentConnections(root, old_key).records() == []  # nothing sealed with the old key
