"""Real connection targets for the "three connections, one unreachable" start-to-ready figure.

A live remote kernel (one per benchmark run), a SQLite file, and a kernel that is connected to and
then shut down before the restart, so its ports are closed when ipysession reconnects.
"""

from __future__ import annotations

import atexit
from typing import Any

from jupyter_client.manager import KernelManager, start_new_kernel

from .tools import Context

_REMOTE: KernelManager | None = None


def _start() -> KernelManager:
    km: KernelManager
    km, client = start_new_kernel(kernel_name="python3")
    client.stop_channels()
    return km


def _remote() -> KernelManager:
    global _REMOTE
    if _REMOTE is None or not _REMOTE.is_alive():
        _REMOTE = _start()
        atexit.register(_REMOTE.shutdown_kernel, now=True)
    return _REMOTE


def three_connections(ctx: Context) -> str:
    """The cell that opens the three connections; remembers the doomed kernel in ``ctx``."""
    doomed = _start()
    ctx.state["doomed_kernel"] = doomed
    database = ctx.root / "bench.db"
    return "\n".join(
        [
            f"%session connect remote jupyter {_remote().connection_file}",
            f"%session connect db sqlalchemy sqlite:///{database}",
            f"%session connect gone jupyter {doomed.connection_file}",
        ]
    )


def break_one(ctx: Context) -> None:
    """Shut down the kernel behind the third connection: it is unreachable after the restart."""
    doomed: Any = ctx.state.pop("doomed_kernel", None)
    if doomed is not None:
        doomed.shutdown_kernel(now=True)
