"""Fixtures for the connection tests: the factory peer module and a callback recorder."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.connections.peers import PEER, Events


@pytest.fixture
def peer(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    (tmp_path / "ipys_conn_peer.py").write_text(PEER)
    monkeypatch.syspath_prepend(str(tmp_path))
    sys.modules.pop("ipys_conn_peer", None)
    import ipys_conn_peer

    yield ipys_conn_peer
    sys.modules.pop("ipys_conn_peer", None)


@pytest.fixture
def events() -> Events:
    return Events()
