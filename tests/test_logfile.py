"""The log file: where it is, that it rotates and is private, and that no secret reaches it."""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

import pytest

from ipysession import logfile, paths
from ipysession.redaction import SecretFilter

SECRET = "s3cr3t/pa ss@word"


def test_log_dir_follows_the_environment_and_platformdirs(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("IPYSESSION_LOG_DIR", str(tmp_path / "logs"))
    assert logfile.log_path() == tmp_path / "logs" / "ipysession.log"
    monkeypatch.delenv("IPYSESSION_LOG_DIR")
    monkeypatch.setattr("sys.platform", "linux")
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    assert paths.log_dir() == tmp_path / "state" / "ipysession" / "log"


def test_the_file_gets_redacted_lines_and_is_private(tmp_path: Path) -> None:
    handler = logfile.install("DEBUG", lambda: [SECRET])
    assert handler is not None
    log = logging.getLogger("ipysession")
    try:
        log.info("connecting with %s", SECRET)
        log.warning("url postgresql://bob:%s@db/sales", "hunter2-long")
        log.info("quoted %r and %s", SECRET, "s3cr3t%2Fpa%20ss%40word")
        try:
            raise RuntimeError(f"login failed for {SECRET}")
        except RuntimeError:
            log.exception("it failed")
    finally:
        logfile.uninstall(handler)
        logfile.uninstall(handler)  # safe twice
    path = logfile.log_path()
    text = path.read_text()
    assert "connecting with ***" in text
    assert "postgresql://bob:***@db/sales" in text
    assert "RuntimeError: login failed for ***" in text
    assert SECRET not in text
    assert "hunter2-long" not in text
    assert "s3cr3t%2Fpa%20ss%40word" not in text
    assert str(os.getpid()) in text
    if os.name == "posix":
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert handler not in log.handlers


def test_a_broken_secret_provider_does_not_silence_the_log() -> None:
    def broken() -> list[str]:
        raise RuntimeError("no")

    record = logging.LogRecord("ipysession", logging.INFO, __file__, 1, "x=%s", ("y",), None)
    assert SecretFilter(broken).filter(record)
    assert record.getMessage() == "x=y"
