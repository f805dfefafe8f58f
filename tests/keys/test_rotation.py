"""Rotating the master key (``ipysession rekey``): both keys readable until the commit, whatever
crashes where, in a key file and in the OS keyring."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path

import pytest
from keyring.backends import fail

from ipysession.errors import KeyringTimeout, KeyStoreError, KeyUnavailable
from ipysession.keys import crypto, location
from ipysession.keys import resolution as keystore
from ipysession.keys.resolution import KeyResolution
from ipysession.keys.watch import KeyWatch
from tests.contract.keystore_suite import MemoryKeyring, secret_forms
from tests.keys.keyrings import (
    PENDING_ITEM,
    SERVICE_ITEM,
    TIMEOUT,
    DroppingKeyring,
    HangingKeyring,
    InstallKeyring,
    LockedKeyring,
    LockedOnSetKeyring,
    UndeletableKeyring,
    can_read,
    key_id,
    key_in_keyring,
    marker,
    raw,
    resolve,
)

# ---------------------------------------------------------------------------------------------
# Rotation (ipysession rekey)


class Crash(BaseException):
    """Stands for the process being killed at that point."""


def crash_on_marker_write(monkeypatch: pytest.MonkeyPatch) -> None:
    def crash(self: object, marker: object) -> None:
        raise Crash

    monkeypatch.setattr(location.KeyLocation, "write_marker", crash)


def fresh(config_dir: Path) -> KeyResolution:
    keystore.clear_key_cache()
    return resolve(config_dir)


@pytest.mark.parametrize("where", ["file", "keyring"])
def test_rotation_keeps_both_keys_until_commit(
    config_dir: Path, use_keyring: InstallKeyring, where: str
) -> None:
    ring = MemoryKeyring() if where == "keyring" else None
    use_keyring(ring or fail.Keyring())
    start = resolve(config_dir)
    assert start.backend == where
    old_key = start.key
    assert isinstance(old_key, crypto.MasterKey)

    old, new = keystore.rotate_key(start)
    assert old.raw == old_key.raw
    assert new.raw != old.raw
    assert can_read(new, old)
    assert can_read(new, new)
    assert marker(config_dir)["pending_key_id"] == new.key_id_hex
    if ring is not None:
        assert ring.items[PENDING_ITEM] == secret_forms(new.raw)[1]
        assert ring.items[SERVICE_ITEM] == secret_forms(old.raw)[1]

    during = fresh(config_dir)  # e.g. a kernel starting while `ipysession rekey` runs
    assert key_id(during) == new.key_id_hex  # writes with the new key
    assert can_read(during, old)
    assert can_read(during, new)

    assert keystore.rotate_key(during)[1].raw == new.raw  # resuming keeps the same new key

    committed = keystore.commit_rotation(during, new)
    assert raw(committed) == new.raw
    assert not can_read(committed, old)
    assert marker(config_dir)["key_id"] == new.key_id_hex
    assert marker(config_dir)["pending_key_id"] is None
    if ring is not None:
        assert PENDING_ITEM not in ring.items
        assert ring.items[SERVICE_ITEM] == secret_forms(new.raw)[1]
    after = fresh(config_dir)
    assert raw(after) == new.raw
    assert not can_read(after, old)
    assert raw(keystore.commit_rotation(after, new)) == new.raw  # committing twice is harmless


@pytest.mark.parametrize("where", ["file", "keyring"])
def test_crash_while_starting_rotation_keeps_both_keys(
    config_dir: Path, use_keyring: InstallKeyring, monkeypatch: pytest.MonkeyPatch, where: str
) -> None:
    use_keyring(MemoryKeyring() if where == "keyring" else fail.Keyring())
    start = resolve(config_dir)
    old = start.key
    assert isinstance(old, crypto.MasterKey)
    with monkeypatch.context() as patch:
        crash_on_marker_write(patch)
        with pytest.raises(Crash):
            keystore.rotate_key(start)  # new key stored, marker not yet written

    after = fresh(config_dir)
    assert key_id(after) == old.key_id_hex  # still the old key for writing...
    old_again, new = keystore.rotate_key(after)  # ...and the rotation resumes with the stored key
    assert old_again.raw == old.raw
    assert can_read(fresh(config_dir), old)
    assert can_read(fresh(config_dir), new)
    if where == "file":
        document = json.loads((config_dir / keystore.KEY_FILE_NAME).read_text())
        assert document["pending_key_id"] == new.key_id_hex


@pytest.mark.parametrize("where", ["file", "keyring"])
def test_crash_while_committing_rotation_loses_nothing(
    config_dir: Path, use_keyring: InstallKeyring, monkeypatch: pytest.MonkeyPatch, where: str
) -> None:
    use_keyring(MemoryKeyring() if where == "keyring" else fail.Keyring())
    start = resolve(config_dir)
    old, new = keystore.rotate_key(start)
    with monkeypatch.context() as patch:
        crash_on_marker_write(patch)
        with pytest.raises(Crash):
            keystore.commit_rotation(start, new)  # key store rewritten, marker not yet

    after = fresh(config_dir)
    assert key_id(after) == new.key_id_hex
    assert can_read(after, new)
    # Running rekey again finishes the interrupted commit and rotates from the new key.
    again_old, again_new = keystore.rotate_key(after)
    assert again_old.raw == new.raw
    assert again_new.raw not in (old.raw, new.raw)
    keystore.commit_rotation(after, again_new)
    assert raw(fresh(config_dir)) == again_new.raw


def test_rotating_after_a_commit_that_could_not_delete_the_pending_item(
    config_dir: Path, use_keyring: InstallKeyring
) -> None:
    ring = MemoryKeyring()
    use_keyring(ring)
    start = resolve(config_dir)
    _, new = keystore.rotate_key(start)
    keystore.commit_rotation(start, new)
    ring.items[PENDING_ITEM] = ring.items[SERVICE_ITEM]  # as if the delete had failed
    old, newer = keystore.rotate_key(fresh(config_dir))
    assert old.raw == new.raw
    assert newer.raw != new.raw


def test_commit_survives_a_pending_item_that_cannot_be_deleted(
    config_dir: Path, use_keyring: InstallKeyring, caplog: pytest.LogCaptureFixture
) -> None:
    use_keyring(UndeletableKeyring())
    start = resolve(config_dir)
    _, new = keystore.rotate_key(start)
    with caplog.at_level(logging.WARNING, logger="ipysession"):
        committed = keystore.commit_rotation(start, new)
    assert raw(committed) == new.raw
    assert "Could not delete the keyring item master-key-pending" in caplog.text
    old, newer = keystore.rotate_key(fresh(config_dir))
    assert old.raw == new.raw
    assert newer.raw != new.raw


def test_rotation_with_a_keyring_that_lost_the_pending_key(
    config_dir: Path, use_keyring: InstallKeyring
) -> None:
    ring = MemoryKeyring()
    use_keyring(ring)
    start = resolve(config_dir)
    _, new = keystore.rotate_key(start)
    del ring.items[PENDING_ITEM]
    keystore.clear_key_cache()
    with pytest.raises(KeyStoreError) as caught:
        keystore.rotate_key(start)
    assert new.key_id_hex in str(caught.value)


@pytest.mark.parametrize(
    ("backend", "error", "words"),
    [
        (LockedOnSetKeyring, KeyUnavailable, "locked"),
        (lambda: HangingKeyring(hang_get=False), KeyringTimeout, "while storing"),
        (DroppingKeyring, KeyStoreError, "did not give 'master-key-pending' back"),
    ],
)
def test_rotation_with_a_keyring_that_will_not_store_changes_nothing(
    config_dir: Path,
    use_keyring: InstallKeyring,
    backend: Callable[[], MemoryKeyring],
    error: type[Exception],
    words: str,
) -> None:
    start, marker_bytes = key_in_keyring(config_dir, use_keyring)
    ring = backend()
    ring.items[SERVICE_ITEM] = secret_forms(raw(start))[1]
    use_keyring(ring)
    with pytest.raises(error, match=words):
        keystore.rotate_key(start, keyring_timeout=TIMEOUT)
    assert (config_dir / keystore.MARKER_FILE_NAME).read_bytes() == marker_bytes


def test_rotation_needs_a_stored_key(config_dir: Path) -> None:
    passphrase = resolve(config_dir, environ={keystore.PASSPHRASE_ENV: "pw"})
    with pytest.raises(KeyStoreError, match="passphrase key cannot be rotated"):
        keystore.rotate_key(passphrase)
    with pytest.raises(KeyStoreError, match="memory key cannot be rotated"):
        keystore.rotate_key(keystore.memory_key())


def test_commit_of_a_key_that_is_not_pending(config_dir: Path, use_keyring: InstallKeyring) -> None:
    use_keyring(fail.Keyring())
    start = resolve(config_dir)
    keystore.rotate_key(start)
    stranger = crypto.MasterKey(crypto.new_master_key())
    with pytest.raises(KeyStoreError, match="is not the pending key"):
        keystore.commit_rotation(start, stranger)


def test_rotation_without_marker(config_dir: Path, use_keyring: InstallKeyring) -> None:
    use_keyring(fail.Keyring())
    start = resolve(config_dir)
    (config_dir / keystore.MARKER_FILE_NAME).unlink()
    with pytest.raises(KeyStoreError, match="no master key to rotate"):
        keystore.rotate_key(start)


# ---------------------------------------------------------------------------------------------
# A running kernel follows the rotation (KeyWatch)


def watch_of(config_dir: Path, notes: list[str] | None = None) -> KeyWatch:
    start = resolve(config_dir)
    return KeyWatch(
        start, lambda: fresh(config_dir), on_change=notes.append if notes is not None else None
    )


def test_watch_keeps_the_key_while_nothing_changes(
    config_dir: Path, use_keyring: InstallKeyring
) -> None:
    use_keyring(fail.Keyring())
    watch = watch_of(config_dir)
    held = watch.resolution
    assert watch.current() is held
    assert watch.current_key() is held.key


@pytest.mark.parametrize("where", ["file", "keyring"])
def test_watch_follows_a_rotation_and_its_commit(
    config_dir: Path, use_keyring: InstallKeyring, where: str
) -> None:
    ring = MemoryKeyring() if where == "keyring" else None
    use_keyring(ring or fail.Keyring())
    notes: list[str] = []
    watch = watch_of(config_dir, notes)
    old_id = key_id(watch.resolution)

    old, new = keystore.rotate_key(watch.resolution)  # `ipysession rekey` in another process
    reads = ring.gets if ring is not None else 0
    during = watch.current()
    assert key_id(during) == new.key_id_hex  # the next write seals with the new key
    assert can_read(during, old)  # and what rekey has not re-encrypted yet stays readable
    assert len(notes) == 1
    assert new.key_id_hex in notes[0]
    assert "ipysession rekey" in notes[0]
    if ring is not None:
        after_change = ring.gets
        assert after_change > reads  # read again once, for the change
        watch.current()
        assert ring.gets == after_change  # and not again for the next write

    keystore.commit_rotation(during, new)
    reads = ring.gets if ring is not None else 0
    assert key_id(watch.current()) == new.key_id_hex
    assert key_id(watch.current()) != old_id
    if ring is not None:
        assert ring.gets == reads  # the commit keeps the key it writes with: no read
    for note in notes:  # the notice names key ids, never a key
        assert all(form not in note for form in secret_forms(new.raw))


def test_watch_refuses_when_the_new_key_cannot_be_read(
    config_dir: Path, use_keyring: InstallKeyring
) -> None:
    use_keyring(MemoryKeyring())
    watch = watch_of(config_dir)
    old, new = keystore.rotate_key(watch.resolution)
    use_keyring(LockedKeyring())  # the keyring locked itself since the kernel started

    with pytest.raises(KeyUnavailable) as caught:
        watch.current_key()
    message = str(caught.value)
    assert "could not read the new one" in message
    assert "Nothing was saved" in message
    assert "the next save tries again" in message
    for secret in (old.raw, new.raw):
        assert all(form not in message for form in secret_forms(secret))
    assert key_id(watch.resolution) == old.key_id_hex  # still held, but never written with


def test_watch_refuses_a_key_that_is_not_the_one_the_marker_names(
    config_dir: Path, use_keyring: InstallKeyring
) -> None:
    use_keyring(fail.Keyring())
    start = resolve(config_dir)
    keystore.rotate_key(start)
    stale = KeyWatch(start, lambda: start)  # a resolve that keeps giving the old key
    with pytest.raises(KeyUnavailable, match="resolving it again gave key"):
        stale.current()


def test_watch_leaves_passphrase_and_memory_keys_alone(config_dir: Path) -> None:
    for held in (
        resolve(config_dir, environ={keystore.PASSPHRASE_ENV: "pw"}),
        keystore.memory_key(),
    ):
        watch = KeyWatch(held, lambda: pytest.fail("never resolved again"))
        assert watch.current() is held
