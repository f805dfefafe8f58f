"""The first key of a config dir: adopt one that exists, else create it where it can live.

Runs only when there is no marker, under the ``key.lock`` creation lock (so two kernels starting
together create one key). An existing key file or keyring item is adopted and the marker written
for it (a crash between creating a key and writing its marker is repaired this way); otherwise a
new key goes to the keyring if one works, else to a key file with a notice saying why. A keyring
that is locked or whose prompt was dismissed creates nothing: it may hold a key from an earlier
install. The full rules are in :mod:`ipysession.keys.resolution`.
"""

from __future__ import annotations

import dataclasses
import logging

from ipysession.errors import KeyringTimeout, KeyStoreError, KeyUnavailable
from ipysession.keys import files as keyfiles
from ipysession.keys.crypto import MasterKey, new_master_key
from ipysession.keys.files import MARKER_FILE_NAME
from ipysession.keys.keyring import (
    KEYRING_ITEM,
    KEYRING_SERVICE,
    KeyringFailed,
    KeyringHung,
    Reply,
    keyring_call,
    keyring_read,
    keyring_write,
)
from ipysession.keys.location import (
    HINT_LOCKED_FIRST_USE,
    KEYRING_LOCATION,
    PASSPHRASE_ENV,
    BackendChoice,
    KeyLocation,
    KeyResolution,
)

__all__ = ["first_use"]

log = logging.getLogger("ipysession")


def first_use(location: KeyLocation, backend: BackendChoice) -> KeyResolution:
    existing = location.read_key_file()
    if existing is not None:
        if backend == "keyring":
            msg = (
                f"key_backend is 'keyring' but a key file already exists (key id "
                f"{keyfiles.key_id(existing.key)})"
            )
            raise KeyStoreError(
                msg,
                path=location.key_path,
                hint='Use key_backend = "auto" or "file" to keep using it; a new key in the '
                "keyring would orphan every session sealed with it",
            )
        return _adopt_key_file(location, existing)
    if backend == "file":
        return _create_key_file(location, "key_backend is 'file'")
    try:
        reply = keyring_call(
            lambda: keyring_read((KEYRING_ITEM,), location.allow_plaintext),
            deadline=location.deadline,
            what="looking for a master key in the OS keyring",
        )
    except KeyringHung:
        why = f"the OS keyring did not answer within {location.timeout:g} s"
        if backend == "keyring":
            raise KeyringTimeout(why[0].upper() + why[1:], hint=HINT_LOCKED_FIRST_USE) from None
        return _create_key_file(location, why, fallback=True)
    except KeyringFailed as exc:
        if exc.kind == "locked":
            msg = (
                f"The OS keyring is locked or its unlock prompt was dismissed ({exc.message}); "
                "it may hold your master key, so ipysession will not create a new one"
            )
            raise KeyUnavailable(
                msg,
                hint=HINT_LOCKED_FIRST_USE,
            ) from None
        why = f"the OS keyring failed ({exc.message})"
        if backend == "keyring":
            raise KeyUnavailable(why[0].upper() + why[1:], hint=HINT_LOCKED_FIRST_USE) from None
        return _create_key_file(location, why, fallback=True)
    if reply.unusable is not None:
        if backend == "keyring":
            msg = f"key_backend is 'keyring' but {reply.unusable}"
            raise KeyUnavailable(
                msg,
                hint=HINT_LOCKED_FIRST_USE,
            )
        return _create_key_file(location, reply.unusable, fallback=True)
    found = location.decode_items(reply)
    if found:
        return _adopt_keyring_key(location, found, reply)
    return _create_in_keyring(location, reply, backend)


def _adopt_key_file(location: KeyLocation, content: keyfiles.KeyFile) -> KeyResolution:
    key_id = keyfiles.key_id(content.key)
    pending = None if content.pending is None else keyfiles.key_id(content.pending)
    log.warning(
        "Found the key file %s without %s; recording it (key id %s)",
        location.key_path,
        MARKER_FILE_NAME,
        key_id,
    )
    marker = keyfiles.Marker(
        "file", key_id, pending, keyfiles.now(), "an existing key file was found"
    )
    location.write_marker(marker)
    return location.from_file(marker)


