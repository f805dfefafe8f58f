"""Secrets that no connection record knows never reach saved history (issue 11)."""

from __future__ import annotations

import pytest

import ipysession
from ipysession.capture.history import HistoryRecorder
from ipysession.redaction import is_secret_name, redact_source
from tests.shell import ipython_shell, run


@pytest.mark.parametrize(
    ("line", "secret", "kept"),
    [
        ("%sql postgresql://me:Hunter2pw@db.example:5432/sales", "Hunter2pw", "db.example:5432"),
        (
            "%session connect db postgresql://me:s3cr%40t@localhost/db",
            "s3cr%40t",
            "me:***@localhost",
        ),
        ("engine = create_engine('mysql+pymysql://root:p@ss@w0rd@host/db')", "p@ss@w0rd", "@host"),
        ("u = 'redis://:only-a-password@cache:6379/0'", "only-a-password", "cache:6379"),
        (
            "%sql postgresql://me@db/x?sslmode=require&sslkey=/home/me/.pg/key.pem",
            "/home/me/.pg/key.pem",
            "sslmode=require",
        ),
        ("url = 'https://api.example/v1?api_key=AbC123xyz&page=2'", "AbC123xyz", "page=2"),
        (
            "u = 'https://blob.example/c?sv=2020&sig=ZmFrZXNpZw%3D%3D'",
            "ZmFrZXNpZw%3D%3D",
            "sv=2020",
        ),
        ("%env OPENAI_API_KEY=sk-live-123456", "sk-live-123456", "%env OPENAI_API_KEY="),
        ("%env DB_PASSWORD  correct horse battery", "correct horse battery", "%env DB_PASSWORD"),
        ("%set_env TOKEN = tok-abcdef", "tok-abcdef", "%set_env TOKEN"),
        ("x = 1\n  %env HOME_DIR=/srv/private\ny = 2", "/srv/private", "y = 2"),
    ],
)
def test_redact_source_blanks_the_secret_and_keeps_the_rest(
    line: str, secret: str, kept: str
) -> None:
    redacted = redact_source(line)
    assert secret not in redacted
    assert "***" in redacted
    assert kept in redacted


@pytest.mark.parametrize(
    "line",
    [
        "%env",  # lists the environment: nothing is set
        "%env HOME",  # shows one value: nothing is set
        "df = pd.read_csv('https://example.org/data.csv?version=2&page=1')",
        "password = getpass.getpass()",  # code, not a value
        "ratio = a/b  # 1:2@3",
        "print('ftp://anonymous@ftp.example.org/pub')",
    ],
)
def test_redact_source_leaves_lines_without_secrets_alone(line: str) -> None:
    assert redact_source(line) == line


@pytest.mark.parametrize("name", ["password", "PWD", "sslkey", "api-key", "X_Auth_Token", "sig"])
def test_secret_names(name: str) -> None:
    assert is_secret_name(name)


@pytest.mark.parametrize("name", ["sslmode", "host", "page", "version", "user"])
def test_plain_names(name: str) -> None:
    assert not is_secret_name(name)


def test_the_recorder_redacts_before_its_callback_sees_the_line() -> None:
    seen: list[str] = []

    def callback(source: str) -> str:
        seen.append(source)
        return source

    recorder = HistoryRecorder("run-1", redact=callback)
    entry = recorder.record("%sql postgresql://me:Hunter2pw@db/sales", execution_count=1)
    assert entry is not None
    assert "Hunter2pw" not in entry.source
    assert seen == ["%sql postgresql://me:***@db/sales"]


def test_saved_and_printed_history_holds_no_secret(capsys: pytest.CaptureFixture[str]) -> None:
    """In a real shell: the lines are run, saved, read back from disk and printed."""
    from ipysession.extension import get_manager

    with ipython_shell(autosave=False) as shell:
        ipysession.load_ipython_extension(shell)
        run(shell, "%env IPYS_TEST_TOKEN=tok-very-secret-1")
        run(shell, "url = 'postgresql://me:Hunter2pw@db.example/sales?sslkey=/k/key.pem'")
        run(shell, "%session save")
        manager = get_manager(shell)
        assert manager is not None
        saved = manager.store.read(manager.name).session
        saved_sources = "\n".join(entry.source for entry in saved.history)
        assert "url = 'postgresql://me:***@db.example/sales?sslkey=***'" in saved_sources
        capsys.readouterr()
        run(shell, "%session history")
        printed = capsys.readouterr().out
    for secret in ("tok-very-secret-1", "Hunter2pw", "/k/key.pem"):
        assert secret not in saved_sources
        assert secret not in printed
    assert "%env IPYS_TEST_TOKEN=***" in printed
