"""A full disk, a failing fsync, a read-only file system, no permission, a file system without
locks: the kernel keeps running, the previous generation stays intact, the
user gets exactly one clear message, and autosave retries later and succeeds once the fault is
gone.

Which faults are real and which injected is said in ``tests/reliability/faults.py``. The ones that
need a mount (a full tmpfs, a read-only remount) run the shell in a subprocess inside its own
mount namespace (``unshare -m``, needs root or user namespaces); permissions are tested as root
without CAP_DAC_OVERRIDE (root otherwise ignores them) on a directory given to another user. Each
is skipped with the reason where that is not possible.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.reliability.faults import SAVE_FAILED, run_scenario

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]


def check(outcome: dict[str, Any]) -> None:
    """What every fault must come to."""
    errors = outcome["errors"]
    assert len(errors) == 1, errors  # exactly one message, however many retries failed
    message = errors[0]
    for word in outcome["words"]:  # what happened, and what to do
        assert word in message, (word, message)
    assert outcome["session_dir"] in message  # where
    assert "autosave will try again" in message
    assert outcome["errors_after_recovery"] == 1  # no repeat, and nothing after recovery
    assert outcome["previous_intact"], "a generation changed or appeared while writes failed"
    assert outcome["leftovers"] == []
    assert outcome["recovered_generation"] > outcome["newest_before"]
    assert {"a", "b", "c0", "c1", "c2", "d"} <= set(outcome["recovered_variables"])
    assert outcome["problems"] == []


# --- in this process --------------------------------------------------------------------------


# A directory where the next generation goes is no fault any more: the store steps over any
# name that is taken (tests/store/test_store.py tests it).
@pytest.mark.parametrize("fault", ["fsync-enospc", "no-locks"])
def test_fault_in_process(fault: str, isolated_dirs: Path) -> None:
    check(run_scenario(fault, isolated_dirs))


# --- in a subprocess: a real full or read-only file system, another user ----------------------


def _env(base: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("COVERAGE", "COV_CORE"))}
    env.update(
        IPYSESSION_DIR=str(base / "data"),
        IPYSESSION_CONFIG_DIR=str(base / "config"),
        IPYTHONDIR=str(base / "ipython"),
        HOME=str(base),
        PYTHONDONTWRITEBYTECODE="1",
    )
    return env


def _outcome(done: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    assert done.returncode == 0, done.stderr[-4000:]
    # Nothing but the one message reaches the user: no log line or traceback on stderr either
    # (a kernel would send those into the notebook).
    assert "Traceback" not in done.stderr, done.stderr[-4000:]
    assert "ipysession" not in done.stderr, done.stderr[-4000:]
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


@pytest.fixture
def mount_namespace() -> None:
    if shutil.which("unshare") is None or shutil.which("mount") is None:
        pytest.skip("unshare and mount are needed for a real full or read-only file system")
    probe = subprocess.run(
        ["unshare", "-m", "--propagation", "private", "mount", "-t", "tmpfs", "t", "/mnt"],
        capture_output=True,
    )
    if probe.returncode:
        pytest.skip(f"cannot mount a tmpfs in a mount namespace here: {probe.stderr!r}")


@pytest.mark.parametrize(
    ("fault", "size"),
    [("disk-full", "1m"), ("read-only", "4m")],
)
def test_fault_on_a_real_mount(
    fault: str, size: str, tmp_path: Path, mount_namespace: None
) -> None:
    base = tmp_path
    env = _env(base)
    data = Path(env["IPYSESSION_DIR"])
    data.mkdir()
    script = (
        f'mount -t tmpfs -o size={size},mode=0700 tmpfs "{data}" && '
        f'exec "{sys.executable}" -m tests.reliability.faults {fault} "{data}"'
    )
    done = subprocess.run(
        ["unshare", "-m", "--propagation", "private", "sh", "-c", script],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    outcome = _outcome(done)
    assert errno.errorcode[outcome["expect"][0]] in ("ENOSPC", "EROFS")
    check(outcome)


def test_permission_denied(tmp_path: Path) -> None:
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        pytest.skip("needs root, to give the session directory to another user")
    # Root ignores permissions: run the shell as root without the capabilities that let it.
    if shutil.which("setpriv") is None:
        pytest.skip("as root this needs setpriv (util-linux) to drop CAP_DAC_OVERRIDE")
    env = _env(tmp_path)
    drop = "-dac_override,-dac_read_search"
    done = subprocess.run(
        [
            "setpriv",
            "--bounding-set",
            drop,
            "--inh-caps",
            drop,
            sys.executable,
            "-m",
            "tests.reliability.faults",
            "permission",
            env["IPYSESSION_DIR"],
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    if done.returncode and "ignores permissions" in done.stderr:
        pytest.skip("setpriv could not make root obey permissions here")
    outcome = _outcome(done)
    check(outcome)
    assert SAVE_FAILED in outcome["errors"][0]
