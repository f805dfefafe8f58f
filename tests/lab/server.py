"""A real ``jupyter lab`` on 127.0.0.1 and Debian's Chromium, for the browser tests and the
load benchmark.

The server gets a token and its own Jupyter dirs (config, data, runtime, settings, workspaces),
its kernels an IPYTHONDIR that loads ipysession and their own session root and key dir, so
nothing of the user's is read or written. The extension is the one built in this checkout
(``make labextension``), found through ``$JUPYTER_PATH``, which JupyterLab searches first.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
BUILT = REPO / "labextension" / "build"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
START_TIMEOUT = 120.0

# First-run toasts (news, update checks) would sit among the notifications the tests read.
_PAGE_CONFIG = {"disabledExtensions": {"@jupyterlab/apputils-extension:announcements": True}}


def missing_requirements() -> str | None:
    """Why the browser tests cannot run here, or None. They fail with it, never skip."""
    if not (BUILT / "package.json").exists():
        return f"the JupyterLab extension is not built ({BUILT}): run `make labextension`"
    if not CHROMIUM.exists():
        return f"{CHROMIUM} is missing: `make system-deps` installs Debian's chromium"
    try:
        import jupyterlab  # noqa: F401
        import playwright.sync_api  # noqa: F401
    except ImportError as exc:
        return f"{exc.name} is not installed: `make .venv/.installed` installs the test extra"
    return None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class LabServer:
    home: Path
    root: Path
    port: int
    token: str
    process: subprocess.Popen[bytes]
    log: Path

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def url(self, path: str = "lab", *, reset: bool = False) -> str:
        """``reset``: start from an empty workspace, not the one the last page left."""
        return f"{self.base}/{path}?{'reset&' if reset else ''}token={self.token}"

    def api(self, method: str, path: str, body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            f"{self.base}/api/{path}",
            data=data,
            method=method,
            headers={"Authorization": f"token {self.token}", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            raw = response.read()
        return json.loads(raw) if raw else None

    @property
    def kernel_env(self) -> dict[str, str]:
        """What the server's kernels see of ipysession's dirs (for a kernel started beside it)."""
        return {
            "IPYTHONDIR": str(self.home / "ipython"),
            "IPYSESSION_DIR": str(self.home / "data"),
            "IPYSESSION_CONFIG_DIR": str(self.home / "config"),
        }


def write_kernel_config(ipython_dir: Path, *lines: str) -> None:
    profile = ipython_dir / "profile_default"
    profile.mkdir(parents=True, exist_ok=True)
    body = [
        "c = get_config()  # noqa",
        'c.InteractiveShellApp.extensions = ["ipysession"]',
        'c.SessionManager.key_backend = "file"',
        "c.SessionManager.autosave_interval = 0.2",
        *lines,
    ]
    (profile / "ipython_kernel_config.py").write_text("\n".join(body) + "\n")


@contextlib.contextmanager
def lab_server(home: Path, *, with_extension: bool = True) -> Iterator[LabServer]:
    """Start ``jupyter lab`` (notebooks in ``home/notebooks``); stop it and its kernels after."""
    root = home / "notebooks"
    root.mkdir(parents=True, exist_ok=True)
    jupyter_path = home / "jupyter-path"
    (jupyter_path / "labextensions").mkdir(parents=True, exist_ok=True)
    link = jupyter_path / "labextensions" / "ipysession"
    if with_extension and not link.exists():
        link.symlink_to(BUILT, target_is_directory=True)
    elif not with_extension and link.is_symlink():
        link.unlink()
    _write_plain_kernelspec(jupyter_path, home / "ipython-plain")
    config = home / "jupyter-config"
    (config / "labconfig").mkdir(parents=True, exist_ok=True)
    (config / "labconfig" / "page_config.json").write_text(json.dumps(_PAGE_CONFIG))
    write_kernel_config(home / "ipython")
    token = secrets.token_hex(16)
    port = _free_port()
    env = {
        **os.environ,
        "JUPYTER_PATH": str(jupyter_path),
        "JUPYTER_CONFIG_DIR": str(config),
        "JUPYTER_DATA_DIR": str(home / "jupyter-data"),
        "JUPYTER_RUNTIME_DIR": str(home / "jupyter-runtime"),
        "JUPYTERLAB_SETTINGS_DIR": str(home / "lab-settings"),
        "JUPYTERLAB_WORKSPACES_DIR": str(home / "lab-workspaces"),
        "IPYTHONDIR": str(home / "ipython"),
        "IPYSESSION_DIR": str(home / "data"),
        "IPYSESSION_CONFIG_DIR": str(home / "config"),
        "PYTHONUNBUFFERED": "1",
    }
    for name in ("IPYSESSION_NAME", "JPY_SESSION_NAME"):
        env.pop(name, None)
    log = home / "jupyter-lab.log"
    command = [
        sys.executable,
        "-m",
        "jupyterlab",
        "--no-browser",
        "--ServerApp.ip=127.0.0.1",
        f"--ServerApp.port={port}",
        "--ServerApp.port_retries=0",
        f"--IdentityProvider.token={token}",
        f"--ServerApp.root_dir={root}",
        "--LabApp.expose_app_in_browser=True",
        "--LabApp.news_url=",
        # No registry look-ups from the extension manager: nothing leaves 127.0.0.1.
        "--LabApp.extension_manager=readonly",
    ]
    if os.geteuid() == 0:
        command.append("--allow-root")  # CI runs as root
    with log.open("wb") as out:
        process = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)
    server = LabServer(home, root, port, token, process, log)
    try:
        _wait_until_up(server)
        yield server
    finally:
        stop(process)


def _write_plain_kernelspec(jupyter_path: Path, ipython_dir: Path) -> None:
    """A Python kernel that does not load ipysession ("Python (no ipysession)")."""
    (ipython_dir / "profile_default").mkdir(parents=True, exist_ok=True)
    spec = jupyter_path / "kernels" / "plain"
    spec.mkdir(parents=True, exist_ok=True)
    kernel = {
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Python (no ipysession)",
        "language": "python",
        "env": {"IPYTHONDIR": str(ipython_dir)},
    }
    (spec / "kernel.json").write_text(json.dumps(kernel))


def _wait_until_up(server: LabServer) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        if server.process.poll() is not None:
            msg = f"jupyter lab exited ({server.process.returncode}):\n{server.log.read_text()}"
            raise AssertionError(msg)
        with contextlib.suppress(OSError):
            server.api("GET", "status")
            return
        if time.monotonic() > deadline:
            msg = f"jupyter lab did not answer in {START_TIMEOUT} s:\n{server.log.read_text()}"
            raise AssertionError(msg)
        time.sleep(0.2)


def stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM (the server shuts its kernels down), then SIGKILL if it hangs. This process only."""
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=30)


def launch_chromium(playwright: Any) -> Any:
    """Debian's Chromium, headless; never a browser Playwright would download."""
    return playwright.chromium.launch(
        executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
    )


def write_notebook(path: Path, *sources: str, kernel: str = "python3") -> None:
    """A notebook of these code cells; ``kernel="plain"``: a kernel without ipysession."""
    import nbformat

    notebook = nbformat.v4.new_notebook()
    notebook.cells = [nbformat.v4.new_code_cell(source) for source in sources]
    notebook.metadata["kernelspec"] = {
        "name": kernel,
        "display_name": "Python 3 (ipykernel)" if kernel == "python3" else kernel,
        "language": "python",
    }
    nbformat.write(notebook, str(path))
