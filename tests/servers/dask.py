"""A Dask scheduler and one worker as processes (the ``dask`` CLI), on a free 127.0.0.1 port."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from tests.servers.process import (
    Server,
    ServerUnavailable,
    accepts,
    free_port,
    spawn,
    terminate,
    wait_until,
)


class DaskCluster(Server):
    """``dask scheduler`` plus ``dask worker``; ``stop()`` ends both, ``start()`` starts both."""

    name = "Dask"

    def __init__(self) -> None:
        self.port = free_port()
        self.address = f"tcp://127.0.0.1:{self.port}"
        self.dir = Path(tempfile.mkdtemp(prefix="ipys-dask-"))
        self.log = self.dir / "cluster.log"
        self._scheduler: subprocess.Popen[bytes] | None = None
        self._worker: subprocess.Popen[bytes] | None = None
        # Workers registered before the last stop: start() waits for one more.
        self._registered = 0
        dask_cli = Path(sys.executable).with_name("dask")
        if not dask_cli.exists():
            msg = f"Dask: {dask_cli} does not exist; install the test extra (dask[distributed])"
            raise ServerUnavailable(msg)
        self._cli = str(dask_cli)
        try:
            self.start()
        except BaseException:
            self.close()
            raise

    def running(self) -> bool:
        return self._scheduler is not None and self._scheduler.poll() is None

    def start(self) -> None:
        if self.running():
            return
        env = {"DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT": "30s"}
        self._scheduler = spawn(
            [self._cli, "scheduler", "--host", "127.0.0.1", "--port", str(self.port),
             "--no-dashboard", "--no-show"],
            self.log, env,
        )  # fmt: skip
        wait_until(
            lambda: accepts(self.port),
            f"Dask scheduler on port {self.port}",
            log=self.log,
            process=self._scheduler,
        )
        self._worker = spawn(
            [self._cli, "worker", self.address, "--host", "127.0.0.1", "--nworkers", "1",
             "--nthreads", "1", "--no-dashboard", "--no-nanny", "--local-directory",
             str(self.dir / "worker")],
            self.log, env,
        )  # fmt: skip
        wait_until(self._has_worker, "a Dask worker registered", log=self.log, process=self._worker)

    def _has_worker(self) -> bool:
        # The scheduler logs each worker it registers; reading the log needs no client.
        return self._count_registered() > self._registered

    def _count_registered(self) -> int:
        try:
            return self.log.read_text(errors="replace").count("Register worker")
        except OSError:
            return 0

    def stop(self) -> None:
        terminate(self._worker)
        terminate(self._scheduler)
        self._registered = self._count_registered()
        self._worker = self._scheduler = None

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)
