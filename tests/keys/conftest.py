"""Fixtures for the key tests: a fresh config dir, keyring doubles released after each test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.contract.keystore_suite import use_keyring
from tests.keys.keyrings import release_hanging_keyrings

__all__ = ["use_keyring"]  # a fixture, imported to be found


@pytest.fixture(autouse=True)
def _release_hanging_keyrings() -> Iterator[None]:
    yield
    release_hanging_keyrings()


@pytest.fixture
def config_dir(tmp_path: Path) -> Path:
    return tmp_path / "config"
