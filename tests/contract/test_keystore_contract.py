"""The key-store contract applied to every key location: key file, keyring, passphrase, memory."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import keyring.backend
import pytest
from keyring.backends import fail

from ipysession.keys import crypto
from ipysession.keys import resolution as keystore
from ipysession.keys.resolution import KeyResolution

from .keystore_suite import KeyStoreContract, MemoryKeyring, use_keyring

__all__ = ["use_keyring"]  # a fixture, imported to be found

InstallKeyring = Callable[[keyring.backend.KeyringBackend], None]


class TestKeyFileKeyStore(KeyStoreContract):
    backend = "file"
    stores_key_on_disk = True

    @pytest.fixture
    def resolve(self, config_dir: Path, use_keyring: InstallKeyring) -> Callable[[], KeyResolution]:
        use_keyring(fail.Keyring())
        return lambda: keystore.resolve_key(config_dir=config_dir, environ={})


class TestOSKeyringKeyStore(KeyStoreContract):
    backend = "keyring"
    stores_key_on_disk = False

    @pytest.fixture
    def resolve(self, config_dir: Path, use_keyring: InstallKeyring) -> Callable[[], KeyResolution]:
        use_keyring(MemoryKeyring())
        return lambda: keystore.resolve_key(config_dir=config_dir, environ={})


class TestPassphraseKeyStore(KeyStoreContract):
    backend = "passphrase"
    stores_key_on_disk = False

    @pytest.fixture
    def resolve(self, config_dir: Path) -> Callable[[], KeyResolution]:
        environ = {keystore.PASSPHRASE_ENV: "correct horse battery staple"}
        return lambda: keystore.resolve_key(config_dir=config_dir, environ=environ)


class TestMemoryKeyStore(KeyStoreContract):
    backend = "memory"
    stores_key_on_disk = False

    @pytest.fixture
    def resolve(self, config_dir: Path) -> Callable[[], KeyResolution]:
        fixed = crypto.new_master_key()
        return lambda: keystore.memory_key(fixed)
