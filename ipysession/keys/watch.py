"""Following the master key in a long-lived process: a running kernel picks up ``ipysession rekey``.

A kernel resolves its key once, then writes for hours. If ``ipysession rekey`` replaces the key
meanwhile and the kernel keeps sealing with the key it read at start, its next files are sealed
with a key that no longer exists, and the variables in them are lost for good. So before every
write (under the session's write lock, where ``rekey`` also works) the store asks
:meth:`KeyWatch.current`, which:

* reads ``key-location.json`` (the marker: a few hundred bytes, no keyring call) and compares the
  key id it names for writing (``pending_key_id`` during a rotation, else ``key_id``) with the
  id of the key held. The marker is read every time rather than trusted by its ``stat``: a
  same-size rewrite within the file system's timestamp granularity would look unchanged, and a
  missed change is exactly a file sealed with a removed key.
* if they agree, returns the held key (the usual case: nothing else happens);
* if not, resolves the key again, once, under a fresh ``keyring_timeout``. For a key file that
  is a small file read; for a keyring key it is one keyring read (the marker ids changed, so this
  process's cached read no longer applies), the only extra keyring access a rekey costs. The
  resolved key must have the id the marker names, or the write is refused.
* if that fails (keyring locked or hung, key file unreadable), raises
  :class:`~ipysession.errors.KeyUnavailable`: the write is refused with a message that says why,
  and nothing is sealed with the old key. The next write tries again.

``rotate_key`` writes the marker *before* any session is re-encrypted, and re-encrypts each
session under its write lock, so every write that takes the lock after the marker changed seals
with the new key, and every file written before was there for ``rekey`` to re-encrypt. Passphrase
and in-memory keys have no marker and are never replaced: they are returned as they are.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path

from ipysession.errors import KeyUnavailable, SessionError
from ipysession.keys import files as keyfiles
from ipysession.keys.crypto import MasterKey, SealingKey
from ipysession.keys.files import MARKER_FILE_NAME
from ipysession.keys.location import KeyResolution

__all__ = ["KeyWatch"]

log = logging.getLogger("ipysession")


class KeyWatch:
    """The key a long-lived process should seal with now; see the module docstring.

    ``resolution`` is the key resolved at start; ``resolve`` resolves it again (the same
    arguments as the first time, a fresh keyring deadline); ``on_change`` is told, in words,
    when the key was replaced (never the key). Thread-safe.
    """

    def __init__(
        self,
        resolution: KeyResolution,
        resolve: Callable[[], KeyResolution],
        *,
        on_change: Callable[[str], None] | None = None,
    ) -> None:
        self._resolution = resolution
        self._resolve = resolve
        self._on_change = on_change
        self._lock = threading.Lock()

    @property
    def resolution(self) -> KeyResolution:
        """The key held now (without checking the marker)."""
        with self._lock:
            return self._resolution

    def current_key(self) -> SealingKey:
        """The key of :meth:`current` (what :class:`~ipysession.store.SessionStore` asks for)."""
        return self.current().key

    def current(self) -> KeyResolution:
        """The key to seal with now: the held one, or the new one if the key was replaced.

        Raises :class:`~ipysession.errors.KeyUnavailable` when the key was replaced and the new
        one cannot be read: the caller must not write.
        """
        with self._lock:
            held = self._resolution
            config_dir = held.config_dir
            if config_dir is None or not isinstance(held.key, MasterKey):
                return held  # a passphrase or an in-memory key: never rotated
            wanted = _writing_id(config_dir)
            if wanted is None or wanted == held.key.key_id_hex:
                return held
            fresh = self._reresolve(held, wanted, config_dir)
            self._resolution = fresh
        log.info(
            "The master key was replaced (%s -> %s); this process seals with the new one",
            held.key.key_id_hex,
            wanted,
        )
        if self._on_change is not None:
            self._on_change(
                f"The master key was replaced (ipysession rekey): this kernel now saves with "
                f"key {wanted} ({fresh.location or fresh.reason})."
            )
        return fresh

    def _reresolve(self, held: KeyResolution, wanted: str, config_dir: Path) -> KeyResolution:
        old_id = held.key.key_id_hex if isinstance(held.key, MasterKey) else "unknown"
        try:
            fresh = self._resolve()
        except SessionError as exc:
            msg = (
                f"The master key was replaced (ipysession rekey: {old_id} -> {wanted}) and this "
                f"kernel could not read the new one: {exc.what}. Nothing was saved, so nothing "
                "is sealed with the old key, which rekey removes"
            )
            raise KeyUnavailable(
                msg,
                path=config_dir / MARKER_FILE_NAME,
                hint=(exc.hint or "Fix what is said above")
                + "; the next save tries again, and `%session save` saves by hand",
            ) from None
        if not isinstance(fresh.key, MasterKey) or fresh.key.key_id_hex != wanted:
            got = fresh.key.key_id_hex if isinstance(fresh.key, MasterKey) else fresh.backend
            msg = (
                f"The master key was replaced (ipysession rekey: {old_id} -> {wanted}), but "
                f"resolving it again gave key {got}. Nothing was saved"
            )
            raise KeyUnavailable(
                msg,
                path=config_dir / MARKER_FILE_NAME,
                hint="Run `ipysession rekey` again to finish the rotation, then save",
            )
        return fresh


def _writing_id(config_dir: Path) -> str | None:
    """The id of the key the marker says to write with; ``None`` when there is no marker.

    A marker that cannot be read is treated as unchanged here: resolving would fail the same way,
    and the key held was valid when it was read. Rekey never removes the marker.
    """
    try:
        marker = keyfiles.read_marker(config_dir / MARKER_FILE_NAME)
    except (OSError, SessionError) as exc:
        log.warning("Could not read the key location marker in %s: %s", config_dir, exc)
        return None
    if marker is None:
        return None
    return marker.pending_key_id or marker.key_id
