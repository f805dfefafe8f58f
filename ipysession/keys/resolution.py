"""Where the master key lives: a passphrase, the OS keyring, or a key file.

:func:`resolve_key` answers "which key seals and opens my sessions?" and says why, in a
:class:`KeyResolution`. The order is:

1. ``$IPYSESSION_PASSPHRASE``, if set and not empty: a
   :class:`~ipysession.keys.crypto.PassphraseKey` (scrypt, salt in each file's header). Nothing is
stored anywhere. 2. The OS keyring, when a real backend is available: one item in service
   ``ipysession``, user ``master-key``, holding the 32-byte master key in base64 and nothing else.
3. A key file, ``master.key`` under :func:`ipysession.paths.config_dir` (``0600`` in a ``0700``
   directory, written atomically), with a one-time notice saying where it is and why.

``c.SessionManager.key_backend`` (``"passphrase"``, ``"keyring"`` or ``"file"``) forces one of
them; ``"auto"`` (the default) follows the order above.

The keyring
-----------
``keyring`` is imported lazily, and every keyring call (the import, backend discovery with
``keyring.get_keyring()``, ``get_password``, ``set_password``) runs on a daemon worker thread under
one deadline, ``keyring_timeout`` seconds (3 s by default) for a whole :func:`resolve_key`: on
headless Linux, WSL and SSH logins the import alone can stall for minutes, and an unlock prompt
nobody can see hangs forever. A call that has not returned by then is abandoned (its thread is left
to finish on its own; only one keyring call runs at a time, so hung calls do not pile up).

keyring's ``fail`` and ``null`` backends and a chainer with nothing to chain mean "no keyring";
a backend with a negative priority is treated the same way. Backends that store secrets in plain
text (``keyrings.alt``, any backend whose class says "plaintext", or any backend keyring itself
does not recommend, priority below 1) are refused unless ``allow_plaintext_keyring=True``.

The keyring item is read once per process (cached per service and config dir) and never rewritten,
because rewriting it on macOS wipes "Always Allow" and prompts again; the only rewrite is the commit
of an explicit ``ipysession rekey``.

The location marker, and why a second key is never created
-----------------------------------------------------------
A locked keyring, a dismissed prompt or a keyring that hangs must never be mistaken for "no key
yet": a new key would orphan every session sealed with the old one. So when a key is first created,
a small non-secret marker, ``key-location.json`` (next to the key file), records where it went::

    {"version": 1, "backend": "keyring" | "file", "key_id": "<16 hex>",
     "pending_key_id": null | "<16 hex>", "created": "<UTC time>", "reason": "<why there>"}

and the marker decides what happens next:

* Marker says ``"file"``: the key file is used and the keyring is not touched at all (not even
  imported: this is the fast path). A missing key file is an error, never a reason to create a
  new key.
* Marker says ``"keyring"``: the key is read from the keyring. If the keyring hangs,
  :class:`~ipysession.errors.KeyringTimeout` is raised; if it is locked or the prompt is dismissed,
  or no keyring is usable now, or the item is gone,
  :class:`~ipysession.errors.KeyUnavailable` is raised. No key file is created and the marker is
  left unchanged.
* No marker (first use): an existing key file, or an existing keyring item, is adopted and the
  marker written for it (a crash between creating a key and writing its marker is repaired this
  way). Otherwise the keyring is asked:

  - it works and has no item: a new key is stored there and read back to verify; the marker says
    ``"keyring"``. If it cannot be stored or does not read back (a backend that drops writes), the
    key file is used instead, with a notice saying why.
  - there is no usable keyring (fail/null/empty chainer/refused plaintext), it does not answer in
    time, or it fails: a new key file is created, the marker says ``"file"``, and the notice
    says why.
  - it is locked or the prompt was dismissed: :class:`~ipysession.errors.KeyUnavailable` (it may
    hold a key from an earlier install); nothing is created.

* The key in the key file or keyring must have the id the marker records; otherwise
  :class:`~ipysession.errors.KeyStoreError` names both ids.

First use is serialized between processes with a lock file (``key.lock``), so two kernels starting
together create one key, not two.

A forced backend never moves a key: ``key_backend = "file"`` when the marker says ``"keyring"``
(or the reverse) raises :class:`~ipysession.errors.KeyStoreError` saying where the key is.

Rotation (``ipysession rekey``)
-------------------------------
:func:`rotate_key` stores a new key *alongside* the current one and records it in the marker as
``pending_key_id``; :func:`commit_rotation` makes it the only key once every session has been
re-encrypted. While a rotation is pending, :func:`resolve_key` returns a key that writes with the
new key and reads with both, so a crash at any point leaves every file readable:

* key file: ``{"key": <old>, "pending": <new>}`` is written first, then the marker. Commit writes
  ``{"key": <new>}`` first, then the marker.
* keyring: the new key goes to a second item, ``master-key-pending``, then the marker. Commit
  rewrites ``master-key`` with the new key, verifies it, updates the marker, then deletes the
  pending item.

Calling :func:`rotate_key` again after a crash resumes the pending rotation with the same new key
(and finishes a commit that was cut short), rather than creating a third key.

Modules
-------
This module holds the rules above: the resolution order, what the marker decides, rotation and
the per-process cache of keyring reads. The mechanics live beside it:
:mod:`ipysession.keys.keyring` (the only module that imports ``keyring``: the worker thread,
the deadline, backend classification) and :mod:`ipysession.keys.files` (the key file and marker
formats, atomic private writes, the ``key.lock`` first-use lock).

Tests
-----
:func:`memory_key` returns a :class:`KeyResolution` backed by a fixed in-memory master key,
touching neither disk nor keyring; :func:`clear_key_cache` forgets the keys read from keyrings in
this process.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import logging
import os
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal

from ipysession import paths
from ipysession.errors import KeyringTimeout, KeyStoreError, KeyUnavailable
from ipysession.keys import files as keyfiles
from ipysession.keys.crypto import MasterKey, PassphraseKey, SealingKey, new_master_key
from ipysession.keys.files import KEY_FILE_NAME, LOCK_FILE_NAME, MARKER_FILE_NAME
from ipysession.keys.keyring import (
    BOTH_ITEMS,
    KEYRING_ITEM,
    KEYRING_PENDING_ITEM,
    KEYRING_SERVICE,
    KeyringFailed,
    KeyringHung,
    Reply,
    keyring_call,
    keyring_delete,
    keyring_read,
    keyring_write,
)

__all__ = [
    "KEYRING_ITEM",
    "KEYRING_PENDING_ITEM",
    "KEYRING_SERVICE",
    "KEY_FILE_NAME",
    "MARKER_FILE_NAME",
    "PASSPHRASE_ENV",
    "BackendChoice",
    "KeyResolution",
    "clear_key_cache",
    "commit_rotation",
    "memory_key",
    "resolve_key",
    "rotate_key",
]

log = logging.getLogger("ipysession")

PASSPHRASE_ENV: Final = "IPYSESSION_PASSPHRASE"  # noqa: S105 - a variable name
# How much longer than the keyring timeout a process waits for another one creating the key.
_LOCK_SLACK: Final = 5.0

BackendChoice = Literal["auto", "passphrase", "keyring", "file"]
_BACKEND_CHOICES: Final = ("auto", "passphrase", "keyring", "file")

_HINT_LOCKED_FIRST_USE: Final = (
    "Unlock the OS keyring (or answer its prompt) and try again; or set IPYSESSION_PASSPHRASE "
    'to use a passphrase; or set c.SessionManager.key_backend = "file" to keep the key in a file'
)
_HINT_KEY_IN_KEYRING: Final = (
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


# --------------------------------------------------------------------------------------------
# Public API


def resolve_key(
    *,
    backend: BackendChoice = "auto",
    keyring_timeout: float = 3.0,
    allow_plaintext_keyring: bool = False,
    config_dir: Path | None = None,
    environ: Mapping[str, str] | None = None,
) -> KeyResolution:
    """Find (or on first use create) the key that seals sessions; see the module docstring.

    ``backend`` forces one location (``"auto"`` follows the order); ``keyring_timeout`` bounds
    all keyring calls of this resolve together; ``allow_plaintext_keyring`` accepts keyring
    backends that store secrets in plain text; ``config_dir`` defaults to
    :func:`ipysession.paths.config_dir`; ``environ`` (default ``os.environ``) is where
    ``IPYSESSION_PASSPHRASE`` is looked up.

    Raises :class:`~ipysession.errors.KeyUnavailable` (keyring locked, prompt dismissed, no
    keyring where the key lives), :class:`~ipysession.errors.KeyringTimeout` (the keyring holding
    the key did not answer within ``keyring_timeout`` seconds) or
    :class:`~ipysession.errors.KeyStoreError` (a key file or marker that is missing, damaged or
    holds another key).
    """
    if backend not in _BACKEND_CHOICES:
        msg = f"key backend must be one of {', '.join(_BACKEND_CHOICES)}, not {backend!r}"
        raise ValueError(msg)
    env = os.environ if environ is None else environ
    if backend in ("auto", "passphrase"):
        passphrase = env.get(PASSPHRASE_ENV, "")
        if passphrase:
            return _passphrase_resolution(passphrase, forced=backend == "passphrase")
        if backend == "passphrase":
            msg = f"key_backend is 'passphrase' but ${PASSPHRASE_ENV} is not set"
            raise KeyUnavailable(
                msg,
                hint=f"Set {PASSPHRASE_ENV} in the kernel's environment, or use another "
                "key_backend",
            )
    store = _Store(
        config_dir if config_dir is not None else paths.config_dir(),
        timeout=keyring_timeout,
        allow_plaintext=allow_plaintext_keyring,
    )
    return store.resolve(backend)


def rotate_key(
    resolution: KeyResolution, *, keyring_timeout: float = 30.0
) -> tuple[MasterKey, MasterKey]:
    """Start (or resume) a key rotation: ``(old, new)``.

    The new key is stored alongside the old one and recorded as pending in the marker. ``new``
    writes with the new key and reads with both; re-encrypt every session with it, then call
    :func:`commit_rotation`. Until then :func:`resolve_key` returns a key that reads both, and a
    crash leaves both keys recoverable; calling this again resumes with the same new key.
    """
    store = _store_for(resolution, keyring_timeout)
    with store.creation_lock():
        return store.rotate()


def commit_rotation(
    resolution: KeyResolution, new_key: MasterKey, *, keyring_timeout: float = 30.0
) -> KeyResolution:
    """Make ``new_key`` (from :func:`rotate_key`) the only key; returns the new resolution.

    Call it only once every session has been re-encrypted with ``new_key``: the old key is gone
    afterwards. Calling it again after it succeeded is harmless.
    """
    store = _store_for(resolution, keyring_timeout)
    with store.creation_lock():
        return store.commit(new_key)


def memory_key(key: bytes | None = None) -> KeyResolution:
    """A resolution backed by a fixed in-memory master key (a fresh random one by default).

    Nothing touches the disk or the keyring: for tests, ours and users'.
    """
    master = MasterKey(key if key is not None else new_master_key(), description="in-memory key")
    return KeyResolution(
        key=master,
        backend="memory",
        reason="in-memory key for tests (nothing is stored)",
    )


def clear_key_cache() -> None:
    """Forget the keys read from OS keyrings in this process (the next resolve reads again)."""
    _STATE.clear_cache()


# --------------------------------------------------------------------------------------------
# Passphrase


def _passphrase_resolution(passphrase: str, *, forced: bool) -> KeyResolution:
    digest = hashlib.sha256(passphrase.encode("utf-8")).hexdigest()
    key = _STATE.passphrase_key(digest, passphrase)
    reason = (
        f"key_backend is 'passphrase' and ${PASSPHRASE_ENV} is set"
        if forced
        else f"${PASSPHRASE_ENV} is set"
    )
    return KeyResolution(key=key, backend="passphrase", reason=reason)


# --------------------------------------------------------------------------------------------
# Process-wide state: the keys read from keyrings (per config dir) and derived passphrase keys.
# The keyring worker thread itself is in keyring_access.


@dataclass(frozen=True)
class _CacheEntry:
    key_id: str
    pending_key_id: str | None
    resolution: KeyResolution


class _ProcessState:
    """Keyring reads cached per service and config dir; passphrase keys cached per passphrase."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._cache: dict[tuple[str, str], _CacheEntry] = {}
        self._passphrase_keys: dict[str, PassphraseKey] = {}

    def cached(self, cache_key: tuple[str, str], marker: keyfiles.Marker) -> KeyResolution | None:
        with self._lock:
            entry = self._cache.get(cache_key)
        if entry is None:
            return None
        if (entry.key_id, entry.pending_key_id) != (marker.key_id, marker.pending_key_id):
            return None  # another process rotated the key since we read it
        return entry.resolution

    def remember(
        self, cache_key: tuple[str, str], marker: keyfiles.Marker, res: KeyResolution
    ) -> None:
        entry = _CacheEntry(
            marker.key_id, marker.pending_key_id, dataclasses.replace(res, notice=None)
        )
        with self._lock:
            self._cache[cache_key] = entry

    def forget(self, cache_key: tuple[str, str]) -> None:
        with self._lock:
            self._cache.pop(cache_key, None)

    def clear_cache(self) -> None:
        with self._lock:
            self._cache.clear()
            self._passphrase_keys.clear()

    def passphrase_key(self, digest: str, passphrase: str) -> PassphraseKey:
        with self._lock:
            key = self._passphrase_keys.get(digest)
        if key is None:
            key = PassphraseKey(passphrase, description=f"passphrase from ${PASSPHRASE_ENV}")
            with self._lock:
                key = self._passphrase_keys.setdefault(digest, key)
        return key


