"""Where the master key lives: a passphrase, the OS keyring, or a key file.

:func:`resolve_key` answers "which key seals and opens my sessions?" and says why, in a
:class:`KeyResolution`. The order is:

1. ``$IPYSESSION_PASSPHRASE``, if set and not empty: a
   :class:`~ipysession.keys.crypto.PassphraseKey` (scrypt, salt in each file's header). Nothing is
   stored anywhere.
2. The OS keyring, when a real backend is available: one item in service
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
:func:`rotate_key` stores a new key alongside the current one and :func:`commit_rotation` makes it
the only key; while a rotation is pending the resolved key writes with the new key and reads with
both. They live in :mod:`ipysession.keys.rotation` and are re-exported here, their import path
before the split.

Modules
-------
This module holds the rules above: the resolution order and the passphrase.
:mod:`ipysession.keys.location` reads the key where the marker says (never falling back);
:mod:`ipysession.keys.first_use` creates or adopts the first key; :mod:`ipysession.keys.rotation`
replaces it; :mod:`ipysession.keys.cache` remembers keyring reads for this process. The mechanics
live below them: :mod:`ipysession.keys.keyring` (the only module that imports ``keyring``: the
worker thread, the deadline, backend classification) and :mod:`ipysession.keys.files` (the key file
and marker formats, atomic private writes, the ``key.lock`` first-use lock).

Tests
-----
:func:`memory_key` returns a :class:`KeyResolution` backed by a fixed in-memory master key,
touching neither disk nor keyring; :func:`clear_key_cache` forgets the keys read from keyrings in
this process.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from ipysession import paths
from ipysession.errors import KeyUnavailable
from ipysession.keys.crypto import MasterKey, new_master_key
from ipysession.keys.files import KEY_FILE_NAME, MARKER_FILE_NAME
from ipysession.keys.first_use import first_use
from ipysession.keys.keyring import KEYRING_ITEM, KEYRING_PENDING_ITEM, KEYRING_SERVICE
from ipysession.keys.location import (
    BACKEND_CHOICES,
    PASSPHRASE_ENV,
    PROCESS_CACHE,
    BackendChoice,
    KeyLocation,
    KeyResolution,
)
from ipysession.keys.rotation import commit_rotation, rotate_key

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
    if backend not in BACKEND_CHOICES:
        msg = f"key backend must be one of {', '.join(BACKEND_CHOICES)}, not {backend!r}"
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
    location = KeyLocation(
        config_dir if config_dir is not None else paths.config_dir(),
        timeout=keyring_timeout,
        allow_plaintext=allow_plaintext_keyring,
    )
    return _resolve_at(location, backend)


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
    PROCESS_CACHE.clear()


def _resolve_at(location: KeyLocation, backend: BackendChoice) -> KeyResolution:
    """The key the marker names, or on first use (no marker) the one created or adopted."""
    marker = location.read_marker()
    if marker is None:
        with location.creation_lock():
            marker = location.read_marker()  # another process may have created the key meanwhile
            if marker is None:
                return first_use(location, backend)
    return location.follow(marker, backend)


def _passphrase_resolution(passphrase: str, *, forced: bool) -> KeyResolution:
    key = PROCESS_CACHE.passphrase_key(passphrase, description=f"passphrase from ${PASSPHRASE_ENV}")
    reason = (
        f"key_backend is 'passphrase' and ${PASSPHRASE_ENV} is set"
        if forced
        else f"${PASSPHRASE_ENV} is set"
    )
    return KeyResolution(key=key, backend="passphrase", reason=reason)
