"""Real Jupyter kernels for tests: started with jupyter_client, configured like a user would.

Each kernel gets its own IPYTHONDIR with an ``ipython_kernel_config.py`` that loads ipysession,
so the extension loads at kernel start exactly as it does for users who put it in their config.
"""

from __future__ import annotations

import os
import queue
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jupyter_client.blocking.client import BlockingKernelClient
from jupyter_client.manager import KernelManager

STARTUP_TIMEOUT = 60

#: A kernel's SessionManager, as an expression to evaluate inside the kernel.
MANAGER = "__import__('ipysession.extension').extension.get_manager(get_ipython())"
#: Config line: autosave at most every 50 ms, so a test waits for a save, not an interval.
FAST_AUTOSAVE = "c.SessionManager.autosave_interval = 0.05"


@dataclass
class CellResult:
    reply: dict[str, Any]
    stdout: str = ""
    stderr: str = ""
    outputs: list[dict[str, Any]] = field(default_factory=list)
    error: dict[str, Any] | None = None

    @property
    def text(self) -> str:
        """stdout plus every text/plain output, as a user would read it."""
        parts = [self.stdout]
        for output in self.outputs:
            data = output.get("data", {})
            if "text/plain" in data:
                parts.append(data["text/plain"])
        return "\n".join(p for p in parts if p)

    @property
    def ok(self) -> bool:
        return self.reply["content"]["status"] == "ok"


def write_config(ipython_dir: Path, *lines: str, load_extension: bool = True) -> None:
    profile = ipython_dir / "profile_default"
    profile.mkdir(parents=True, exist_ok=True)
    body = ["c = get_config()  # noqa"]
    if load_extension:
        body.append('c.InteractiveShellApp.extensions = ["ipysession"]')
    body.append('c.SessionManager.key_backend = "file"')
    body.extend(lines)
    (profile / "ipython_kernel_config.py").write_text("\n".join(body) + "\n")


class Kernel:
    """A kernel manager plus a started client, with helpers to run code and restart."""

    def __init__(self, km: KernelManager) -> None:
        self.km = km
        self.client: BlockingKernelClient = km.client()
        self.client.start_channels()
        self.client.wait_for_ready(timeout=STARTUP_TIMEOUT)
        self.startup: CellResult | None = None

    def run(self, code: str, *, timeout: float = 60, allow_error: bool = False) -> CellResult:
        kc = self.client
        msg_id = kc.execute(code, store_history=True)
        result = CellResult(reply={})
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"no idle from kernel for {code[:60]!r}")
            try:
                msg = kc.get_iopub_msg(timeout=remaining)
            except queue.Empty:
                continue
            if msg["parent_header"].get("msg_id") != msg_id:
                continue
            kind, content = msg["msg_type"], msg["content"]
            if kind == "stream":
                if content["name"] == "stdout":
                    result.stdout += content["text"]
                else:
                    result.stderr += content["text"]
            elif kind in ("display_data", "execute_result"):
                result.outputs.append(content)
            elif kind == "error":
                result.error = content
            elif kind == "status" and content["execution_state"] == "idle":
                break
        result.reply = kc.get_shell_msg(timeout=timeout)
        while result.reply["parent_header"].get("msg_id") != msg_id:
            result.reply = kc.get_shell_msg(timeout=timeout)
        if result.error is not None and not allow_error:
            raise AssertionError(
                f"cell failed: {result.error['ename']}: {result.error['evalue']}\n"
                + "\n".join(result.error.get("traceback", []))
            )
        return result

    def value(self, expression: str) -> Any:
        """Evaluate ``expression`` in the kernel and return it (via repr + literal eval)."""
        import ast

        out = self.run(f"print(repr(({expression})))").stdout.strip()
        return ast.literal_eval(out)

    def restart(self, *, now: bool = False) -> None:
        """Restart the kernel (graceful shutdown unless ``now``) and wait until it is ready.

        Returns nothing: how long it took is a benchmark figure (``benchmarks/``), never a test's.
        """
        self.client.stop_channels()
        self.km.restart_kernel(now=now)
        self.client = self.km.client()
        self.client.start_channels()
        self.client.wait_for_ready(timeout=STARTUP_TIMEOUT)

    def kill_hard(self) -> None:
        """SIGKILL the kernel process (no atexit, no final save), then start a new one."""
        self.restart(now=True)

    def shutdown(self, *, now: bool = True) -> None:
        """Stop the kernel (``now=False``: ask it to shut down, so atexit runs). Safe twice."""
        if getattr(self, "_shut_down", False):
            return
        self._shut_down = True
        self.client.stop_channels()
        self.km.shutdown_kernel(now=now)


@contextmanager
def start_kernel(
    home: Path, *config_lines: str, load_extension: bool = True, env: dict[str, str] | None = None
) -> Iterator[Kernel]:
    ipython_dir = home / "ipython"
    write_config(ipython_dir, *config_lines, load_extension=load_extension)
    work = home / "work"
    work.mkdir(parents=True, exist_ok=True)
    kernel_env = {
        **os.environ,
        "IPYTHONDIR": str(ipython_dir),
        "IPYSESSION_DIR": str(home / "data"),
        "IPYSESSION_CONFIG_DIR": str(home / "config"),
        "IPYSESSION_LOG_DIR": str(home / "logs"),
        "PYTHONUNBUFFERED": "1",
        **(env or {}),
    }
    # Named as Jupyter names them (kernel-<id>.json), so the kernel knows its id, which it keeps
    # across restarts, as under Jupyter.
    runtime = home / "runtime"
    runtime.mkdir(parents=True, exist_ok=True)
    kernel_id = str(uuid.uuid4())
    km = KernelManager(
        kernel_name="python3",
        kernel_id=kernel_id,
        connection_file=str(runtime / f"kernel-{kernel_id}.json"),
    )
    km.start_kernel(env=kernel_env, cwd=str(work), extra_arguments=[])
    kernel = None
    try:
        kernel = Kernel(km)
        # The kernelspec could point at another interpreter; these tests need this venv. What the
        # extension said while loading shows under this first cell: kept as kernel.startup.
        kernel.startup = kernel.run(
            f"import sys; assert sys.executable == {sys.executable!r}, sys.executable"
        )
        yield kernel
    finally:
        if kernel is not None:
            kernel.shutdown()
        else:
            km.shutdown_kernel(now=True)


def wait_for_autosave(kernel: Kernel) -> None:
    """Wait until the kernel's autosave has written a generation and nothing is pending."""
    from tests.builders import wait_for

    def saved() -> bool:
        pending, generation = kernel.value(
            f"(lambda s: (s.pending, s.last_generation))({MANAGER}.status())"
        )
        return not pending and bool(generation)

    wait_for(saved, "autosave wrote a generation and nothing is pending")


def run_cli(home: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    """The ``ipysession`` command on the store and key of the kernels started under ``home``."""
    env = {
        **os.environ,
        "IPYSESSION_DIR": str(home / "data"),
        "IPYSESSION_CONFIG_DIR": str(home / "config"),
    }
    return subprocess.run(
        [sys.executable, "-m", "ipysession", *argv],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
