"""Co-variables and out-of-band buffers, measured in one process: what capture adds per small
cell (the reference namespace, and 10,000 small variables), and the restore of a 100 MiB array
(time and peak memory).

    python -m benchmarks.covars_bench [--runs N] [--json FILE]

The same script runs against another checkout (``PYTHONPATH=/path/to/other/checkout``), so a
branch and main are compared side by side, on the same machine, in the same minutes; it uses
only the API both have. Numbers are medians; nothing here is asserted (tests assert behaviour,
never durations).

- *per small cell added*: a real in-process IPython shell runs the reference workload's cells
  (and, in the second case, binds 10,000 small lists), then times the workload's small cell
  with ipysession loaded (autosave on, as in a kernel) and with it unloaded, in alternating
  blocks; the difference of the medians is what capture adds between cells.
- *100 MiB array*: a float64 array is captured and written through a ``SessionStore``, then
  restored as a kernel does it (the session read, its blobs read, the value unpickled) into a
  fresh namespace; wall time and the peak of traced allocations (``tracemalloc``: numpy and the
  blob reader both report to it), medians.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Any

MIB = 1 << 20


def _median_ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1000


def _time_cell(shell: Any, cell: str, runs: int) -> list[float]:
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        shell.run_cell(cell, store_history=True)
        samples.append(time.perf_counter() - started)
    return samples


def per_cell(runs: int, *, many: int) -> dict[str, float]:
    """Median time of the reference workload's small cell with and without ipysession."""
    from IPython.core.interactiveshell import InteractiveShell

    import ipysession
    from benchmarks.workloads import Sizes, reference

    workload = reference(Sizes())
    work = Path(tempfile.mkdtemp(prefix="covars-bench-"))
    os.chdir(work)
    for name, text in workload.files.items():
        (work / name).write_text(text)
    shell = InteractiveShell.instance()
    shell.config.SessionManager.key_backend = "file"
    shell.config.SessionManager.session_name = f"bench-{many}"
    shell.config.SessionManager.autorestore = "never"
    for cell in workload.cells:
        shell.run_cell(cell, store_history=True)
    if many:
        shell.run_cell(f"for _i in range({many}):\n    globals()[f'small{{_i}}'] = [_i]")
    with_ext: list[float] = []
    without: list[float] = []
    block = max(1, runs // 5)
    for _ in range(5):
        ipysession.load_ipython_extension(shell)
        shell.run_cell(workload.small_cell)  # the first capture after loading is not measured
        with_ext += _time_cell(shell, workload.small_cell, block)
        ipysession.unload_ipython_extension(shell)
        without += _time_cell(shell, workload.small_cell, block)
    InteractiveShell.clear_instance()
    plain, loaded = _median_ms(without), _median_ms(with_ext)
    return {"plain_ms": plain, "with_ipysession_ms": loaded, "added_ms": loaded - plain}


def array_restore(runs: int, megabytes: int = 100) -> dict[str, float]:
    """Restore of one ``megabytes`` MiB float64 array: median time and traced peak memory."""
    import numpy as np

    from ipysession.capture.namespace import capture_value, restore_value
    from ipysession.keys.crypto import MasterKey, new_master_key
    from ipysession.model import Session, VariableRecord
    from ipysession.store import SessionStore

    arr = np.random.default_rng(0).random(megabytes * MIB // 8)
    key = MasterKey(new_master_key())
    root = Path(tempfile.mkdtemp(prefix="covars-bench-store-"))
    record = capture_value("arr", arr)
    assert isinstance(record, VariableRecord)
    del arr
    with SessionStore(root, key=key) as store:
        store.write(Session(name="big", variables={"arr": record}))
        del record
        gc.collect()
        times: list[float] = []
        peaks: list[float] = []
        for _ in range(runs):
            gc.collect()
            tracemalloc.start()
            started = time.perf_counter()
            stored = store.read("big").session.variables["arr"]
            data = stored.data if stored.data is not None else store.read_blob("big", stored.blob)
            buffers = [store.read_blob("big", b.blob) for b in getattr(stored, "buffers", ())]
            kwargs: dict[str, Any] = {"buffers": buffers} if buffers else {}
            value = restore_value(stored, data, **kwargs)
            times.append(time.perf_counter() - started)
            peaks.append(tracemalloc.get_traced_memory()[1] / MIB)
            tracemalloc.stop()
            assert value.nbytes == megabytes * MIB
            del value, data, buffers
    return {
        "restore_ms": _median_ms(times),
        "peak_traced_mib": statistics.median(peaks),
        "array_mib": float(megabytes),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.covars_bench")
    parser.add_argument("--runs", type=int, default=200, help="timed small cells per case")
    parser.add_argument("--restore-runs", type=int, default=5)
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)
    home = Path(tempfile.mkdtemp(prefix="covars-bench-home-"))
    os.environ["IPYSESSION_DIR"] = str(home / "data")
    os.environ["IPYSESSION_CONFIG_DIR"] = str(home / "config")
    import ipysession

    results = {
        "ipysession": str(Path(ipysession.__file__).parent),
        "reference": per_cell(args.runs, many=0),
        "reference+10000": per_cell(args.runs, many=10_000),
        "array_100mib": array_restore(args.restore_runs),
    }
    print(json.dumps(results, indent=2))
    if args.json is not None:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