def _adopt_keyring_key(
    location: KeyLocation, found: dict[str, bytes], reply: Reply
) -> KeyResolution:
    (key_id,) = found
    log.warning(
        "Found a master key in the OS keyring without %s; recording it (key id %s)",
        MARKER_FILE_NAME,
        key_id,
    )
    reason = f"an existing master key was found in the OS keyring ({reply.backend_name})"
    marker = keyfiles.Marker("keyring", key_id, None, keyfiles.now(), reason)
    location.write_marker(marker)
    resolution = KeyResolution(
        key=location.assemble(found, marker, where=f"the OS keyring ({reply.backend_name})"),
        backend="keyring",
        reason=f"OS keyring ({reply.backend_name})",
        location=KEYRING_LOCATION,
        config_dir=location.directory,
    )
    location.remember_keyring_read(marker, resolution)
    return resolution


def _create_key_file(location: KeyLocation, why: str, *, fallback: bool = False) -> KeyResolution:
    raw = new_master_key()
    key_id = keyfiles.key_id(raw)
    location.write_key_file(keyfiles.KeyFile(raw))
    marker = keyfiles.Marker("file", key_id, None, keyfiles.now(), why)
    location.write_marker(marker)
    notice = (
        f"ipysession created its master key in {location.key_path} (readable only by you) "
        f"because {why}. Sessions cannot be read without this file: keep it private and "
        f"back it up. To use a passphrase instead, set {PASSPHRASE_ENV}."
    )
    if fallback:
        log.warning(
            "Created the key file %s (key id %s) because %s", location.key_path, key_id, why
        )
    else:
        log.info("Created the key file %s (key id %s)", location.key_path, key_id)
    return dataclasses.replace(location.from_file(marker), notice=notice)


def _create_in_keyring(
    location: KeyLocation, reply: Reply, backend: BackendChoice
) -> KeyResolution:
    raw = new_master_key()
    key_id = keyfiles.key_id(raw)
    why: str | None = None
    try:
        read_back = keyring_call(
            lambda: keyring_write(KEYRING_ITEM, keyfiles.encode_key(raw), location.allow_plaintext),
            deadline=location.deadline,
            what="storing a new master key in the OS keyring",
        )
    except KeyringHung:
        why = f"the OS keyring did not answer within {location.timeout:g} s when storing the key"
        if backend == "keyring":
            raise KeyringTimeout(why[0].upper() + why[1:], hint=HINT_LOCKED_FIRST_USE) from None
    except KeyringFailed as exc:
        if exc.kind == "locked":
            msg = (
                f"The OS keyring refused to store the new master key: it is locked or its "
                f"prompt was dismissed ({exc.message})"
            )
            raise KeyUnavailable(
                msg,
                hint=HINT_LOCKED_FIRST_USE,
            ) from None
        why = f"the OS keyring ({reply.backend_name}) could not store the key ({exc.message})"
    else:
        if read_back is None or keyfiles.decode_key(read_back) != raw:
            why = (
                f"the OS keyring ({reply.backend_name}) did not give the key back after storing it"
            )
    if why is not None:
        if backend == "keyring":
            raise KeyStoreError(why[0].upper() + why[1:], hint=HINT_LOCKED_FIRST_USE)
        return _create_key_file(location, why, fallback=True)
    marker = keyfiles.Marker(
        "keyring", key_id, None, keyfiles.now(), f"OS keyring ({reply.backend_name})"
    )
    location.write_marker(marker)
    log.info("Stored a new master key (key id %s) in the OS keyring", key_id)
    resolution = KeyResolution(
        key=MasterKey(raw, description=f"master key in the OS keyring ({reply.backend_name})"),
        backend="keyring",
        reason=f"OS keyring ({reply.backend_name})",
        location=KEYRING_LOCATION,
        config_dir=location.directory,
    )
    location.remember_keyring_read(marker, resolution)
    return dataclasses.replace(
        resolution,
        notice=f"ipysession stored a new master key in the OS keyring ({reply.backend_name}), "
        f"service '{KEYRING_SERVICE}'.",
    )
