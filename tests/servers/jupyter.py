"""A ``jupyter_server`` on a free 127.0.0.1 port with a token and Jupyter dirs of its own."""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from tests.servers.process import Server, free_port, spawn, terminate, wait_until


class JupyterServer(Server):
    """The REST and WebSocket API that Jupyter Server and Enterprise Gateway both serve."""

    name = "Jupyter Server"

    def __init__(self, *, token: str) -> None:
        self.token = token
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.dir = Path(tempfile.mkdtemp(prefix="ipys-jupyter-"))
        self.log = self.dir / "server.log"
        self._process = None
        for sub in ("config", "data", "runtime", "ipython", "root"):
            (self.dir / sub).mkdir()
        try:
            self.start()
        except BaseException:
            self.close()
            raise

    def _env(self) -> dict[str, str]:
        # Its own Jupyter and IPython dirs: its kernels never load the user's ipysession config.
        return {
            "JUPYTER_CONFIG_DIR": str(self.dir / "config"),
            "JUPYTER_DATA_DIR": str(self.dir / "data"),
            "JUPYTER_RUNTIME_DIR": str(self.dir / "runtime"),
            "IPYTHONDIR": str(self.dir / "ipython"),
            "JUPYTER_PLATFORM_DIRS": "1",
        }

    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self) -> None:
        if self.running():
            return
        self._process = spawn(
            [sys.executable, "-m", "jupyter_server", "--ServerApp.ip=127.0.0.1",
             f"--ServerApp.port={self.port}", "--ServerApp.port_retries=0",
             "--ServerApp.allow_root=True",
             f"--IdentityProvider.token={self.token}", "--ServerApp.open_browser=False",
             f"--ServerApp.root_dir={self.dir / 'root'}",
             # Kernels outlive a server restart only when the server is told to leave them.
             "--ServerApp.shutdown_no_activity_timeout=0"],
            self.log, self._env(),
        )  # fmt: skip
        wait_until(self._answers, f"Jupyter Server on port {self.port}", log=self.log,
                   process=self._process)  # fmt: skip

    def _answers(self) -> bool:
        try:
            self.api("GET", "/api/status")
        except (OSError, urllib.error.URLError):
            return False
        return True

    def api(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        """Call the REST API with the token; the decoded JSON answer (None when empty)."""
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(
            self.url + path,
            data=data,
            method=method,
            headers={"Authorization": f"token {self.token}", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=30) as answer:
            text = answer.read()
        return json.loads(text) if text else None

    def start_kernel(self, name: str = "python3") -> str:
        return str(self.api("POST", "/api/kernels", {"name": name})["id"])

    def shutdown_kernel(self, kernel_id: str) -> None:
        try:
            self.api("DELETE", f"/api/kernels/{kernel_id}")
        except urllib.error.HTTPError as exc:
            if exc.code != 404:
                raise

    def stop(self) -> None:
        terminate(self._process)
        self._process = None

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)
