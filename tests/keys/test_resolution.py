"""Resolving the master key: passphrase, OS keyring (the real keyring library), key file.

The order, what the marker decides, first use, and every way a keyring misbehaves (hangs, is
locked, drops writes, lost the key): never a second key. Rotation is in ``test_rotation.py``.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import keyring
import keyring.backend
import keyring.errors
import pytest
from keyring.backends import fail, null

from ipysession.errors import KeyringTimeout, KeyStoreError, KeyUnavailable
from ipysession.keys import crypto, files, location
from ipysession.keys import resolution as keystore
from ipysession.keys.resolution import KeyResolution, resolve_key
from tests.contract.keystore_suite import MemoryKeyring, secret_forms
from tests.keys.keyrings import (
    PENDING_ITEM,
    SERVICE_ITEM,
    TIMEOUT,
    BrokenKeyring,
    DroppingKeyring,
    EmptyChainer,
    HangingKeyring,
    InstallKeyring,
    LockedKeyring,
    LockedOnSetKeyring,
    LowPriorityKeyring,
    NotViableKeyring,
    NullLikeKeyring,
    PlaintextFileKeyring,
    SetFailsKeyring,
    can_read,
    chainer_of,
    finishes,
    key_id,
    key_in_keyring,
    marker,
    mode,
    raw,
    resolve,
)

# ---------------------------------------------------------------------------------------------
# No keyring (this headless machine): the key file


def test_fail_backend_uses_private_key_file(config_dir: Path, use_keyring: InstallKeyring) -> None:
    use_keyring(fail.Keyring())
    first = resolve(config_dir)
    assert first.backend == "file"
    assert first.reason == "no OS keyring available (keyring's fail backend)"
    key_file = config_dir / keystore.KEY_FILE_NAME
    assert first.location == str(key_file)
    assert first.config_dir == config_dir
    assert first.notice is not None
    assert str(key_file) in first.notice
    assert "fail backend" in first.notice
    if os.name == "posix":
        assert mode(key_file) == 0o600
        assert mode(config_dir) == 0o700
        assert mode(config_dir / keystore.MARKER_FILE_NAME) == 0o600
    assert marker(config_dir)["backend"] == "file"
    assert marker(config_dir)["key_id"] == key_id(first)
    assert not list(config_dir.glob("*.tmp"))

    second = resolve(config_dir)
    assert second.backend == "file"
    assert second.notice is None
    assert raw(second) == raw(first)
    assert "fail backend" in second.reason  # the marker remembers why


def test_machine_default_keyring_and_file_fast_path_in_fresh_processes(tmp_path: Path) -> None:
    """Real discovery in a fresh interpreter; later processes never import keyring at all."""
    code = (
        "import sys\n"
        "from ipysession.keys import resolution as keystore\n"
        "r = keystore.resolve_key()\n"
        "print(r.backend, 'keyring' in sys.modules, r.key.key_id_hex, r.notice is not None)\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("IPYSESSION_")}
    env["IPYSESSION_CONFIG_DIR"] = str(tmp_path / "config")
    # Never let a test touch a developer's real keyring: keyring's own env variable pins the
    # backend this headless machine discovers anyway.
    env["PYTHON_KEYRING_BACKEND"] = "keyring.backends.fail.Keyring"
    runs = [
        subprocess.run(
            [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
        ).stdout.split()
        for _ in range(2)
    ]
    assert runs[0][0] == "file"
    assert runs[0][1] == "True"
    assert runs[0][3] == "True"
    assert runs[1] == ["file", "False", runs[0][2], "False"]


def test_concurrent_first_use_creates_one_key(tmp_path: Path) -> None:
    code = "from ipysession.keys import resolve_key; print(resolve_key().key.key_id_hex)"
    env = {k: v for k, v in os.environ.items() if not k.startswith("IPYSESSION_")}
    env["IPYSESSION_CONFIG_DIR"] = str(tmp_path / "config")
    env["PYTHON_KEYRING_BACKEND"] = "keyring.backends.fail.Keyring"
    procs = [
        subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE, text=True)
        for _ in range(4)
    ]
    ids = {proc.communicate(timeout=60)[0].strip() for proc in procs}
    assert all(proc.returncode == 0 for proc in procs)
    assert len(ids) == 1
    assert json.loads((tmp_path / "config" / keystore.MARKER_FILE_NAME).read_text())[
        "key_id"
    ] == next(iter(ids))


@pytest.mark.parametrize(
    ("backend", "words"),
    [
        (fail.Keyring, "fail backend"),
        (null.Keyring, "null backend"),
        (EmptyChainer, "nothing to chain"),
        (NullLikeKeyring, "priority -1"),
    ],
)
def test_no_real_keyring_means_key_file(
    config_dir: Path,
    use_keyring: InstallKeyring,
    backend: type[keyring.backend.KeyringBackend],
    words: str,
) -> None:
    instance = backend()
    use_keyring(instance)
    resolution = resolve(config_dir)
    assert resolution.backend == "file"
    assert words in resolution.reason
    assert resolution.notice is not None
    assert words in resolution.notice
    if isinstance(instance, MemoryKeyring):
        assert instance.sets == 0  # a null-like keyring is not even written to


def test_key_file_readable_by_others_is_made_private(
    config_dir: Path, use_keyring: InstallKeyring, caplog: pytest.LogCaptureFixture
) -> None:
    if os.name != "posix":
        pytest.skip("POSIX permissions")
    use_keyring(fail.Keyring())
    first = resolve(config_dir)
    key_file = config_dir / keystore.KEY_FILE_NAME
    key_file.chmod(0o644)
    with caplog.at_level(logging.WARNING, logger="ipysession"):
        assert raw(resolve(config_dir)) == raw(first)
    assert mode(key_file) == 0o600
    assert "readable by others" in caplog.text


# ---------------------------------------------------------------------------------------------
# Passphrase


def test_passphrase_wins_over_keyring_and_key_file(
    config_dir: Path, use_keyring: InstallKeyring
) -> None:
    use_keyring(fail.Keyring())
    resolve(config_dir)  # a key file exists
    ring = MemoryKeyring()
    use_keyring(ring)
    resolution = resolve(config_dir, environ={keystore.PASSPHRASE_ENV: "hunter2"})
    assert resolution.backend == "passphrase"
    assert isinstance(resolution.key, crypto.PassphraseKey)
    assert "IPYSESSION_PASSPHRASE" in resolution.reason
    assert resolution.notice is None
    assert resolution.location is None
    assert ring.gets == ring.sets == 0
    assert "hunter2" not in repr(resolution)


def test_passphrase_from_process_environment(
    config_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(keystore.PASSPHRASE_ENV, "from the environment")
    assert resolve_key(config_dir=config_dir).backend == "passphrase"
    assert not config_dir.exists()


def test_forced_passphrase_without_one(config_dir: Path) -> None:
    with pytest.raises(KeyUnavailable, match="IPYSESSION_PASSPHRASE is not set"):
        resolve(config_dir, backend="passphrase")
    forced = resolve(config_dir, backend="passphrase", environ={keystore.PASSPHRASE_ENV: "x"})
    assert forced.backend == "passphrase"
    assert "key_backend" in forced.reason


def test_unknown_backend_is_refused(config_dir: Path) -> None:
    with pytest.raises(ValueError, match="key backend must be one of"):
        resolve(config_dir, backend="vault")


# ---------------------------------------------------------------------------------------------
# A keyring that works


def test_working_keyring_stores_the_key_once(config_dir: Path, use_keyring: InstallKeyring) -> None:
    ring = MemoryKeyring()
    use_keyring(ring)
    first = resolve(config_dir)
    assert first.backend == "keyring"
    assert first.location == "keyring service 'ipysession'"
    assert first.notice is not None
    assert "OS keyring" in first.notice
    assert list(ring.items) == [SERVICE_ITEM]
    assert crypto.MasterKey(raw(first)).key_id_hex == key_id(first)
    assert ring.items[SERVICE_ITEM] == secret_forms(raw(first))[1]  # base64 of the 32 bytes
    assert ring.sets == 1
    assert ring.gets == 2
    assert marker(config_dir)["backend"] == "keyring"
    assert not (config_dir / keystore.KEY_FILE_NAME).exists()

    second = resolve(config_dir)  # same process: read once, cached
    assert raw(second) == raw(first)
    assert second.notice is None
    assert ring.gets == 2

    keystore.clear_key_cache()  # a new process
    third = resolve(config_dir)
    assert raw(third) == raw(first)
    assert third.notice is None
    assert ring.gets == 3
    assert ring.sets == 1


def test_existing_keyring_item_without_marker_is_adopted(
    config_dir: Path, use_keyring: InstallKeyring, caplog: pytest.LogCaptureFixture
) -> None:
    ring = MemoryKeyring()
    use_keyring(ring)
    first = resolve(config_dir)
    (config_dir / keystore.MARKER_FILE_NAME).unlink()  # config dir lost; the keyring kept it
    keystore.clear_key_cache()
    with caplog.at_level(logging.WARNING, logger="ipysession"):
        again = resolve(config_dir)
    assert raw(again) == raw(first)
    assert ring.sets == 1
    assert marker(config_dir)["key_id"] == key_id(first)
    assert "without key-location.json" in caplog.text


def test_keyring_that_drops_writes_falls_back_to_file(
    config_dir: Path, use_keyring: InstallKeyring
) -> None:
    use_keyring(DroppingKeyring())
    resolution = resolve(config_dir)
    assert resolution.backend == "file"
    assert resolution.notice is not None
    assert "did not give the key back" in resolution.notice
    assert marker(config_dir)["backend"] == "file"


def test_keyring_failing_on_first_use_falls_back_to_file(
    config_dir: Path, use_keyring: InstallKeyring
) -> None:
    use_keyring(BrokenKeyring())
    resolution = resolve(config_dir)
    assert resolution.backend == "file"
    assert resolution.notice is not None
    assert "InitError" in resolution.notice


@pytest.mark.parametrize("backend", [PlaintextFileKeyring, LowPriorityKeyring])
def test_plaintext_keyring_refused_unless_opted_in(
    tmp_path: Path, use_keyring: InstallKeyring, backend: type[MemoryKeyring]
) -> None:
    ring = backend()
    use_keyring(ring)
    refused = resolve(tmp_path / "a")
    assert refused.backend == "file"
    assert "allow_plaintext_keyring=True" in refused.reason
    assert ring.sets == 0
    assert ring.gets == 0

    allowed = resolve(tmp_path / "b", allow_plaintext_keyring=True)
    assert allowed.backend == "keyring"
    assert ring.sets == 1


def test_chainer_with_real_backends_is_a_keyring(
    tmp_path: Path, use_keyring: InstallKeyring
) -> None:
    first, second = MemoryKeyring(), MemoryKeyring()
    use_keyring(chainer_of(first, second))
    resolution = resolve(tmp_path / "a")
    assert resolution.backend == "keyring"
    assert "TestChainer" in resolution.reason
    assert SERVICE_ITEM in first.items

    use_keyring(chainer_of(MemoryKeyring(), PlaintextFileKeyring()))
    refused = resolve(tmp_path / "b")
    assert refused.backend == "file"
    assert "chainer backend includes" in refused.reason


def test_backend_not_viable_here_means_key_file(
    config_dir: Path, use_keyring: InstallKeyring
) -> None:
    use_keyring(NotViableKeyring())
    resolution = resolve(config_dir)
    assert resolution.backend == "file"
    assert "not usable here" in resolution.reason
    assert "pywin32" in resolution.reason


def test_keyring_refusing_to_store_falls_back_without_echoing(
    config_dir: Path, use_keyring: InstallKeyring, caplog: pytest.LogCaptureFixture
) -> None:
    use_keyring(SetFailsKeyring())
    with caplog.at_level(logging.DEBUG, logger="ipysession"):
        resolution = resolve(config_dir)
    assert resolution.backend == "file"
    assert resolution.notice is not None
    assert "could not store the key (PasswordSetError)" in resolution.notice
    assert "refused" not in resolution.notice
    assert "refused" not in caplog.text


def test_cached_keyring_key_is_reread_after_another_process_rotates(
    config_dir: Path, use_keyring: InstallKeyring
) -> None:
    ring = MemoryKeyring()
    use_keyring(ring)
    first = resolve(config_dir)
    assert resolve(config_dir) is not None
    assert ring.gets == 2
    # Another process starts a rotation: pending item and marker change under us.
    new = crypto.MasterKey(crypto.new_master_key())
    ring.items[PENDING_ITEM] = secret_forms(new.raw)[1]
    document = marker(config_dir)
    document["pending_key_id"] = new.key_id_hex
    (config_dir / keystore.MARKER_FILE_NAME).write_text(json.dumps(document))
    during = resolve(config_dir)
    assert key_id(during) == new.key_id_hex
    assert can_read(during, crypto.MasterKey(raw(first)))


def test_waiting_for_another_process_creating_the_key_is_bounded(
    config_dir: Path, use_keyring: InstallKeyring, monkeypatch: pytest.MonkeyPatch
) -> None:
    import filelock

    use_keyring(fail.Keyring())
    monkeypatch.setattr(location, "_LOCK_SLACK", 0.2)
    config_dir.mkdir(mode=0o700)
    # The lock is per open file, so a second lock in this process waits like another one. It
    # gives up with an error that says why, instead of waiting for the holder.
    with (
        filelock.FileLock(config_dir / files.LOCK_FILE_NAME),
        pytest.raises(KeyStoreError, match="creating or rotating the master key"),
    ):
        finishes(lambda: resolve(config_dir, keyring_timeout=0.1))
    assert not (config_dir / keystore.KEY_FILE_NAME).exists()


# ---------------------------------------------------------------------------------------------
# A keyring that hangs, is locked, or lost the key: never a second key


def test_hanging_keyring_on_first_use_falls_back_within_timeout(
    config_dir: Path, use_keyring: InstallKeyring
) -> None:
    ring = HangingKeyring()
    use_keyring(ring)
    resolution = finishes(lambda: resolve(config_dir, keyring_timeout=TIMEOUT))
    # The keyring was asked, is still stuck in that call (abandoned, not awaited), and the
    # timeout is why the key went to a file.
    assert ring.entered == 1
    assert not ring.release.is_set()
    assert resolution.backend == "file"
    assert resolution.notice is not None
    assert f"did not answer within {TIMEOUT:g} s" in resolution.notice
    assert marker(config_dir)["backend"] == "file"

    # Later resolves take the file's fast path: the hung keyring is not asked again, even with
    # a timeout long enough to wait for it.
    assert raw(finishes(lambda: resolve(config_dir, keyring_timeout=60))) == raw(resolution)
    assert ring.entered == 1


def test_keyring_hanging_while_storing_falls_back(
    config_dir: Path, use_keyring: InstallKeyring
) -> None:
    ring = HangingKeyring(hang_get=False, hang_set=True)
    use_keyring(ring)
    resolution = finishes(lambda: resolve(config_dir, keyring_timeout=TIMEOUT))
    assert ring.entered == 2  # the read answered; the write is still stuck, abandoned
    assert ring.items == {}
    assert resolution.backend == "file"
    assert resolution.notice is not None
    assert "when storing the key" in resolution.notice


def test_forced_keyring_that_hangs_raises(config_dir: Path, use_keyring: InstallKeyring) -> None:
    use_keyring(HangingKeyring())
    with pytest.raises(KeyringTimeout):
        resolve(config_dir, backend="keyring", keyring_timeout=TIMEOUT)
    assert not config_dir.joinpath(keystore.KEY_FILE_NAME).exists()
    assert not config_dir.joinpath(keystore.MARKER_FILE_NAME).exists()


def test_hanging_keyring_holding_the_key_raises_timeout(
    config_dir: Path, use_keyring: InstallKeyring
) -> None:
    _, marker_bytes = key_in_keyring(config_dir, use_keyring)
    ring = HangingKeyring()
    use_keyring(ring)
    with pytest.raises(KeyringTimeout) as caught:
        finishes(lambda: resolve(config_dir, keyring_timeout=TIMEOUT))
    assert ring.entered == 1
    message = str(caught.value)
    assert f"did not answer within {TIMEOUT:g} s" in message
    assert "IPYSESSION_PASSPHRASE" in message
    assert "Unlock" in message
    assert isinstance(caught.value, KeyUnavailable)
    assert isinstance(caught.value, TimeoutError)
    assert not (config_dir / keystore.KEY_FILE_NAME).exists()
    assert (config_dir / keystore.MARKER_FILE_NAME).read_bytes() == marker_bytes

    # A second attempt while the first call still hangs does not pile up threads: it times out
    # waiting for the earlier call, and never calls the keyring a second time.
    with pytest.raises(KeyringTimeout):
        finishes(lambda: resolve(config_dir, keyring_timeout=TIMEOUT))
    assert ring.entered == 1


def test_locked_keyring_on_first_use_creates_nothing(
    config_dir: Path, use_keyring: InstallKeyring
) -> None:
    ring = LockedKeyring()
    use_keyring(ring)
    with pytest.raises(KeyUnavailable) as caught:
        resolve(config_dir)
    assert not isinstance(caught.value, KeyringTimeout)
    message = str(caught.value)
    assert "locked" in message
    assert "Failed to unlock the collection!" in message
    assert "IPYSESSION_PASSPHRASE" in message
    assert 'key_backend = "file"' in message
    assert ring.sets == 0
    assert not (config_dir / keystore.KEY_FILE_NAME).exists()
    assert not (config_dir / keystore.MARKER_FILE_NAME).exists()


def test_keyring_refusing_to_store_creates_nothing(
    config_dir: Path, use_keyring: InstallKeyring
) -> None:
    use_keyring(LockedOnSetKeyring())
    with pytest.raises(KeyUnavailable, match="refused to store"):
        resolve(config_dir)
    assert not (config_dir / keystore.KEY_FILE_NAME).exists()
    assert not (config_dir / keystore.MARKER_FILE_NAME).exists()


def test_locked_keyring_holding_the_key_raises(
    config_dir: Path, use_keyring: InstallKeyring
) -> None:
    _, marker_bytes = key_in_keyring(config_dir, use_keyring)
    ring = LockedKeyring()
    use_keyring(ring)
    with pytest.raises(KeyUnavailable) as caught:
        resolve(config_dir)
    assert "locked" in str(caught.value)
    assert "will not" in str(caught.value)
    assert ring.sets == 0
    assert not (config_dir / keystore.KEY_FILE_NAME).exists()
    assert (config_dir / keystore.MARKER_FILE_NAME).read_bytes() == marker_bytes


@pytest.mark.parametrize(
    ("backend", "error", "words"),
    [
        (MemoryKeyring, KeyUnavailable, "has no ipysession master key"),
        (fail.Keyring, KeyUnavailable, "no usable keyring is available now"),
        (BrokenKeyring, KeyUnavailable, "InitError"),
    ],
)
def test_keyring_without_the_key_it_should_hold_raises(
    config_dir: Path,
    use_keyring: InstallKeyring,
    backend: type[keyring.backend.KeyringBackend],
    error: type[Exception],
    words: str,
) -> None:
    _, marker_bytes = key_in_keyring(config_dir, use_keyring)
    use_keyring(backend())  # another keyring now: empty, absent, or broken
    with pytest.raises(error, match=words):
        resolve(config_dir)
    assert not (config_dir / keystore.KEY_FILE_NAME).exists()
    assert (config_dir / keystore.MARKER_FILE_NAME).read_bytes() == marker_bytes


def test_keyring_item_that_is_not_a_key(config_dir: Path, use_keyring: InstallKeyring) -> None:
    ring = MemoryKeyring()
    use_keyring(ring)
    resolve(config_dir)
    ring.items[SERVICE_ITEM] = "not base64!"
    keystore.clear_key_cache()
    with pytest.raises(KeyStoreError, match="does not hold a valid"):
        resolve(config_dir)


def test_keyring_item_with_another_key_names_both_ids(
    config_dir: Path, use_keyring: InstallKeyring
) -> None:
    ring = MemoryKeyring()
    use_keyring(ring)
    first = resolve(config_dir)
    other = crypto.MasterKey(crypto.new_master_key())
    ring.items[SERVICE_ITEM] = secret_forms(other.raw)[1]
    keystore.clear_key_cache()
    with pytest.raises(KeyStoreError) as caught:
        resolve(config_dir)
    assert key_id(first) in str(caught.value)
    assert other.key_id_hex in str(caught.value)


# ---------------------------------------------------------------------------------------------
# The marker and the key file


def test_key_file_id_mismatch_names_both_ids(config_dir: Path, use_keyring: InstallKeyring) -> None:
    use_keyring(fail.Keyring())
    first = resolve(config_dir)
    marker_path = config_dir / keystore.MARKER_FILE_NAME
    document = marker(config_dir)
    document["key_id"] = "00" * crypto.KEY_ID_SIZE
    marker_path.write_text(json.dumps(document))
    with pytest.raises(KeyStoreError) as caught:
        resolve(config_dir)
    assert key_id(first) in str(caught.value)
    assert "00" * crypto.KEY_ID_SIZE in str(caught.value)


def test_missing_key_file_is_an_error_not_a_new_key(
    config_dir: Path, use_keyring: InstallKeyring
) -> None:
    use_keyring(fail.Keyring())
    first = resolve(config_dir)
    (config_dir / keystore.KEY_FILE_NAME).unlink()
    with pytest.raises(KeyStoreError, match="key file is missing") as caught:
        resolve(config_dir)
    assert key_id(first) in str(caught.value)
    assert not (config_dir / keystore.KEY_FILE_NAME).exists()


def test_key_file_without_marker_is_adopted(config_dir: Path, use_keyring: InstallKeyring) -> None:
    use_keyring(fail.Keyring())
    first = resolve(config_dir)
    (config_dir / keystore.MARKER_FILE_NAME).unlink()  # a crash between key file and marker
    ring = MemoryKeyring()
    use_keyring(ring)  # even with a working keyring now, the existing file key is kept
    again = resolve(config_dir)
    assert again.backend == "file"
    assert raw(again) == raw(first)
    assert ring.sets == 0
    assert marker(config_dir)["backend"] == "file"


@pytest.mark.parametrize(
    ("name", "content", "words"),
    [
        (keystore.MARKER_FILE_NAME, "{not json", "marker is damaged"),
        (keystore.MARKER_FILE_NAME, '{"backend": "cloud", "key_id": "x"}', "marker is damaged"),
        (keystore.KEY_FILE_NAME, "{not json", "not JSON"),
        (keystore.KEY_FILE_NAME, '{"format": "other"}', "not an ipysession key file"),
        (keystore.KEY_FILE_NAME, '{"format": "ipysession-master-key", "key": "AAAA"}', "32-byte"),
    ],
)
def test_damaged_files_are_reported(
    config_dir: Path, use_keyring: InstallKeyring, name: str, content: str, words: str
) -> None:
    use_keyring(fail.Keyring())
    resolve(config_dir)
    (config_dir / name).write_text(content)
    with pytest.raises(KeyStoreError, match=words):
        resolve(config_dir)


def test_forced_backend_never_moves_or_duplicates_a_key(
    tmp_path: Path, use_keyring: InstallKeyring
) -> None:
    use_keyring(fail.Keyring())
    in_file = tmp_path / "file"
    resolve(in_file)
    use_keyring(MemoryKeyring())
    with pytest.raises(KeyStoreError, match="lives in the key file"):
        resolve(in_file, backend="keyring")
    in_keyring = tmp_path / "keyring"
    resolve(in_keyring)
    with pytest.raises(KeyStoreError, match="lives in the OS keyring"):
        resolve(in_keyring, backend="file")
    (in_file / keystore.MARKER_FILE_NAME).unlink()
    with pytest.raises(KeyStoreError, match="a key file already exists"):
        resolve(in_file, backend="keyring")


def test_forced_file_backend_skips_keyring(config_dir: Path, use_keyring: InstallKeyring) -> None:
    ring = MemoryKeyring()
    use_keyring(ring)
    resolution = resolve(config_dir, backend="file")
    assert resolution.backend == "file"
    assert "key_backend is 'file'" in resolution.reason
    assert ring.gets == ring.sets == 0


def test_forced_keyring_without_keyring_raises(
    config_dir: Path, use_keyring: InstallKeyring
) -> None:
    use_keyring(fail.Keyring())
    with pytest.raises(KeyUnavailable, match="fail backend"):
        resolve(config_dir, backend="keyring")
    use_keyring(DroppingKeyring())
    with pytest.raises(KeyStoreError, match="did not give the key back"):
        resolve(config_dir, backend="keyring")
    assert not config_dir.joinpath(keystore.KEY_FILE_NAME).exists()


def test_unusable_config_dir_is_reported(tmp_path: Path, use_keyring: InstallKeyring) -> None:
    use_keyring(fail.Keyring())
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the config dir should be")
    with pytest.raises(KeyStoreError, match="Not a directory") as caught:
        resolve(blocker / "config")
    assert caught.value.hint is not None
    assert "permissions" in caught.value.hint


def test_unwritable_key_file_is_reported(
    config_dir: Path, use_keyring: InstallKeyring, monkeypatch: pytest.MonkeyPatch
) -> None:
    use_keyring(fail.Keyring())

    def no_space(*args: object, **kwargs: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", no_space)
    with pytest.raises(KeyStoreError, match="No space left on device"):
        resolve(config_dir)
    assert not list(config_dir.glob("*.tmp"))
    assert not (config_dir / keystore.KEY_FILE_NAME).exists()


# ---------------------------------------------------------------------------------------------
# Secrets stay secret; the test double


def test_key_never_in_repr_str_or_log_records(
    tmp_path: Path, use_keyring: InstallKeyring, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="ipysession")
    seen: list[KeyResolution] = []
    use_keyring(fail.Keyring())
    seen += [resolve(tmp_path / "file"), resolve(tmp_path / "file")]
    ring = MemoryKeyring()
    use_keyring(ring)
    seen += [resolve(tmp_path / "ring"), resolve(tmp_path / "ring")]
    old, new = keystore.rotate_key(seen[-1])
    seen.append(keystore.commit_rotation(seen[-1], new))
    use_keyring(HangingKeyring())
    keystore.clear_key_cache()
    with pytest.raises(KeyringTimeout) as caught:
        resolve(tmp_path / "ring", keyring_timeout=0.1)

    keys = {raw(resolution) for resolution in seen} | {old.raw, new.raw}
    texts = [record.getMessage() for record in caplog.records]
    texts += [repr(r) for r in seen] + [str(r) for r in seen] + [repr(old), repr(new)]
    texts += [str(caught.value), repr(caught.value)]
    assert caplog.records  # something was logged, and none of it holds a key
    for text in texts:
        for key in keys:
            for form in secret_forms(key):
                assert form not in text


def test_memory_key_touches_nothing(
    tmp_path: Path, use_keyring: InstallKeyring, monkeypatch: pytest.MonkeyPatch
) -> None:
    ring = MemoryKeyring()
    use_keyring(ring)
    monkeypatch.chdir(tmp_path)
    fixed = crypto.new_master_key()
    resolution = keystore.memory_key(fixed)
    assert resolution.backend == "memory"
    assert raw(resolution) == fixed
    assert resolution.location is None
    assert resolution.notice is None
    assert keystore.memory_key(fixed).key.content_id(b"x") == resolution.key.content_id(b"x")
    assert raw(keystore.memory_key()) != fixed
    assert ring.gets == ring.sets == 0
    assert list(tmp_path.iterdir()) == []
    assert fixed.hex() not in repr(resolution)


def test_zero_timeout_never_waits(config_dir: Path, use_keyring: InstallKeyring) -> None:
    use_keyring(HangingKeyring())
    resolution = finishes(lambda: resolve(config_dir, keyring_timeout=0))
    assert resolution.backend == "file"
    assert resolution.notice is not None
    assert "did not answer within 0 s" in resolution.notice
