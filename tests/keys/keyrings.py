"""Keyring doubles and helpers shared by the key tests.

The doubles are small ``keyring.backend.KeyringBackend`` subclasses, installed with keyring's own
``keyring.set_keyring`` through the ``use_keyring`` fixture (from :mod:`tests.contract`), which
restores the original afterwards. Files are real, in ``tmp_path``.
"""

from __future__ import annotations

import json
import stat
import threading
from collections.abc import Callable
from pathlib import Path

import keyring
import keyring.backend
import keyring.compat.properties
import keyring.errors
from keyring.backends import chainer

from ipysession.keys import crypto
from ipysession.keys import resolution as keystore
from ipysession.keys.resolution import KeyResolution, resolve_key
from tests.contract.deadlines import finishes
from tests.contract.keystore_suite import MemoryKeyring

__all__ = ["finishes"]  # re-exported for the key tests

InstallKeyring = Callable[[keyring.backend.KeyringBackend], None]

# The keyring timeout the tests give: short, since a hanging double always uses all of it.
TIMEOUT = 0.5

SERVICE_ITEM = (keystore.KEYRING_SERVICE, keystore.KEYRING_ITEM)
PENDING_ITEM = (keystore.KEYRING_SERVICE, keystore.KEYRING_PENDING_ITEM)

_RELEASE: list[threading.Event] = []


class HangingKeyring(MemoryKeyring):
    """A keyring whose calls block (like an unlock prompt nobody can see) until released."""

    def __init__(self, *, hang_get: bool = True, hang_set: bool = True) -> None:
        super().__init__()
        self.hang_get = hang_get
        self.hang_set = hang_set
        self.release = threading.Event()
        self.entered = 0  # calls that started, counted before they block
        _RELEASE.append(self.release)

    def get_password(self, service: str, username: str) -> str | None:
        self.entered += 1
        if self.hang_get:
            self.release.wait(60)
        return super().get_password(service, username)

    def set_password(self, service: str, username: str, password: str) -> None:
        self.entered += 1
        if self.hang_set:
            self.release.wait(60)
        super().set_password(service, username, password)


class LockedKeyring(MemoryKeyring):
    """SecretService/kwallet/macOS say KeyringLocked when unlocking fails or is dismissed."""

    def get_password(self, service: str, username: str) -> str | None:
        self.gets += 1
        raise keyring.errors.KeyringLocked("Failed to unlock the collection!")

    def set_password(self, service: str, username: str, password: str) -> None:
        self.sets += 1
        raise keyring.errors.KeyringLocked("Failed to unlock the collection!")


class LockedOnSetKeyring(MemoryKeyring):
    def set_password(self, service: str, username: str, password: str) -> None:
        self.sets += 1
        raise keyring.errors.KeyringLocked("Can't store password on keychain: denied")


class BrokenKeyring(MemoryKeyring):
    def get_password(self, service: str, username: str) -> str | None:
        raise keyring.errors.InitError("Failed to create the collection: no D-Bus")


class NullLikeKeyring(MemoryKeyring):
    """Like keyring's null backend: negative priority, silently drops writes."""

    priority = -1

    def get_password(self, service: str, username: str) -> str | None:
        self.gets += 1
        return None

    def set_password(self, service: str, username: str, password: str) -> None:
        self.sets += 1


class DroppingKeyring(MemoryKeyring):
    """Claims a real priority but silently keeps nothing new: caught by the read-back."""

    def set_password(self, service: str, username: str, password: str) -> None:
        self.sets += 1


class PlaintextFileKeyring(MemoryKeyring):
    """Like keyrings.alt's PlaintextKeyring: priority 0.5, 'no encryption'."""

    priority = 0.5
    scheme = "no encryption"


class LowPriorityKeyring(MemoryKeyring):
    priority = 0.2


class NotViableKeyring(MemoryKeyring):
    """keyring backends raise RuntimeError from ``priority`` where they cannot work."""

    @keyring.compat.properties.classproperty
    def priority(cls) -> float:
        raise RuntimeError("Requires Windows and pywin32")


class SetFailsKeyring(MemoryKeyring):
    def set_password(self, service: str, username: str, password: str) -> None:
        raise keyring.errors.PasswordSetError(f"refused {password}")  # echoes the secret


class UndeletableKeyring(MemoryKeyring):
    def delete_password(self, service: str, username: str) -> None:
        raise keyring.errors.KeyringError("delete not supported")


class EmptyChainer(chainer.ChainerBackend):
    """keyring's chainer, with nothing to chain (as on a machine with no OS keyring)."""

    viable = False
    backends = ()  # type: ignore[assignment]


def chainer_of(*backends: keyring.backend.KeyringBackend) -> chainer.ChainerBackend:
    cls = type("TestChainer", (chainer.ChainerBackend,), {"viable": False, "backends": backends})
    instance: chainer.ChainerBackend = cls()
    return instance


def release_hanging_keyrings() -> None:
    """Let every call still blocked in a :class:`HangingKeyring` return (after each test)."""
    for event in _RELEASE:
        event.set()
    _RELEASE.clear()


def resolve(config_dir: Path, **kwargs: object) -> KeyResolution:
    kwargs.setdefault("environ", {})
    return resolve_key(config_dir=config_dir, **kwargs)  # type: ignore[arg-type]


def marker(config_dir: Path) -> dict[str, object]:
    result: dict[str, object] = json.loads((config_dir / keystore.MARKER_FILE_NAME).read_text())
    return result


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def raw(resolution: KeyResolution) -> bytes:
    assert isinstance(resolution.key, crypto.MasterKey)
    return resolution.key.raw


def key_id(resolution: KeyResolution) -> str:
    assert isinstance(resolution.key, crypto.MasterKey)
    return resolution.key.key_id_hex


def can_read(reader: KeyResolution | crypto.MasterKey, writer: crypto.MasterKey) -> bool:
    key = reader.key if isinstance(reader, KeyResolution) else reader
    _, salt, written_id = writer.for_writing()
    return key.for_reading(salt, written_id) == writer.raw


def key_in_keyring(config_dir: Path, use_keyring: InstallKeyring) -> tuple[KeyResolution, bytes]:
    """A key created in a working keyring, and the marker bytes that record it."""
    use_keyring(MemoryKeyring())
    first = resolve(config_dir)
    assert first.backend == "keyring"
    keystore.clear_key_cache()  # the next resolve is a new process
    return first, (config_dir / keystore.MARKER_FILE_NAME).read_bytes()
