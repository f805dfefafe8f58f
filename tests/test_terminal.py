"""Terminal IPython (`ipython --ext ipysession`), driven through a real pseudo-terminal."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pexpect
import pytest

pytestmark = pytest.mark.kernel

PROMPT = r"In \[\d+\]: "


def start_ipython(home: Path) -> pexpect.spawn:
    env = {
        **os.environ,
        "IPYTHONDIR": str(home / "ipython"),
        "IPYSESSION_NAME": "terminal-session",
        "TERM": "dumb",
        "PYTHONUNBUFFERED": "1",
    }
    child = pexpect.spawn(
        sys.executable,
        [
            "-m",
            "IPython",
            "--simple-prompt",
            "--no-banner",
            "--colors=nocolor",
            "--ext=ipysession",
            "--SessionManager.key_backend=file",
            "--SessionManager.autosave_interval=0.05",
        ],
        cwd=str(home),
        env=env,
        encoding="utf-8",
        timeout=60,
    )
    child.expect(PROMPT)
    return child


def run(child: pexpect.spawn, line: str) -> str:
    child.sendline(line)
    child.expect(PROMPT)
    return str(child.before)


def test_terminal_ipython_comes_back(tmp_path: Path) -> None:
    first = start_ipython(tmp_path)
    try:
        run(first, "import collections as co")
        run(first, "counts = co.Counter('abracadabra')")
        run(first, "def twice(x): return 2 * x")
        run(first, "%precision 2")
        first.sendline("exit")
        first.expect(pexpect.EOF)
    finally:
        first.close(force=True)

    second = start_ipython(tmp_path)
    try:
        summary = str(second.before)
        assert "ipysession: restored 'terminal-session'" in summary
        assert "'a': 5" in run(second, "counts")
        assert "42" in run(second, "twice(21)")
        assert "3.14" in run(second, "3.14159")
        assert "co.Counter" in run(second, "%session history --grep Counter")
    finally:
        second.sendline("exit")
        second.close(force=True)