_STATE = _ProcessState()


# --------------------------------------------------------------------------------------------
# The store: one config dir, its marker, its key file and the keyring.


def _store_for(resolution: KeyResolution, keyring_timeout: float) -> _Store:
    if resolution.backend not in ("file", "keyring") or resolution.config_dir is None:
        what = f"A {resolution.backend} key cannot be rotated by ipysession"
        hint = (
            "To change a passphrase, export your sessions with the old one and import them "
            "with the new one"
            if resolution.backend == "passphrase"
            else "Rotate a key that lives in the OS keyring or a key file"
        )
        raise KeyStoreError(what, hint=hint)
    return _Store(resolution.config_dir, timeout=keyring_timeout, allow_plaintext=True)


class _Store:
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

    # -- resolution ----------------------------------------------------------------------------

    def resolve(self, backend: BackendChoice) -> KeyResolution:
        marker = self.read_marker()
        if marker is None:
            with self.creation_lock():
                marker = self.read_marker()  # another process may have created the key meanwhile
                if marker is None:
                    return self.first_use(backend)
        return self.follow(marker, backend)

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
        cached = _STATE.cached(self.cache_key, marker)
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
            location=_KEYRING_LOCATION,
            config_dir=self.directory,
        )
        _STATE.remember(self.cache_key, marker, resolution)
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
                hint=_HINT_KEY_IN_KEYRING,
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
                hint=_HINT_KEY_IN_KEYRING,
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
        return KeyUnavailable(what, path=self.marker_path, hint=_HINT_KEY_IN_KEYRING)

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

    # -- first use -----------------------------------------------------------------------------

    def first_use(self, backend: BackendChoice) -> KeyResolution:
        existing = self.read_key_file()
        if existing is not None:
            if backend == "keyring":
                msg = (
                    f"key_backend is 'keyring' but a key file already exists (key id "
                    f"{keyfiles.key_id(existing.key)})"
                )
                raise KeyStoreError(
                    msg,
                    path=self.key_path,
                    hint='Use key_backend = "auto" or "file" to keep using it; a new key in the '
                    "keyring would orphan every session sealed with it",
                )
            return self.adopt_key_file(existing)
        if backend == "file":
            return self.create_key_file("key_backend is 'file'")
        try:
            reply = keyring_call(
                lambda: keyring_read((KEYRING_ITEM,), self.allow_plaintext),
                deadline=self.deadline,
                what="looking for a master key in the OS keyring",
            )
        except KeyringHung:
            why = f"the OS keyring did not answer within {self.timeout:g} s"
            if backend == "keyring":
                raise KeyringTimeout(
                    why[0].upper() + why[1:], hint=_HINT_LOCKED_FIRST_USE
                ) from None
            return self.create_key_file(why, fallback=True)
        except KeyringFailed as exc:
            if exc.kind == "locked":
                msg = (
                    f"The OS keyring is locked or its unlock prompt was dismissed ({exc.message}); "
                    "it may hold your master key, so ipysession will not create a new one"
                )
                raise KeyUnavailable(
                    msg,
                    hint=_HINT_LOCKED_FIRST_USE,
                ) from None
            why = f"the OS keyring failed ({exc.message})"
            if backend == "keyring":
                raise KeyUnavailable(
                    why[0].upper() + why[1:], hint=_HINT_LOCKED_FIRST_USE
                ) from None
            return self.create_key_file(why, fallback=True)
        if reply.unusable is not None:
            if backend == "keyring":
                msg = f"key_backend is 'keyring' but {reply.unusable}"
                raise KeyUnavailable(
                    msg,
                    hint=_HINT_LOCKED_FIRST_USE,
                )
            return self.create_key_file(reply.unusable, fallback=True)
        found = self.decode_items(reply)
        if found:
            return self.adopt_keyring_key(found, reply)
        return self.create_in_keyring(reply, backend)

    def adopt_key_file(self, content: keyfiles.KeyFile) -> KeyResolution:
        key_id = keyfiles.key_id(content.key)
        pending = None if content.pending is None else keyfiles.key_id(content.pending)
        log.warning(
            "Found the key file %s without %s; recording it (key id %s)",
            self.key_path,
            MARKER_FILE_NAME,
            key_id,
        )
        marker = keyfiles.Marker(
            "file", key_id, pending, keyfiles.now(), "an existing key file was found"
        )
        self.write_marker(marker)
        return self.from_file(marker)

    def adopt_keyring_key(self, found: dict[str, bytes], reply: Reply) -> KeyResolution:
        (key_id,) = found
        log.warning(
            "Found a master key in the OS keyring without %s; recording it (key id %s)",
            MARKER_FILE_NAME,
            key_id,
        )
        reason = f"an existing master key was found in the OS keyring ({reply.backend_name})"
        marker = keyfiles.Marker("keyring", key_id, None, keyfiles.now(), reason)
        self.write_marker(marker)
        resolution = KeyResolution(
            key=self.assemble(found, marker, where=f"the OS keyring ({reply.backend_name})"),
            backend="keyring",
            reason=f"OS keyring ({reply.backend_name})",
            location=_KEYRING_LOCATION,
            config_dir=self.directory,
        )
        _STATE.remember(self.cache_key, marker, resolution)
        return resolution

    def create_key_file(self, why: str, *, fallback: bool = False) -> KeyResolution:
        raw = new_master_key()
        key_id = keyfiles.key_id(raw)
        self.write_key_file(keyfiles.KeyFile(raw))
        marker = keyfiles.Marker("file", key_id, None, keyfiles.now(), why)
        self.write_marker(marker)
        notice = (
            f"ipysession created its master key in {self.key_path} (readable only by you) "
            f"because {why}. Sessions cannot be read without this file: keep it private and "
            f"back it up. To use a passphrase instead, set {PASSPHRASE_ENV}."
        )
        if fallback:
            log.warning(
                "Created the key file %s (key id %s) because %s", self.key_path, key_id, why
            )
        else:
            log.info("Created the key file %s (key id %s)", self.key_path, key_id)
        return dataclasses.replace(self.from_file(marker), notice=notice)

    def create_in_keyring(self, reply: Reply, backend: BackendChoice) -> KeyResolution:
        raw = new_master_key()
        key_id = keyfiles.key_id(raw)
        why: str | None = None
        try:
            read_back = keyring_call(
                lambda: keyring_write(KEYRING_ITEM, keyfiles.encode_key(raw), self.allow_plaintext),
                deadline=self.deadline,
                what="storing a new master key in the OS keyring",
            )
        except KeyringHung:
            why = f"the OS keyring did not answer within {self.timeout:g} s when storing the key"
            if backend == "keyring":
                raise KeyringTimeout(
                    why[0].upper() + why[1:], hint=_HINT_LOCKED_FIRST_USE
                ) from None
        except KeyringFailed as exc:
            if exc.kind == "locked":
                msg = (
                    f"The OS keyring refused to store the new master key: it is locked or its "
                    f"prompt was dismissed ({exc.message})"
                )
                raise KeyUnavailable(
                    msg,
                    hint=_HINT_LOCKED_FIRST_USE,
                ) from None
            why = f"the OS keyring ({reply.backend_name}) could not store the key ({exc.message})"
        else:
            if read_back is None or keyfiles.decode_key(read_back) != raw:
                why = (
                    f"the OS keyring ({reply.backend_name}) did not give the key back after "
                    "storing it"
                )
        if why is not None:
            if backend == "keyring":
                raise KeyStoreError(why[0].upper() + why[1:], hint=_HINT_LOCKED_FIRST_USE)
            return self.create_key_file(why, fallback=True)
        marker = keyfiles.Marker(
            "keyring", key_id, None, keyfiles.now(), f"OS keyring ({reply.backend_name})"
        )
        self.write_marker(marker)
        log.info("Stored a new master key (key id %s) in the OS keyring", key_id)
        resolution = KeyResolution(
            key=MasterKey(raw, description=f"master key in the OS keyring ({reply.backend_name})"),
            backend="keyring",
            reason=f"OS keyring ({reply.backend_name})",
            location=_KEYRING_LOCATION,
            config_dir=self.directory,
        )
        _STATE.remember(self.cache_key, marker, resolution)
        return dataclasses.replace(
            resolution,
            notice=f"ipysession stored a new master key in the OS keyring ({reply.backend_name}), "
            f"service '{KEYRING_SERVICE}'.",
        )

    # -- rotation ------------------------------------------------------------------------------

    def current_marker(self) -> keyfiles.Marker:
        marker = self.read_marker()
        if marker is None:
            msg = "There is no master key to rotate yet"
            raise KeyStoreError(
                msg,
                path=self.marker_path,
                hint="Save a session first",
            )
        return marker

    def rotate(self) -> tuple[MasterKey, MasterKey]:
        marker = self.current_marker()
        _STATE.forget(self.cache_key)
        if marker.backend == "file":
            return self.rotate_file(marker)
        return self.rotate_keyring(marker)

    def commit(self, new_key: MasterKey) -> KeyResolution:
        marker = self.current_marker()
        new_id = new_key.key_id_hex
        _STATE.forget(self.cache_key)
        if marker.pending_key_id is None and marker.key_id == new_id:
            return self.follow(marker, "auto")  # committed already
        if marker.pending_key_id != new_id:
            msg = (
                f"Key {new_id} is not the pending key (the marker says current {marker.key_id}, "
                f"pending {marker.pending_key_id or 'none'})"
            )
            raise KeyStoreError(
                msg,
                path=self.marker_path,
                hint="Run the rotation again (ipysession rekey)",
            )
        if marker.backend == "file":
            self.write_key_file(keyfiles.KeyFile(new_key.raw))
        else:
            self.keyring_store(KEYRING_ITEM, new_key.raw, marker)
        committed = dataclasses.replace(marker, key_id=new_id, pending_key_id=None)
        self.write_marker(committed)
        log.info("Key rotation committed: the master key is now %s", new_id)
        if marker.backend == "keyring":
            try:
                keyring_call(
                    lambda: keyring_delete(KEYRING_PENDING_ITEM),
                    deadline=self.deadline,
                    what="deleting the pending key from the OS keyring",
                )
            except (KeyringHung, KeyringFailed) as exc:
                log.warning("Could not delete the keyring item %s: %s", KEYRING_PENDING_ITEM, exc)
        return self.follow(committed, "auto")

    def rotate_file(self, marker: keyfiles.Marker) -> tuple[MasterKey, MasterKey]:
        content = self.read_key_file()
        if content is None:
            raise self.missing_key_file(marker)
        where = f"the key file {self.key_path}"
        if (
            marker.pending_key_id is not None
            and keyfiles.key_id(content.key) == marker.pending_key_id
        ):
            # A commit wrote the key file but not the marker: finish it, then rotate anew.
            marker = dataclasses.replace(marker, key_id=marker.pending_key_id, pending_key_id=None)
            self.write_marker(marker)
            content = keyfiles.KeyFile(content.key)
        old_raw = self.require(
            {keyfiles.key_id(content.key): content.key}, marker.key_id, where=where
        )
        if marker.pending_key_id is not None:
            # Resume the rotation that is pending, with the same new key.
            new_raw = self.require(content.keys(), marker.pending_key_id, where=where)
        else:
            # A pending key left by a rotation that crashed before its marker is reused.
            leftover = content.pending if content.pending != content.key else None
            new_raw = leftover if leftover is not None else new_master_key()
            if leftover is None:
                self.write_key_file(keyfiles.KeyFile(content.key, new_raw))
            self.write_marker(dataclasses.replace(marker, pending_key_id=keyfiles.key_id(new_raw)))
        log.info("Key rotation pending: %s -> %s", marker.key_id, keyfiles.key_id(new_raw))
        return self.rotation_pair(old_raw, new_raw, where=where)

    def rotate_keyring(self, marker: keyfiles.Marker) -> tuple[MasterKey, MasterKey]:
        reply = self.keyring_read_for(marker, BOTH_ITEMS)
        main = keyfiles.decode_key(reply.values.get(KEYRING_ITEM))
        pending = keyfiles.decode_key(reply.values.get(KEYRING_PENDING_ITEM))
        if main is not None and marker.pending_key_id == keyfiles.key_id(main):
            # A commit rewrote the main item but not the marker: finish it, then rotate anew.
            marker = dataclasses.replace(marker, key_id=keyfiles.key_id(main), pending_key_id=None)
            self.write_marker(marker)
            pending = None
        where = f"the OS keyring ({reply.backend_name})"
        found_main = {} if main is None else {keyfiles.key_id(main): main}
        old_raw = self.require(found_main, marker.key_id, where=f"{where}, item '{KEYRING_ITEM}'")
        if marker.pending_key_id is not None:
            # Resume the rotation that is pending, with the same new key.
            found_pending = {} if pending is None else {keyfiles.key_id(pending): pending}
            new_raw = self.require(
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
                self.keyring_store(KEYRING_PENDING_ITEM, new_raw, marker)
            self.write_marker(dataclasses.replace(marker, pending_key_id=keyfiles.key_id(new_raw)))
        log.info("Key rotation pending: %s -> %s", marker.key_id, keyfiles.key_id(new_raw))
        return self.rotation_pair(old_raw, new_raw, where=where)

    def keyring_store(self, item: str, raw: bytes, marker: keyfiles.Marker) -> None:
        try:
            read_back = keyring_call(
                lambda: keyring_write(item, keyfiles.encode_key(raw), self.allow_plaintext),
                deadline=self.deadline,
                what=f"storing '{item}' in the OS keyring",
            )
        except KeyringHung:
            msg = (
                f"The OS keyring did not answer within {self.timeout:g} s while storing "
                f"'{item}'; nothing was changed in the marker"
            )
            raise KeyringTimeout(
                msg,
                path=self.marker_path,
                hint=_HINT_KEY_IN_KEYRING,
            ) from None
        except KeyringFailed as exc:
            raise self.keyring_unavailable(exc, marker) from None
        if read_back is None or keyfiles.decode_key(read_back) != raw:
            msg = f"The OS keyring did not give '{item}' back after storing it"
            raise KeyStoreError(
                msg,
                path=self.marker_path,
                hint="Try again; nothing was changed in the marker",
            )

    @staticmethod
    def rotation_pair(old_raw: bytes, new_raw: bytes, *, where: str) -> tuple[MasterKey, MasterKey]:
        old = MasterKey(old_raw, description=f"master key in {where}")
        new = MasterKey(new_raw, description=f"new master key in {where}", previous=(old_raw,))
        return old, new


_KEYRING_LOCATION: Final = f"keyring service '{KEYRING_SERVICE}'"
