"""A keyring that is locked, whose prompt is dismissed, or that hangs, when a kernel starts.

The master key lives in the keyring (the key-location marker says "keyring"). At the next start
the keyring will not give it: no new key may be created (it would orphan every session), the
session on disk must stay exactly as it is, the user gets one message saying what to do, and the
kernel and its cells work. Once the keyring answers again, autosave saves, merging with what is on
disk: nothing of the old session is lost.

Keyring backends are small ``keyring.backend.KeyringBackend`` subclasses installed with keyring's
own ``keyring.set_keyring`` (the ``use_keyring`` fixture puts the original back).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import keyring.backend
import keyring.errors
import pytest

import ipysession
from ipysession import display
from ipysession.extension import get_manager
from ipysession.keys import resolution as keystore
from tests.contract.keystore_suite import MemoryKeyring, use_keyring
from tests.reliability.faults import wait_for
from tests.shell import ipython_shell, restart, run

__all__ = ["use_keyring"]  # a fixture, imported to be found

pytestmark = pytest.mark.slow

InstallKeyring = Callable[[keyring.backend.KeyringBackend], None]
TIMEOUT = 0.5


class LockedKeyring(MemoryKeyring):
    """SecretService when the collection stays locked (unlock failed)."""

    def get_password(self, service: str, username: str) -> str | None:
        self.gets += 1
        raise keyring.errors.KeyringLocked("Failed to unlock the collection!")

    def set_password(self, service: str, username: str, password: str) -> None:
        self.sets += 1
        raise keyring.errors.KeyringLocked("Failed to unlock the collection!")


class DismissedKeyring(LockedKeyring):
    """SecretService when the user dismissed the unlock prompt of the item."""

    def get_password(self, service: str, username: str) -> str | None:
        self.gets += 1
        raise keyring.errors.KeyringLocked("Failed to unlock the item!")


class HangingKeyring(MemoryKeyring):
    """An unlock prompt nobody can see: every call blocks until released."""

    def __init__(self, items: dict[tuple[str, str], str]) -> None:
        super().__init__()
        self.items = dict(items)
        self.release = threading.Event()

    def get_password(self, service: str, username: str) -> str | None:
        self.gets += 1
        self.release.wait(60)
        return super().get_password(service, username)

    def set_password(self, service: str, username: str, password: str) -> None:
        self.sets += 1
        self.release.wait(60)
        super().set_password(service, username, password)


@pytest.fixture
def shown() -> Iterator[list[str]]:
    """Every message ipysession shows (instead of printing it)."""
    messages: list[str] = []
    real = display.show
    display.show = lambda message: messages.append(message.text)  # type: ignore[assignment]
    yield messages
    display.show = real  # type: ignore[assignment]


def snapshot(root: Path, config: Path) -> dict[str, bytes]:
    files = [p for p in sorted(root.rglob("*")) if p.is_file() and not p.name.startswith("lease")]
    files += [p for p in sorted(config.rglob("*")) if p.is_file() and p.name != "key.lock"]
    return {str(p): p.read_bytes() for p in files}


@pytest.mark.parametrize(
    ("kind", "words"),
    [
        ("locked", "locked or its unlock prompt was dismissed (KeyringLocked: Failed to unlock"),
        ("dismissed", "Failed to unlock the item!"),
        ("hanging", f"did not answer within {TIMEOUT:g} s"),
    ],
)
def test_an_unavailable_keyring_at_start_creates_nothing_and_orphans_nothing(
    kind: str,
    words: str,
    use_keyring: InstallKeyring,
    shown: list[str],
    isolated_dirs: Path,
    tmp_path: Path,
) -> None:
    config = tmp_path / "ipysession-config"
    ring = MemoryKeyring()
    use_keyring(ring)
    settings: dict[str, Any] = {
        "key_backend": "auto",
        "keyring_timeout": TIMEOUT,
        "autosave_interval": 0.05,
    }
    with ipython_shell(**settings) as shell:
        ipysession.load_ipython_extension(shell)
        run(shell, "kept = 42")
        run(shell, "%session save")
        # The marker says where the key is:
        assert '"backend": "keyring"' in (config / keystore.MARKER_FILE_NAME).read_text()
        ipysession.unload_ipython_extension(shell)
        before = snapshot(isolated_dirs, config)
        sessions_before = sorted(p.name for p in (isolated_dirs / "sessions").iterdir())

        bad: MemoryKeyring
        if kind == "locked":
            bad = LockedKeyring()
        elif kind == "dismissed":
            bad = DismissedKeyring()
        else:
            bad = HangingKeyring(ring.items)
        use_keyring(bad)
        keystore.clear_key_cache()  # a new kernel process reads the keyring afresh
        shown.clear()
        restart(shell)  # the kernel starts while the keyring will not give the key
        if isinstance(bad, HangingKeyring):
            # The start gave up on the keyring call, which is still blocked: asked once,
            # abandoned, not awaited.
            assert bad.gets == 1
            assert not bad.release.is_set()
        assert "kept" not in shell.user_ns
        manager = get_manager(shell)
        assert manager is not None
        run(shell, "x = 1")  # cells work
        run(shell, "y = x + 1")
        assert shell.user_ns["y"] == 2
        time.sleep(1.0)  # autosave tries, and fails quietly: the user was told already
        run(shell, "z = 3")
        errors = [t for t in shown if "ipysession" in t and ("could not" in t or "keyring" in t)]
        assert len(errors) == 1, errors
        message = errors[0]
        assert "could not restore the session" in message
        assert words in message
        assert "will not create another one" in message  # what happens
        assert "Unlock the keyring" in message  # what to do
        assert "IPYSESSION_PASSPHRASE" in message
        # Nothing created, nothing changed, nothing forked: every session stays readable with
        # the key that is in the keyring.
        assert not (config / keystore.KEY_FILE_NAME).exists()
        assert bad.sets == 0
        assert snapshot(isolated_dirs, config) == before
        assert sorted(p.name for p in (isolated_dirs / "sessions").iterdir()) == sessions_before

        # The keyring answers again: the next retry saves, merged with what was on disk.
        if isinstance(bad, HangingKeyring):
            bad.release.set()
        use_keyring(ring)
        wait_for(lambda: manager.last_generation is not None, "autosave saved", timeout=30)
        wait_for(lambda: not manager.status().pending, "autosave idle")
        saved = manager.store.read(manager.name).session
        assert {"kept", "x", "y", "z"} <= set(saved.variables)
        assert not (config / keystore.KEY_FILE_NAME).exists()
        assert [t for t in shown if "could not save" in t] == []
