"""What every key location must do: the contract for :mod:`ipysession.keys.resolution`.

Subclass :class:`KeyStoreContract`, set ``backend`` (the ``KeyResolution.backend`` expected) and
``stores_key_on_disk``, and provide a ``resolve`` fixture: a callable that resolves the key the way
a new process would (the suite clears the in-process cache between calls). The suite checks:

* the same key comes back on every resolve: what one resolve seals, the next one opens, with the
  same key id and the same content ids;
* the key never appears in ``repr``/``str`` of the resolution or its key, nor in its reason,
  location or notice;
* whatever is persisted is private (files 0600, dirs 0700 on POSIX), and the key bytes are on disk
  only where the location says (never for the keyring or a passphrase);
* only the first resolve may carry a notice.

:class:`MemoryKeyring` is a dict-backed keyring backend, registered through keyring's own API
(``keyring.set_keyring``) by :func:`use_keyring`, which restores the previous backend afterwards.
"""

from __future__ import annotations

import base64
import os
import stat
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import ClassVar

import keyring
import keyring.backend
import keyring.errors
import pytest

from ipysession.keys import crypto
from ipysession.keys import resolution as keystore
from ipysession.keys.resolution import KeyResolution


class MemoryKeyring(keyring.backend.KeyringBackend):
    """A keyring that keeps passwords in a dict and counts calls.

    ``viable = False`` keeps keyring's own discovery from ever picking it; tests install it with
    ``keyring.set_keyring``. Its priority is that of a real OS keyring.
    """

    priority = 5
    viable = False

    def __init__(self) -> None:
        super().__init__()
        self.items: dict[tuple[str, str], str] = {}
        self.gets = 0
        self.sets = 0
        self.deletes = 0

    def get_password(self, service: str, username: str) -> str | None:
        self.gets += 1
        return self.items.get((service, username))

    def set_password(self, service: str, username: str, password: str) -> None:
        self.sets += 1
        self.items[(service, username)] = password

    def delete_password(self, service: str, username: str) -> None:
        self.deletes += 1
        if self.items.pop((service, username), None) is None:
            raise keyring.errors.PasswordDeleteError(username)


@pytest.fixture
def use_keyring() -> Iterator[Callable[[keyring.backend.KeyringBackend], None]]:
    """Install keyring backends through keyring's API; the original comes back afterwards."""
    original = keyring.get_keyring()
    keystore.clear_key_cache()
    yield keyring.set_keyring
    keyring.set_keyring(original)
    keystore.clear_key_cache()


def secret_forms(key: bytes) -> list[str]:
    """The ways a key could leak into text."""
    return [key.hex(), base64.b64encode(key).decode(), repr(key), str(key)]


class KeyStoreContract:
    backend: ClassVar[str]
    stores_key_on_disk: ClassVar[bool]

    @pytest.fixture
    def config_dir(self, tmp_path: Path) -> Path:
        return tmp_path / "keystore-config"

    @pytest.fixture
    def resolve(self, config_dir: Path) -> Callable[[], KeyResolution]:
        raise NotImplementedError

    def fresh(self, resolve: Callable[[], KeyResolution]) -> KeyResolution:
        """Resolve as a new process would: nothing cached in this one."""
        keystore.clear_key_cache()
        return resolve()

    def test_backend_and_reason(self, resolve: Callable[[], KeyResolution]) -> None:
        resolution = self.fresh(resolve)
        assert resolution.backend == self.backend
        assert resolution.reason
        assert isinstance(resolution.key, crypto.SealingKey)

    def test_same_key_across_resolves(self, resolve: Callable[[], KeyResolution]) -> None:
        first = self.fresh(resolve)
        key, salt, key_id = first.key.for_writing()
        nonce = crypto.new_nonce()
        sealed = crypto.seal(key, nonce, b"a session", b"header")
        for _ in range(3):
            later = self.fresh(resolve)
            opened_with = later.key.for_reading(salt, key_id)
            assert opened_with == key
            assert crypto.unseal(opened_with, nonce, sealed, b"header") == b"a session"

    def test_key_id_and_content_ids_stable(self, resolve: Callable[[], KeyResolution]) -> None:
        first = self.fresh(resolve)
        second = self.fresh(resolve)
        _, salt, key_id = first.key.for_writing()
        assert second.key.for_reading(salt, key_id) is not None
        if isinstance(first.key, crypto.MasterKey):
            assert isinstance(second.key, crypto.MasterKey)
            assert first.key.key_id_hex == second.key.key_id_hex
        assert first.key.content_id(b"value") == second.key.content_id(b"value")

    def test_no_secret_in_repr_or_messages(self, resolve: Callable[[], KeyResolution]) -> None:
        resolution = self.fresh(resolve)
        key = resolution.key.for_writing()[0]
        texts = [
            repr(resolution),
            str(resolution),
            repr(resolution.key),
            str(resolution.key),
            resolution.key.description,
            resolution.reason,
            resolution.location or "",
            resolution.notice or "",
        ]
        for text in texts:
            for form in secret_forms(key):
                assert form not in text

    def test_persisted_privately(
        self, resolve: Callable[[], KeyResolution], config_dir: Path
    ) -> None:
        resolution = self.fresh(resolve)
        key = resolution.key.for_writing()[0]
        on_disk: list[Path] = []
        for path in [config_dir, *config_dir.rglob("*")] if config_dir.exists() else []:
            mode = stat.S_IMODE(path.stat().st_mode)
            if os.name == "posix":
                assert mode == (0o700 if path.is_dir() else 0o600), path
            if path.is_file():
                data = path.read_bytes()
                if any(form.encode() in data for form in secret_forms(key)):
                    on_disk.append(path)
        if self.stores_key_on_disk:
            assert on_disk == [Path(resolution.location or "")]
        else:
            assert on_disk == []

    def test_notice_only_once(self, resolve: Callable[[], KeyResolution]) -> None:
        self.fresh(resolve)
        assert self.fresh(resolve).notice is None
        assert resolve().notice is None
