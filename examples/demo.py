"""ipysession demo: a Jupyter kernel does some work, is killed with SIGKILL, and comes back.

Run with `make demo` (or `python examples/demo.py` inside the project's venv). Everything happens
under a temporary directory: sessions, the key file and IPython's profile, so nothing of yours is
touched. The kernel loads ipysession from its config, exactly as a user's kernel would:

    # ~/.ipython/profile_default/ipython_kernel_config.py
    c.InteractiveShellApp.extensions = ["ipysession"]
"""

from __future__ import annotations

import os
import queue
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from jupyter_client.manager import KernelManager

CELLS = [
    "import numpy as np, pandas as pd, collections",
    "class Point:\n    def __init__(self, x, y):\n        self.x, self.y = x, y\n"
    "    def __repr__(self):\n        return f'Point({self.x}, {self.y})'\npt = Point(3, 4)",
    "df = pd.DataFrame({'a': np.arange(10_000), 'b': np.random.default_rng(0).random(10_000)})",
    "counts = collections.Counter('the quick brown fox jumps over the lazy dog')",
    "square = lambda v: v * v",
    "squares = (i * i for i in range(10))  # a generator cannot be saved: it will be named",
    "%precision 3",
    "total = float(df.b.sum())",
]


def run(kc, code: str) -> str:  # type: ignore[no-untyped-def]
    """Execute ``code`` and return what a user would see."""
    msg_id = kc.execute(code)
    shown: list[str] = []
    displayed: dict[str, int] = {}  # display id -> its place in `shown`, updated in place
    while True:
        try:
            msg = kc.get_iopub_msg(timeout=60)
        except queue.Empty:
            continue
        if msg["parent_header"].get("msg_id") != msg_id:
            continue
        kind, content = msg["msg_type"], msg["content"]
        display_id = (
            content.get("transient", {}).get("display_id") if kind.endswith("data") else None
        )
        if kind == "stream":
            shown.append(content["text"])
        elif kind == "update_display_data" and display_id in displayed:
            shown[displayed[display_id]] = content["data"].get("text/plain", "")
        elif kind in ("display_data", "execute_result"):
            if display_id is not None:
                displayed[display_id] = len(shown)
            shown.append(content["data"].get("text/plain", ""))
        elif kind == "error":
            shown.append(f"{content['ename']}: {content['evalue']}")
        elif kind == "status" and content["execution_state"] == "idle":
            return "\n".join(s.rstrip() for s in shown if s.strip())


def wait_until_saved(kc, deadline: float = 120.0) -> None:  # type: ignore[no-untyped-def]
    """Wait until autosave has written everything, asking the kernel as a frontend would.

    A user expression runs outside the user's history, so the demo's session is unchanged.
    """
    probe = (
        "__import__('ipysession.extension').extension.get_manager(get_ipython()).status().pending"
    )
    give_up = time.monotonic() + deadline
    while time.monotonic() < give_up:
        kc.execute("", silent=True, user_expressions={"pending": probe})
        reply = kc.get_shell_msg(timeout=60)
        result = reply["content"].get("user_expressions", {}).get("pending", {})
        if result.get("data", {}).get("text/plain") == "False":
            return
        time.sleep(0.2)
    msg = "autosave did not finish writing within two minutes"
    raise SystemExit(msg)


def main() -> int:
    home = Path(tempfile.mkdtemp(prefix="ipysession-demo-"))
    profile = home / "ipython" / "profile_default"
    profile.mkdir(parents=True)
    (profile / "ipython_kernel_config.py").write_text(
        "c = get_config()  # noqa\n"
        'c.InteractiveShellApp.extensions = ["ipysession"]\n'
        "c.SessionManager.autosave_interval = 0.5\n"
    )
    env = {
        **os.environ,
        "IPYTHONDIR": str(home / "ipython"),
        "IPYSESSION_DIR": str(home / "sessions"),
        "IPYSESSION_CONFIG_DIR": str(home / "config"),
        "IPYSESSION_NAME": "demo-notebook.ipynb",
    }
    # IPC sockets in the private temporary directory: nothing listens on the network, and the
    # kernel has no reason to warn about plain-text TCP.
    km = KernelManager(kernel_name="python3", transport="ipc", ip=str(home / "kernel"))
    km.start_kernel(env=env, cwd=str(home))
    kc = km.client()
    kc.start_channels()
    kc.wait_for_ready(timeout=60)
    try:
        print(f"1. A kernel (pid {km.provisioner.pid}) runs {len(CELLS)} cells:")  # type: ignore[union-attr]
        for cell in CELLS:
            print("   In: " + cell.splitlines()[0])
            run(kc, cell)
        before = run(kc, "print(pt, square(12), counts.most_common(1), round(total, 3), len(df))")
        print(f"   -> {before}")
        wait_until_saved(kc)
        print("2. The kernel is killed with SIGKILL (no chance to save anything at exit).")
        kc.stop_channels()
        started = time.perf_counter()
        km.restart_kernel(now=True)
        kc = km.client()
        kc.start_channels()
        kc.wait_for_ready(timeout=60)
        ready = time.perf_counter() - started
        print(f"3. A new kernel (pid {km.provisioner.pid}) is ready {ready * 1000:.0f} ms later.")  # type: ignore[union-attr]
        summary = run(kc, "pass")
        print("   Its first cell shows what ipysession brought back:")
        for line in summary.splitlines():
            print(f"   | {line}")
        shown = run(kc, "print(pt, square(12), counts.most_common(1), round(total, 3), len(df))")
        # Above the values, the line of a cell that waited for what was still arriving (pandas
        # imported in the background, then the DataFrame that needs it), as the user sees it.
        *waited, after = shown.splitlines() or [""]
        for line in waited:
            print(f"   | {line}")
        print(f"   -> {after}")
        print(f"   {'Same values as before the kill.' if after == before else 'DIFFERENT!'}")
        print("4. The session on disk, seen with the `ipysession` command line:")
        listing = subprocess.run(
            [sys.executable, "-m", "ipysession", "list"],
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        for line in (listing.stdout or listing.stderr).splitlines():
            print(f"   | {line}")
        return 0 if after == before else 1
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)


if __name__ == "__main__":
    sys.exit(main())
