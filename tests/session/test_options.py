"""The options a user sets on SessionManager, and what they refuse."""

from __future__ import annotations

import math

import pytest
from traitlets import TraitError
from traitlets.config import Config

from ipysession.session.manager import SessionManager
from ipysession.session.options import SessionOptions

SECONDS = [
    "full_capture_interval",
    "deep_capture_interval",
    "keyring_timeout",
    "lease_timeout",
    "reconnect_wait",
    "reconnect_backoff",
    "connect_timeout",
    "heartbeat_interval",
]


@pytest.mark.parametrize("name", SECONDS)
@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf, -1.0])
def test_a_wait_refuses_what_could_never_end_or_compare(name: str, bad: float) -> None:
    options = SessionOptions()
    before = getattr(options, name)
    with pytest.raises(TraitError, match=name):
        setattr(options, name, bad)
    assert getattr(options, name) == before


@pytest.mark.parametrize("name", SECONDS)
def test_a_wait_accepts_zero_and_finite_seconds(name: str) -> None:
    options = SessionOptions()
    setattr(options, name, 0)
    assert getattr(options, name) == 0.0
    setattr(options, name, 2.5)
    assert getattr(options, name) == 2.5


def test_options_are_configured_as_session_manager_options() -> None:
    config = Config()
    config.SessionManager.lease_timeout = 42.0
    config.SessionManager.exclude = ["tmp_*"]
    manager = SessionManager(config=config)
    try:
        assert manager.lease_timeout == 42.0
        assert manager.exclude == ["tmp_*"]
        # Configured before the workspace existed: it still applies (this used to crash).
        assert manager.workspace.tracker.exclude == ("tmp_*",)
        # Every option SessionManager documents is one of SessionOptions'.
        own = set(SessionOptions.class_traits(config=True))
        assert set(SessionManager.class_traits(config=True)) == own
        assert "autosave_interval" in own
    finally:
        manager.close(final_save=False)


def test_a_refused_value_in_config_is_an_error_naming_the_option() -> None:
    config = Config()
    config.SessionManager.heartbeat_interval = math.nan
    with pytest.raises(TraitError, match="heartbeat_interval"):
        SessionManager(config=config)


def test_device_map_takes_a_device_or_a_dict_of_devices_and_refuses_the_rest() -> None:
    options = SessionOptions()
    assert options.device_map == ""  # back where each tensor was saved
    options.device_map = "cpu"
    options.device_map = {"cuda:1": "cuda:0", "cuda": "cpu"}
    assert options.device_map == {"cuda:1": "cuda:0", "cuda": "cpu"}
    for bad in ("cuda:one", {"cuda:1": "gpu 0"}):
        with pytest.raises(TraitError, match=r"device_map: .* is not a device name"):
            options.device_map = bad
    assert options.device_map == {"cuda:1": "cuda:0", "cuda": "cpu"}
