"""Run a command while every core is kept busy by other processes: `make test-under-load`.

The suite must pass on a loaded machine (two shared cores in CI), so no test may depend on how
fast the machine is. This keeps one spinning process per core (plus one, so the command never
has a core to itself) for as long as the command runs, then stops them, and exits with the
command's status.

    python tests/run_under_load.py make test
"""

from __future__ import annotations

import multiprocessing
import os
import subprocess
import sys


def _spin() -> None:
    # Pure-Python arithmetic: holds a core without touching memory or the disk.
    n = 0
    while True:
        n = (n * 31 + 7) % 1_000_003


def main(argv: list[str]) -> int:
    if not argv:
        print("usage: run_under_load.py COMMAND [ARG...]", file=sys.stderr)
        return 2
    spinners = [
        multiprocessing.Process(target=_spin, name=f"load-{i}", daemon=True)
        for i in range((os.cpu_count() or 2) + 1)
    ]
    for spinner in spinners:
        spinner.start()
    print(f"run_under_load: {len(spinners)} busy processes on {os.cpu_count()} cores", flush=True)
    try:
        return subprocess.call(argv)
    finally:
        for spinner in spinners:
            spinner.terminate()
        for spinner in spinners:
            spinner.join()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
