"""Replacing the master key (``ipysession rekey``) without a moment where a file is unreadable.

:func:`rotate_key` stores a new key *alongside* the current one and records it in the marker as
``pending_key_id``; :func:`commit_rotation` makes it the only key once every session has been
re-encrypted. While a rotation is pending, :func:`~ipysession.keys.resolution.resolve_key` returns
a key that writes with the new key and reads with both, so a crash at any point leaves every file
readable:

* key file: ``{"key": <old>, "pending": <new>}`` is written first, then the marker. Commit writes
  ``{"key": <new>}`` first, then the marker.
* keyring: the new key goes to a second item, ``master-key-pending``, then the marker. Commit
  rewrites ``master-key`` with the new key, verifies it, updates the marker, then deletes the
  pending item. This commit is the only time ipysession rewrites a keyring item.

Calling :func:`rotate_key` again after a crash resumes the pending rotation with the same new key
(and finishes a commit that was cut short), rather than creating a third key. Both functions hold
the ``key.lock`` creation lock, and both forget this process's cached keyring read first.
"""

from __future__ import annotations

import dataclasses
import logging

from ipysession.errors import KeyringTimeout, KeyStoreError
from ipysession.keys import files as keyfiles
from ipysession.keys.crypto import MasterKey, new_master_key
from ipysession.keys.keyring import (
    BOTH_ITEMS,
    KEYRING_ITEM,
    KEYRING_PENDING_ITEM,
    KeyringFailed,
    KeyringHung,
    keyring_call,
    keyring_delete,
    keyring_write,
)
from ipysession.keys.location import (
    HINT_KEY_IN_KEYRING,
    PROCESS_CACHE,
    KeyLocation,
    KeyResolution,
)

__all__ = ["commit_rotation", "rotate_key"]

log = logging.getLogger("ipysession")


def rotate_key(
    resolution: KeyResolution, *, keyring_timeout: float = 30.0
) -> tuple[MasterKey, MasterKey]:
    """Start (or resume) a key rotation: ``(old, new)``.

    The new key is stored alongside the old one and recorded as pending in the marker. ``new``
    writes with the new key and reads with both; re-encrypt every session with it, then call
    :func:`commit_rotation`. Until then :func:`resolve_key` returns a key that reads both, and a
    crash leaves both keys recoverable; calling this again resumes with the same new key.
    """
    location = _location_for(resolution, keyring_timeout)
    with location.creation_lock():
        return _rotate(location)


def commit_rotation(
    resolution: KeyResolution, new_key: MasterKey, *, keyring_timeout: float = 30.0
) -> KeyResolution:
    """Make ``new_key`` (from :func:`rotate_key`) the only key; returns the new resolution.

    Call it only once every session has been re-encrypted with ``new_key``: the old key is gone
    afterwards. Calling it again after it succeeded is harmless.
    """
    location = _location_for(resolution, keyring_timeout)
    with location.creation_lock():
        return _commit(location, new_key)


def _location_for(resolution: KeyResolution, keyring_timeout: float) -> KeyLocation:
    if resolution.backend not in ("file", "keyring") or resolution.config_dir is None:
        what = f"A {resolution.backend} key cannot be rotated by ipysession"
        hint = (
            "To change a passphrase, export your sessions with the old one and import them "
            "with the new one"
            if resolution.backend == "passphrase"
            else "Rotate a key that lives in the OS keyring or a key file"
        )
        raise KeyStoreError(what, hint=hint)
    return KeyLocation(resolution.config_dir, timeout=keyring_timeout, allow_plaintext=True)


def _current_marker(location: KeyLocation) -> keyfiles.Marker:
    marker = location.read_marker()
    if marker is None:
        msg = "There is no master key to rotate yet"
        raise KeyStoreError(
            msg,
            path=location.marker_path,
            hint="Save a session first",
        )
    return marker


def _rotate(location: KeyLocation) -> tuple[MasterKey, MasterKey]:
    marker = _current_marker(location)
    PROCESS_CACHE.forget_keyring_read(location.cache_key)
    if marker.backend == "file":
        return _rotate_file(location, marker)
    return _rotate_keyring(location, marker)


def _commit(location: KeyLocation, new_key: MasterKey) -> KeyResolution:
    marker = _current_marker(location)
    new_id = new_key.key_id_hex
    PROCESS_CACHE.forget_keyring_read(location.cache_key)
    if marker.pending_key_id is None and marker.key_id == new_id:
        return location.follow(marker, "auto")  # committed already
    if marker.pending_key_id != new_id:
        msg = (
            f"Key {new_id} is not the pending key (the marker says current {marker.key_id}, "
            f"pending {marker.pending_key_id or 'none'})"
        )
        raise KeyStoreError(
            msg,
            path=location.marker_path,
            hint="Run the rotation again (ipysession rekey)",
        )
    if marker.backend == "file":
        location.write_key_file(keyfiles.KeyFile(new_key.raw))
    else:
        _keyring_store(location, KEYRING_ITEM, new_key.raw, marker)
    committed = dataclasses.replace(marker, key_id=new_id, pending_key_id=None)
    location.write_marker(committed)
    log.info("Key rotation committed: the master key is now %s", new_id)
    if marker.backend == "keyring":
        try:
            keyring_call(
                lambda: keyring_delete(KEYRING_PENDING_ITEM),
                deadline=location.deadline,
                what="deleting the pending key from the OS keyring",
            )
        except (KeyringHung, KeyringFailed) as exc:
            log.warning("Could not delete the keyring item %s: %s", KEYRING_PENDING_ITEM, exc)
    return location.follow(committed, "auto")


