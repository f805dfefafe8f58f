"""Write faults under a working IPython shell, shared by the fault tests.

:func:`run_scenario` loads ipysession into an in-process shell (``tests/shell.py``), saves once,
injects a fault, keeps running cells while autosave fails, checks that the previous generation is
untouched and that the user saw exactly one message, clears the fault and waits, running no cell,
for autosave to retry and succeed. Faults that need a real mount (a full tmpfs, a read-only
remount) or another user run this in a subprocess::

    python -m tests.reliability.faults FAULT ROOT    # prints the outcome as JSON, last line

Each fault is either real (the file system really is full, read-only, or forbids this user) or
injected (``os.fsync`` or ``fcntl.flock`` replaced); the test says which and why.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import stat
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from tests.builders import wait_for

__all__ = ["FAULTS", "SAVE_FAILED", "run_scenario", "wait_for"]

SAVE_FAILED = "could not save the session"


def _gen_files(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("gen-*.ipys"))
        if p.is_file()
    }


class Fault:
    """A fault: ``inject`` makes writes under ``root`` fail, ``clear`` undoes it."""

    expect: tuple[int, ...] = ()
    words: tuple[str, ...] = ()
    hides_files = False  # while injected, this process cannot even list the session files

    def __init__(self, root: Path, sdir: Path) -> None:
        self.root = root
        self.sdir = sdir

    def inject(self) -> None:
        raise NotImplementedError

    def clear(self) -> None:
        raise NotImplementedError


class DiskFull(Fault):
    """Real: the tmpfs mounted at root is filled up by another file."""

    expect = (errno.ENOSPC,)
    words = ("No space left on device", "Free space on the disk")

    def inject(self) -> None:
        with open(self.root / "filler", "wb", buffering=0) as f:
            for chunk in (65536, 1):  # then byte by byte: take the last free bytes too
                try:
                    while True:
                        f.write(b"\0" * chunk)
                except OSError as exc:
                    if exc.errno != errno.ENOSPC:
                        raise

    def clear(self) -> None:
        (self.root / "filler").unlink()


class FsyncNoSpace(Fault):
    """Injected: fsync of a session file fails with ENOSPC (delayed allocation on a full disk,
    NFS, quota). No file system can be made to fail fsync on demand, so os.fsync is wrapped."""

    expect = (errno.ENOSPC,)
    words = ("No space left on device", "Free space on the disk")

    def __init__(self, root: Path, sdir: Path) -> None:
        super().__init__(root, sdir)
        self.real = os.fsync

    def inject(self) -> None:
        real, root = self.real, str(self.root)

        def fsync(fd: int) -> None:
            target = os.readlink(f"/proc/self/fd/{fd}")
            if target.startswith(root) and stat.S_ISREG(os.fstat(fd).st_mode):
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            real(fd)

        os.fsync = fsync

    def clear(self) -> None:
        os.fsync = self.real


class ReadOnly(Fault):
    """Real: the tmpfs mounted at root is remounted read-only."""

    expect = (errno.EROFS,)
    words = ("Read-only file system", "read-only")

    def inject(self) -> None:
        subprocess.run(["mount", "-o", "remount,ro", str(self.root)], check=True)

    def clear(self) -> None:
        subprocess.run(["mount", "-o", "remount,rw", str(self.root)], check=True)


class NoPermission(Fault):
    """Real: the session directory now belongs to another user (say, it was created under
    sudo). Making it read-only would not do: the store makes its own directories 0700 again.
    Root ignores permissions, so this runs as root without CAP_DAC_OVERRIDE (``setpriv``), which
    makes root obey them, and keeps CAP_CHOWN to give the directory back."""

    expect = (errno.EACCES,)
    words = ("Permission denied", "Check permissions of")
    hides_files = True
    other = 65534  # nobody

    def inject(self) -> None:
        self.owner = self.sdir.stat().st_uid, self.sdir.stat().st_gid
        os.chown(self.sdir, self.other, self.other)
        probe = self.sdir / "probe"
        try:
            probe.touch()
        except PermissionError:
            return
        probe.unlink()
        self.clear()
        msg = "this process ignores permissions (root with CAP_DAC_OVERRIDE)"
        raise AssertionError(msg)

    def clear(self) -> None:
        os.chown(self.sdir, *self.owner)


class NoLocks(Fault):
    """Injected: flock fails with ENOLCK, as on an NFS mount without a lock daemon. A real one
    needs an NFS server; filelock calls fcntl.flock, so that is wrapped, for session files only."""

    expect = (errno.ENOLCK,)
    words = ("No locks available", "File locks do not work on this filesystem")

    def __init__(self, root: Path, sdir: Path) -> None:
        super().__init__(root, sdir)
        self.real = fcntl.flock

    def inject(self) -> None:
        real, root = self.real, str(self.root)

        def flock(fd: Any, operation: int) -> None:
            number = fd if isinstance(fd, int) else fd.fileno()
            if os.readlink(f"/proc/self/fd/{number}").startswith(root):
                raise OSError(errno.ENOLCK, os.strerror(errno.ENOLCK))
            real(fd, operation)

        fcntl.flock = flock

    def clear(self) -> None:
        fcntl.flock = self.real


FAULTS: dict[str, type[Fault]] = {
    "disk-full": DiskFull,
    "fsync-enospc": FsyncNoSpace,
    "read-only": ReadOnly,
    "permission": NoPermission,
    "no-locks": NoLocks,
}


def run_scenario(fault_name: str, root: Path) -> dict[str, Any]:
    """Save, fail under the fault while cells keep running, recover; report what happened."""
    import ipysession
    from ipysession import display
    from ipysession.extension import get_manager
    from tests.shell import ipython_shell, run

    shown: list[str] = []
    real_show = display.show
    display.show = lambda message: shown.append(message.text)  # type: ignore[assignment]
    try:
        with ipython_shell(autosave_interval=0.05) as shell:
            ipysession.load_ipython_extension(shell)
            manager = get_manager(shell)
            assert manager is not None
            run(shell, "a = 1")
            wait_for(lambda: manager.last_generation and not manager.status().pending, "saved")
            # The files as they are with no write under way: read them again if one began.
            quiet: dict[str, Any] = {}

            def settled() -> bool:
                generation = manager.last_generation
                quiet["files"] = _gen_files(root)
                return not manager.status().pending and manager.last_generation == generation

            wait_for(settled, "no write under way")
            before_generation = manager.last_generation
            before = quiet["files"]
            fault = FAULTS[fault_name](root, manager.store.session_dir(manager.name))

            fault.inject()
            try:
                run(shell, "b = 2")  # the cell works
                wait_for(lambda: manager.last_error is not None, "a save failed")
                for i in range(3):  # cells keep working while autosave retries and fails
                    run(shell, f"c{i} = {i}")
                    time.sleep(0.25)
                errors = [text for text in shown if SAVE_FAILED in text]
                during = before if fault.hides_files else _gen_files(root)
                generation_during = manager.last_generation
                last_error = manager.last_error
            finally:
                fault.clear()
            leftovers = [str(p) for p in root.rglob(".tmp-*")]
            # No cell runs from here: the retry alone must save.
            wait_for(
                lambda: manager.last_error is None and manager.last_generation != before_generation,
                "autosave retried and succeeded",
            )
            recovered = manager.last_generation
            run(shell, "d = 4")
            wait_for(
                lambda: manager.last_generation != recovered and not manager.status().pending,
                "saved again",
            )
            errors_after = [text for text in shown if SAVE_FAILED in text]
            after = _gen_files(root)
            saved = manager.store.read(manager.name)
            outcome = {
                "fault": fault_name,
                "expect": list(fault.expect),
                "words": list(fault.words),
                "errors": errors,
                "errors_after_recovery": len(errors_after),
                "last_error": last_error,
                "previous_intact": (
                    during == before
                    and generation_during == before_generation
                    and all(after.get(name) == data for name, data in before.items())
                ),
                "newest_before": before_generation,
                "leftovers": leftovers,
                "recovered_generation": saved.generation,
                "recovered_variables": sorted(saved.session.variables),
                "problems": [p.message for p in saved.problems],
                "session_dir": str(manager.store.session_dir(manager.name)),
            }
    finally:
        display.show = real_show  # type: ignore[assignment]
    return outcome


if __name__ == "__main__":
    result = run_scenario(sys.argv[1], Path(sys.argv[2]))
    print(json.dumps(result))
