"""Shared fixtures: every test gets its own session root and config dir; nothing touches $HOME."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def isolated_dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    root = tmp_path / "ipysession-data"
    monkeypatch.setenv("IPYSESSION_DIR", str(root))
    monkeypatch.setenv("IPYSESSION_CONFIG_DIR", str(tmp_path / "ipysession-config"))
    for name in ("IPYSESSION_NAME", "IPYSESSION_PASSPHRASE", "JPY_SESSION_NAME"):
        monkeypatch.delenv(name, raising=False)
    return root
