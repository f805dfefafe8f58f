"""Restart to first cell with three reachable connections, against the same kernel with none.

    .venv/bin/python -m benchmarks.connections [--trials 7] [--json PATH]

Three real servers on 127.0.0.1 (the test suite's own, from ``tests/servers/``): PostgreSQL
(``sqlalchemy`` over psycopg, password from the environment), a Dask scheduler and worker
(``dask``), and a Jupyter Server (``jupyter_server``, token from the environment). Two kernels with
ipysession, started side by side: *none* has no connection, *three* has the three. Each trial
restarts both, in alternating order, and times from the restart request until the reply of the
first cell:

- ``restart_first_cell_ms``: a cell that names none of the connections (``x = 1``), on *none* and
  on *three*; the figure of issue 13 is the difference of the medians (budget: at most 150 ms);
- ``restart_named_cell_ms``: on *three*, a cell that uses ``db`` (``SELECT 1``), which has to
  wait until ``db`` is bound (reported as a failure, with its error, if it is not).

Each restart is also split in two: the old kernel's shutdown (its atexit handlers, and closing
what it holds: a Dask client, a kernel client, a connection pool), and the new kernel's launch to
the first cell's reply, which is what ipysession's restore and reconnection decide.

The old kernel's shutdown is mostly not ipysession's: two more kernels *without* ipysession,
*plain none* and *plain three* (the same three connections, opened by hand: a SQLAlchemy engine with
a pooled connection, a ``distributed.Client``, and a kernel on the Jupyter Server through the
backend's client class), are restarted in the same trials, and the figure
``shutdown added, ipysession - plain`` is ipysession's own share of what the connections add to the
shutdown. jupyter_client polls for the old process's exit every 0.1 s, so each shutdown time is a
multiple of about 100 ms: compare medians over several trials, never one restart.

Medians over the trials, side by side on the same machine; nothing here is a test.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.kernels import Kernel, start_kernel  # noqa: E402 - after the path is set
from tests.servers.dask import DaskCluster  # noqa: E402
from tests.servers.fixtures import JUPYTER_TOKEN, PG_PASSWORD  # noqa: E402
from tests.servers.jupyter import JupyterServer  # noqa: E402
from tests.servers.postgres import PostgresServer  # noqa: E402

BUDGET_MS = 150.0
CONFIG = ("c.SessionManager.autosave_interval = 0.05", "c.SessionManager.connect_timeout = 30.0")


# Shutdown, then launch to the first cell's reply, per kernel and cell: see the module doc.
SPLITS: dict[str, list[tuple[float, float]]] = {
    "none": [],
    "three": [],
    "named": [],
    "plain_none": [],
    "plain_three": [],
}


def _timed(kernel: Kernel, code: str, key: str) -> tuple[float, str | None]:
    """Restart ``kernel``, run ``code``; milliseconds from the restart request to its reply.

    The restart is ``Kernel.restart`` in two steps, timed apart (what jupyter_client's
    ``restart_kernel`` does: shut down for a restart, then start with the same launch args).
    """
    t0 = time.perf_counter()
    kernel.client.stop_channels()
    kernel.km.shutdown_kernel(now=False, restart=True)
    shut = time.perf_counter()
    kernel.km.start_kernel(**kernel.km._launch_args)  # the same kernel command and environment
    kernel.client = kernel.km.client()
    kernel.client.start_channels()
    kernel.client.wait_for_ready(timeout=120)
    result = kernel.run(code, allow_error=True)
    end = time.perf_counter()
    SPLITS[key].append(((shut - t0) * 1000.0, (end - shut) * 1000.0))
    error = None
    if result.error is not None:
        error = f"{result.error['ename']}: {result.error['evalue']}"
    return (end - t0) * 1000.0, error


def _wait(condition: Callable[[], bool], what: str, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            msg = f"timed out waiting until {what}"
            raise RuntimeError(msg)
        time.sleep(0.05)


def _connect_three(kernel: Kernel, pg: PostgresServer, dask: DaskCluster, js: JupyterServer) -> str:
    kernel.run(
        f"%session connect db sqlalchemy {pg.info.url(password=False)} "
        "--secret-env password=IPYS_BENCH_PG"
    )
    kernel.run(f"%session connect cluster dask {dask.address}")
    kernel.run(
        f"%session connect rk jupyter_server {js.url} --kwarg kernel_name=python3 "
        "--secret-env token=IPYS_BENCH_TOKEN"
    )
    kernel_id = str(kernel.value("rk.kernel_id"))
    _saved(kernel)
    return kernel_id


def _open_three_by_hand(
    kernel: Kernel, pg: PostgresServer, dask: DaskCluster, js: JupyterServer
) -> None:
    """The same three connections as ``_connect_three``, in a kernel without ipysession."""
    kernel.run(
        "import os, uuid, sqlalchemy, distributed\n"
        f"db = sqlalchemy.create_engine({pg.info.url(password=False)!r}, "
        "connect_args={'password': os.environ['IPYS_BENCH_PG']})\n"
        "db.connect().close()\n"
        f"cluster = distributed.Client({dask.address!r}, timeout=30)\n"
        "from ipysession.connections.backends.jupyter_server import JupyterServerBackend\n"
        f"rk = JupyterServerBackend().connect({{'url': {js.url!r}, 'kernel_name': 'python3', "
        "'kernel_id': str(uuid.uuid4()), 'start': True}, "
        "{'token': os.environ['IPYS_BENCH_TOKEN']}, timeout=30)\n"
        "rk_id = rk.kernel_id"
    )


def _saved(kernel: Kernel) -> None:
    manager = "__import__('ipysession.extension').extension.get_manager(get_ipython())"
    _wait(
        lambda: bool(kernel.value(f"(lambda s: not s.pending and bool(s.last_generation))"
                                  f"({manager}.status())")),
        "autosave wrote a generation",
    )  # fmt: skip


def _bound(kernel: Kernel) -> None:
    _wait(lambda: bool(kernel.value("all(n in globals() for n in ('db', 'cluster', 'rk'))")),
          "the three connections are bound")  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.connections")
    parser.add_argument("--trials", type=int, default=7)
    parser.add_argument("--json", type=Path, help="also write the raw figures here")
    parser.add_argument(
        "--reconnect-wait",
        type=float,
        help="set SessionManager.reconnect_wait in both kernels (default: the trait's default)",
    )
    args = parser.parse_args(argv)
    config = CONFIG
    if args.reconnect_wait is not None:
        config = (*CONFIG, f"c.SessionManager.reconnect_wait = {args.reconnect_wait!r}")
    env = {"IPYS_BENCH_PG": PG_PASSWORD, "IPYS_BENCH_TOKEN": JUPYTER_TOKEN}
    raw: dict[str, list[Any]] = {
        "none": [],
        "three": [],
        "named": [],
        "named_errors": [],
        "plain_none": [],
        "plain_three": [],
    }
    pg = PostgresServer(password=PG_PASSWORD)
    dask = DaskCluster()
    js = JupyterServer(token=JUPYTER_TOKEN)
    try:
        with tempfile.TemporaryDirectory(prefix="ipys-bench-conn-") as tmp:
            home = Path(tmp)
            with (
                start_kernel(home / "none", *config, env=env) as none,
                start_kernel(home / "three", *config, env=env) as three,
                start_kernel(home / "plain_none", env=env, load_extension=False) as plain_none,
                start_kernel(home / "plain_three", env=env, load_extension=False) as plain_three,
            ):
                none.run("y = 2")
                _saved(none)
                kernel_id = _connect_three(three, pg, dask, js)
                plain_ids = []
                for trial in range(args.trials):
                    plain_none.run("y = 2")
                    _open_three_by_hand(plain_three, pg, dask, js)
                    plain_ids.append(str(plain_three.value("rk_id")))
                    order = [
                        (none, "none"),
                        (three, "three"),
                        (plain_none, "plain_none"),
                        (plain_three, "plain_three"),
                    ]
                    if trial % 2:
                        order.reverse()
                    for kernel, key in order:
                        elapsed, error = _timed(kernel, "x = 1", key)
                        if error:
                            raise RuntimeError(f"{key}: the first cell failed: {error}")
                        raw[key].append(elapsed)
                    _bound(three)
                    elapsed, error = _timed(
                        three, "db.connect().exec_driver_sql('select 1').scalar()", "named"
                    )
                    raw["named"].append(elapsed)
                    raw["named_errors"].append(error)
                    _bound(three)
                    print(
                        f"trial {trial + 1}: none {raw['none'][-1]:.0f} ms, three "
                        f"{raw['three'][-1]:.0f} ms, naming db {elapsed:.0f} ms"
                        + (f" ({error})" if error else ""),
                        file=sys.stderr,
                    )
                three.run("rk.close(); cluster.close()")
                for started in (kernel_id, *plain_ids):
                    js.shutdown_kernel(started)
    finally:
        for server in (js, dask, pg):
            server.close()
    medians = {k: statistics.median(raw[k]) for k in ("none", "three", "named")}
    added = medians["three"] - medians["none"]
    failures = sum(1 for e in raw["named_errors"] if e)
    print(f"restart to first cell, median of {args.trials} (ms):")
    print(f"  no connections, cell names none:        {medians['none']:.0f}")
    print(f"  three reachable, cell names none:       {medians['three']:.0f}")
    print(f"  added by three connections:             {added:+.0f}  (budget <= {BUDGET_MS:.0f})")
    print(
        f"  three reachable, cell uses db:          {medians['named']:.0f}"
        + (f"  ({failures} of {args.trials} failed: {raw['named_errors']})" if failures else "")
    )
    shutdown = {k: statistics.median(a for a, _ in v) for k, v in SPLITS.items()}
    launch = {k: statistics.median(b for _, b in v) for k, v in SPLITS.items()}
    print("  split, medians (ms): old kernel's shutdown | launch to the first cell's reply")
    for key, what in (
        ("none", "no connections"),
        ("three", "three, cell names none"),
        ("plain_none", "without ipysession, no connections"),
        ("plain_three", "without ipysession, the same three"),
    ):
        print(f"    {what:<37} {shutdown[key]:>5.0f} | {launch[key]:.0f}")
    ours = shutdown["three"] - shutdown["none"]
    theirs = shutdown["plain_three"] - shutdown["plain_none"]
    print(
        f"  added by three connections, launch to first reply: "
        f"{launch['three'] - launch['none']:+.0f}; in the old kernel's shutdown: {ours:+.0f} "
        f"(without ipysession: {theirs:+.0f}; ipysession's share: {ours - theirs:+.0f})"
    )
    if args.json:
        args.json.write_text(
            json.dumps({"raw": raw, "medians": medians, "added_ms": added, "splits": SPLITS})
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