def _rotate_file(location: KeyLocation, marker: keyfiles.Marker) -> tuple[MasterKey, MasterKey]:
    content = location.read_key_file()
    if content is None:
        raise location.missing_key_file(marker)
    where = f"the key file {location.key_path}"
    if marker.pending_key_id is not None and keyfiles.key_id(content.key) == marker.pending_key_id:
        # A commit wrote the key file but not the marker: finish it, then rotate anew.
        marker = dataclasses.replace(marker, key_id=marker.pending_key_id, pending_key_id=None)
        location.write_marker(marker)
        content = keyfiles.KeyFile(content.key)
    old_raw = location.require(
        {keyfiles.key_id(content.key): content.key}, marker.key_id, where=where
    )
    if marker.pending_key_id is not None:
        # Resume the rotation that is pending, with the same new key.
        new_raw = location.require(content.keys(), marker.pending_key_id, where=where)
    else:
        # A pending key left by a rotation that crashed before its marker is reused.
        leftover = content.pending if content.pending != content.key else None
        new_raw = leftover if leftover is not None else new_master_key()
        if leftover is None:
            location.write_key_file(keyfiles.KeyFile(content.key, new_raw))
        location.write_marker(dataclasses.replace(marker, pending_key_id=keyfiles.key_id(new_raw)))
    log.info("Key rotation pending: %s -> %s", marker.key_id, keyfiles.key_id(new_raw))
    return _rotation_pair(old_raw, new_raw, where=where)


def _rotate_keyring(location: KeyLocation, marker: keyfiles.Marker) -> tuple[MasterKey, MasterKey]:
    reply = location.keyring_read_for(marker, BOTH_ITEMS)
    main = keyfiles.decode_key(reply.values.get(KEYRING_ITEM))
    pending = keyfiles.decode_key(reply.values.get(KEYRING_PENDING_ITEM))
    if main is not None and marker.pending_key_id == keyfiles.key_id(main):
        # A commit rewrote the main item but not the marker: finish it, then rotate anew.
        marker = dataclasses.replace(marker, key_id=keyfiles.key_id(main), pending_key_id=None)
        location.write_marker(marker)
        pending = None
    where = f"the OS keyring ({reply.backend_name})"
    found_main = {} if main is None else {keyfiles.key_id(main): main}
    old_raw = location.require(found_main, marker.key_id, where=f"{where}, item '{KEYRING_ITEM}'")
    if marker.pending_key_id is not None:
        # Resume the rotation that is pending, with the same new key.
        found_pending = {} if pending is None else {keyfiles.key_id(pending): pending}
        new_raw = location.require(
            found_pending,
            marker.pending_key_id,
            where=f"{where}, item '{KEYRING_PENDING_ITEM}'",
        )
    else:
        # A pending item left by a rotation that crashed before its marker is reused (but
        # not one a commit left behind, which holds the current key).
        leftover = pending if pending != old_raw else None
        new_raw = leftover if leftover is not None else new_master_key()
        if leftover is None:
            _keyring_store(location, KEYRING_PENDING_ITEM, new_raw, marker)
        location.write_marker(dataclasses.replace(marker, pending_key_id=keyfiles.key_id(new_raw)))
    log.info("Key rotation pending: %s -> %s", marker.key_id, keyfiles.key_id(new_raw))
    return _rotation_pair(old_raw, new_raw, where=where)


def _keyring_store(location: KeyLocation, item: str, raw: bytes, marker: keyfiles.Marker) -> None:
    try:
        read_back = keyring_call(
            lambda: keyring_write(item, keyfiles.encode_key(raw), location.allow_plaintext),
            deadline=location.deadline,
            what=f"storing '{item}' in the OS keyring",
        )
    except KeyringHung:
        msg = (
            f"The OS keyring did not answer within {location.timeout:g} s while storing "
            f"'{item}'; nothing was changed in the marker"
        )
        raise KeyringTimeout(
            msg,
            path=location.marker_path,
            hint=HINT_KEY_IN_KEYRING,
        ) from None
    except KeyringFailed as exc:
        raise location.keyring_unavailable(exc, marker) from None
    if read_back is None or keyfiles.decode_key(read_back) != raw:
        msg = f"The OS keyring did not give '{item}' back after storing it"
        raise KeyStoreError(
            msg,
            path=location.marker_path,
            hint="Try again; nothing was changed in the marker",
        )


def _rotation_pair(old_raw: bytes, new_raw: bytes, *, where: str) -> tuple[MasterKey, MasterKey]:
    old = MasterKey(old_raw, description=f"master key in {where}")
    new = MasterKey(new_raw, description=f"new master key in {where}", previous=(old_raw,))
    return old, new
