"""What every test server shares: free ports, waiting on a condition, stopping processes."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

#: How long a server may take to come up on a loaded machine (a bound on failure, not a budget).
START_TIMEOUT = 120.0


class ServerUnavailable(RuntimeError):
    """A test server could not be started; the message says which, why, and where its log is."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def accepts(port: int) -> bool:
    """Whether something accepts TCP connections on 127.0.0.1:``port``."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1.0):
            return True
    except OSError:
        return False


def tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def wait_until(
    condition: Callable[[], bool],
    what: str,
    *,
    log: Path | None = None,
    process: subprocess.Popen[bytes] | None = None,
    timeout: float = START_TIMEOUT,
) -> None:
    """Return once ``condition()`` holds; raise :class:`ServerUnavailable` naming ``what``."""
    deadline = time.monotonic() + timeout
    while not condition():
        if process is not None and process.poll() is not None:
            msg = f"{what}: the process exited with {process.returncode}"
            raise ServerUnavailable(msg + (f"; its log ends:\n{tail(log)}" if log else ""))
        if time.monotonic() > deadline:
            msg = f"{what}: not ready after {timeout:g} s"
            raise ServerUnavailable(msg + (f"; its log ends:\n{tail(log)}" if log else ""))
        time.sleep(0.1)


def spawn(argv: list[str], log: Path, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    """Start ``argv`` in its own process group, output appended to ``log``."""
    with log.open("ab") as out:
        return subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
            start_new_session=True,
        )


def terminate(process: subprocess.Popen[bytes] | None, *, timeout: float = 30.0) -> None:
    """SIGTERM the process group, SIGKILL it after ``timeout``; safe on an exited process."""
    if process is None or process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout)


class Server:
    """A server the tests start, stop and start again on the same port."""

    name = "server"

    def start(self) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def close(self) -> None:
        """Stop for good and remove what was made; safe twice."""
        self.stop()

    @contextlib.contextmanager
    def down(self) -> Iterator[None]:
        """The server stopped for the body, started again (same port) after it."""
        self.stop()
        try:
            yield
        finally:
            self.start()
