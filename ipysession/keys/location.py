"""One config dir's master key: its marker, its key file, its keyring items, and reading it.

A :class:`KeyLocation` is the key's home for one config dir (by default
:func:`ipysession.paths.config_dir`): ``key-location.json`` (the marker), ``master.key`` and the
OS keyring items of service ``ipysession``. It reads the key where the marker says it is and never
falls back: a keyring that is locked, hangs or lost the item is an error, never a reason to create
another key (the rules are in :mod:`ipysession.keys.resolution`). Creating the first key is
:mod:`.first_use`'s job and replacing it :mod:`.rotation`'s; both work through this class.

Every keyring call goes through :func:`ipysession.keys.keyring.keyring_call` under the one deadline
of this location (set when it is made), and what is read from the keyring is remembered in
:data:`PROCESS_CACHE` so the item is read once per process.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal

from ipysession.errors import KeyringTimeout, KeyStoreError, KeyUnavailable
from ipysession.keys import files as keyfiles
from ipysession.keys.cache import ProcessCache
from ipysession.keys.crypto import MasterKey, SealingKey
from ipysession.keys.files import KEY_FILE_NAME, LOCK_FILE_NAME, MARKER_FILE_NAME
from ipysession.keys.keyring import (
    BOTH_ITEMS,
    KEYRING_ITEM,
    KEYRING_SERVICE,
    KeyringFailed,
    KeyringHung,
    Reply,
    keyring_call,
    keyring_read,
)

__all__ = [
    "BACKEND_CHOICES",
    "HINT_KEY_IN_KEYRING",
    "HINT_LOCKED_FIRST_USE",
    "KEYRING_LOCATION",
    "PASSPHRASE_ENV",
    "PROCESS_CACHE",
    "BackendChoice",
    "KeyLocation",
    "KeyResolution",
]

log = logging.getLogger("ipysession")

PASSPHRASE_ENV: Final = "IPYSESSION_PASSPHRASE"  # noqa: S105 - a variable name
# How much longer than the keyring timeout a process waits for another one creating the key.
_LOCK_SLACK: Final = 5.0

BackendChoice = Literal["auto", "passphrase", "keyring", "file"]
BACKEND_CHOICES: Final = ("auto", "passphrase", "keyring", "file")

KEYRING_LOCATION: Final = f"keyring service '{KEYRING_SERVICE}'"

HINT_LOCKED_FIRST_USE: Final = (
    "Unlock the OS keyring (or answer its prompt) and try again; or set IPYSESSION_PASSPHRASE "
    'to use a passphrase; or set c.SessionManager.key_backend = "file" to keep the key in a file'
)
HINT_KEY_IN_KEYRING: Final = (
    "Your sessions are sealed with the key stored in the OS keyring, so ipysession will not "
    "create another one. Unlock the keyring (or answer its prompt) and try again; to work "
    "without it meanwhile, set IPYSESSION_PASSPHRASE (sessions sealed with the master key stay "
    "unreadable until the keyring answers)"
)


@dataclass(frozen=True)
class KeyResolution:
    """Which key to use, where it lives and why; never the key bytes in its repr.

    ``backend`` is ``"passphrase"``, ``"keyring"``, ``"file"`` or ``"memory"``; ``reason`` says why
    this backend; ``location`` is the key file's path or ``"keyring service 'ipysession'"``;
    ``notice`` is a one-time message for the user (``None`` when there is nothing to say);
    ``config_dir`` is where the key file and marker live (``None`` for passphrase and memory keys).
    """

    key: SealingKey
    backend: str
    reason: str
    location: str | None = None
    notice: str | None = None
    config_dir: Path | None = None


# Keyring reads (stored without their one-time notice) and passphrase keys, for this process.
PROCESS_CACHE: ProcessCache[KeyResolution] = ProcessCache()


class KeyLocation:
    """The marker, key file and keyring items of one config dir; reads the key they hold.

    ``timeout`` bounds every keyring call made through this object together (the deadline starts
    now); ``allow_plaintext`` accepts keyring backends that store secrets in plain text.
    """

    def __init__(self, directory: Path, *, timeout: float, allow_plaintext: bool) -> None:
        self.directory = directory
        self.marker_path = directory / MARKER_FILE_NAME
        self.key_path = directory / KEY_FILE_NAME
        self.timeout = timeout
        self.allow_plaintext = allow_plaintext
        self.deadline = time.monotonic() + max(0.0, timeout)
        self.cache_key = (KEYRING_SERVICE, str(directory.absolute()))

    # -- the marker and the key file ---------------------------------------------------------

    def read_marker(self) -> keyfiles.Marker | None:
        return keyfiles.read_marker(self.marker_path)

    def write_marker(self, marker: keyfiles.Marker) -> None:
        keyfiles.write_marker(self.marker_path, marker)

    def read_key_file(self) -> keyfiles.KeyFile | None:
        return keyfiles.read_key_file(self.key_path)

    def write_key_file(self, content: keyfiles.KeyFile) -> None:
        keyfiles.write_key_file(self.key_path, content)

    def creation_lock(self) -> contextlib.AbstractContextManager[None]:
        """Serialize key creation and rotation between processes."""
        return keyfiles.creation_lock(
            self.directory / LOCK_FILE_NAME, timeout=max(0.0, self.timeout) + _LOCK_SLACK
        )

    def follow(self, marker: keyfiles.Marker, backend: BackendChoice) -> KeyResolution:
        if backend == "keyring" and marker.backend == "file":
            msg = (
                f"key_backend is 'keyring' but the master key (id {marker.key_id}) lives in the "
                f"key file {self.key_path}"
            )
            raise KeyStoreError(
                msg,
                path=self.marker_path,
                hint='Use key_backend = "auto" or "file": a new key in the keyring would orphan '
                "every session sealed with the one in the file",
            )
        if backend == "file" and marker.backend == "keyring":
            msg = (
                f"key_backend is 'file' but the master key (id {marker.key_id}) lives in the OS "
                "keyring"
            )
            raise KeyStoreError(
                msg,
                path=self.marker_path,
                hint='Use key_backend = "auto" or "keyring": a new key in a file would orphan '
                "every session sealed with the one in the keyring",
            )
        if marker.backend == "file":
            return self.from_file(marker)
        return self.from_keyring(marker)

    def missing_key_file(self, marker: keyfiles.Marker) -> KeyStoreError:
        return KeyStoreError(
            f"The key file is missing, but {MARKER_FILE_NAME} says master key "
            f"{marker.key_id} was created there ({marker.created or 'date unknown'})",
            path=self.key_path,
            hint="Restore the key file from a backup; sessions sealed with it cannot be read "
            f"without it. Deleting {self.marker_path} lets ipysession create a new key",
        )

    def from_file(self, marker: keyfiles.Marker) -> KeyResolution:
        content = self.read_key_file()
        if content is None:
            raise self.missing_key_file(marker)
        key = self.assemble(content.keys(), marker, where=f"the key file {self.key_path}")
        return KeyResolution(
            key=key,
            backend="file",
            reason=marker.reason or "the key location marker says the key is in the key file",
            location=str(self.key_path),
            config_dir=self.directory,
        )

    def from_keyring(self, marker: keyfiles.Marker) -> KeyResolution:
        cached = PROCESS_CACHE.keyring_read(self.cache_key, marker)
        if cached is not None:
            log.debug("Master key %s from this process's keyring cache", marker.key_id)
            return cached
        items = (KEYRING_ITEM,) if marker.pending_key_id is None else BOTH_ITEMS
        reply = self.keyring_read_for(marker, items)
        found = self.decode_items(reply)
        if not found:
            msg = (
                f"The OS keyring ({reply.backend_name}) has no ipysession master key, but "
                f"{MARKER_FILE_NAME} says key {marker.key_id} was stored there"
            )
            raise KeyUnavailable(
                msg,
                path=self.marker_path,
                hint="Run where that keyring is available (same user, same login keyring), or "
                "restore the item from a backup; ipysession will not create a new key over it",
            )
        key = self.assemble(found, marker, where=f"the OS keyring ({reply.backend_name})")
        resolution = KeyResolution(
            key=key,
            backend="keyring",
            reason=f"OS keyring ({reply.backend_name})",
            location=KEYRING_LOCATION,
            config_dir=self.directory,
        )
        self.remember_keyring_read(marker, resolution)
        return resolution

    def keyring_read_for(self, marker: keyfiles.Marker, items: tuple[str, ...]) -> Reply:
        """Read ``items`` for a key the marker says is in the keyring; never falls back."""
        try:
            reply = keyring_call(
                lambda: keyring_read(items, self.allow_plaintext),
                deadline=self.deadline,
                what="reading the master key from the OS keyring",
            )
        except KeyringHung:
            msg = (
                f"The OS keyring did not answer within {self.timeout:g} s; the master key "
                f"(id {marker.key_id}) is stored there"
            )
            raise KeyringTimeout(
                msg,
                path=self.marker_path,
                hint=HINT_KEY_IN_KEYRING,
            ) from None
        except KeyringFailed as exc:
            raise self.keyring_unavailable(exc, marker) from None
        if reply.unusable is not None:
            msg = (
                f"The master key (id {marker.key_id}) is in the OS keyring, but no usable keyring "
                f"is available now: {reply.unusable}"
            )
            raise KeyUnavailable(
                msg,
                path=self.marker_path,
                hint=HINT_KEY_IN_KEYRING,
            )
        return reply

    def keyring_unavailable(self, exc: KeyringFailed, marker: keyfiles.Marker) -> KeyUnavailable:
        if exc.kind == "locked":
            what = (
                f"The OS keyring is locked or its unlock prompt was dismissed ({exc.message}); "
                f"the master key (id {marker.key_id}) is stored there"
            )
        else:
            what = (
                f"The OS keyring failed ({exc.message}); the master key (id {marker.key_id}) "
                "is stored there"
            )
        return KeyUnavailable(what, path=self.marker_path, hint=HINT_KEY_IN_KEYRING)

    def decode_items(self, reply: Reply) -> dict[str, bytes]:
        found: dict[str, bytes] = {}
        for item, value in reply.values.items():
            if value is None:
                continue
            key = keyfiles.decode_key(value)
            if key is None:
                msg = (
                    f"The OS keyring item '{item}' of service '{KEYRING_SERVICE}' does not hold a "
                    "valid ipysession master key"
                )
                raise KeyStoreError(
                    msg,
                    path=self.marker_path,
                    hint="Restore the item from a backup; ipysession will not overwrite it",
                )
            found[keyfiles.key_id(key)] = key
        return found

    def assemble(
        self, found: Mapping[str, bytes], marker: keyfiles.Marker, *, where: str
    ) -> MasterKey:
        """The key the marker names (the pending one during a rotation), reading all found."""
        current = marker.pending_key_id or marker.key_id
        raw = self.require(found, current, where=where)
        previous = tuple(key for key_id, key in found.items() if key_id != current)
        return MasterKey(raw, description=f"master key in {where}", previous=previous)

    def require(self, found: Mapping[str, bytes], key_id: str, *, where: str) -> bytes:
        """The key with ``key_id`` among ``found``, or a :class:`KeyStoreError` naming both."""
        raw = found.get(key_id)
        if raw is None:
            held = ", ".join(sorted(found)) or "no key"
            msg = (
                f"{where[0].upper()}{where[1:]} holds key id {held}, but {MARKER_FILE_NAME} says "
                f"the master key is {key_id}"
            )
            raise KeyStoreError(
                msg,
                path=self.marker_path,
                hint=f"Restore the key with id {key_id} from a backup; sessions sealed with it "
                "cannot be read without it, and ipysession will not replace it",
            )
        return raw

    def remember_keyring_read(self, marker: keyfiles.Marker, resolution: KeyResolution) -> None:
        """Keep what was read from the keyring for this process, without its one-time notice."""
        PROCESS_CACHE.remember_keyring_read(
            self.cache_key, marker, dataclasses.replace(resolution, notice=None)
        )
