"""Four processes save one session 200 times each, with SIGKILLs and injected write faults among
them: no torn file, every surviving generation authenticates, and no history entry whose save
returned is ever lost (the merge on a generation conflict is what guarantees the last part).

Why ``SessionStore.write`` in plain processes, not kernels: the guarantee under test is the
store's optimistic concurrency (``base_generation``) plus
:func:`ipysession.session.merge.merge_sessions`, which is exactly what
``SessionManager._write_snapshot`` calls. Four kernels x 200 cells would spend the time budget
starting kernels and running cells, and a kernel adds nothing to a concurrent write but latency; a
plain process can be killed at any instruction of a write, which is the point. Each process does
what the manager does: it writes its own capture merged with what it carried from earlier merges,
and on a conflict merges theirs with its own capture only.
"""

from __future__ import annotations

import io
import os
import random
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import pytest

from ipysession.keys.crypto import MasterKey
from ipysession.store import SessionStore

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL (POSIX)"),
]

KEY = MasterKey(b"concurrency test key; public, no", description="concurrency test key")
NAME = "shared notebook.ipynb"
PROCESSES = 4
SAVES = 200
FSYNC_FAULT_RATE = 0.03

# One writer process. Entry ids are unique: process number, run number (a restarted process is a
# new run), save number. "ack ID" is printed only after store.write returned for a session that
# holds entry ID: from then on ID must be in every newer generation.
WRITER = r"""
import errno, os, random, sys, time
from pathlib import Path
from ipysession.keys.crypto import MasterKey
from ipysession.errors import SessionNotFound, StoreWriteError
from ipysession.session.merge import history_key, merge_sessions
from ipysession.model import HistoryEntry, Session, VariableRecord
from ipysession.store import SessionStore
from ipysession.store.retention import Retention

root, key, proc, run, count, rate, seed = sys.argv[1:8]
count, rate = int(count), float(rate)
rng = random.Random(int(seed))
# The newest 5 only, so rotation and blob collection race with the other writers.
retention = Retention((), keep=5)
store = SessionStore(Path(root), key=MasterKey(bytes.fromhex(key)), retention=retention, gc_grace=0)
name = sys.argv[8]

# Injected fault: os.fsync fails with ENOSPC now and then, as on a full disk (the data may or may
# not have reached the disk: the store must report the failure and leave every generation intact).
real_fsync = os.fsync
def fsync(fd):
    if rng.random() < rate:
        print("fault", flush=True)
        raise OSError(errno.ENOSPC, "No space left on device (injected)")
    real_fsync(fd)
os.fsync = fsync

try:
    first = store.read(name)
    carried, base = first.session, first.generation
except SessionNotFound:
    carried, base = None, 0
own = Session(name)
pending = []
run_id = f"p{proc}-r{run}"
print("ready", flush=True)
for k in range(1, count + 1):
    entry_id = f"{run_id}-{k}"
    own.history.append(HistoryEntry(entry_id, k, time.time(), run_id=run_id))
    size = 80_000 if k % 10 == 0 else 200  # every tenth value goes to a blob
    own.variables[f"v{proc}"] = VariableRecord(
        f"v{proc}", "bytes", size, encoding="pickle", data=os.urandom(size)
    )
    pending.append(entry_id)
    print("try", entry_id, flush=True)
    merged = []
    def merge(theirs, _ours):
        result = merge_sessions(theirs, own)
        merged.append(result)
        return result.session
    session = own if carried is None else merge_sessions(carried, own).session
    try:
        result = store.write(session, base_generation=base, merge=merge)
    except StoreWriteError:
        print("failed", entry_id, flush=True)
        continue
    written = merged[-1].session if result.merged else session
    base, carried = result.generation, written
    print("ack", result.generation, *pending, flush=True)
    pending = []
print("done", flush=True)
"""


@dataclass
class Writer:
    number: int
    acked_saves: int = 0
    runs: int = 0
    proc: subprocess.Popen[str] | None = None
    lines: list[str] = field(default_factory=list)
    reader: threading.Thread | None = None
    stderr: IO[str] = field(default_factory=io.StringIO)

    def start(self, root: Path, seed: int) -> None:
        self.runs += 1
        self.lines = []
        # stderr to a file: a pipe nobody reads until the end could fill and stall the writer.
        self.stderr = (root.parent / f"writer-{self.number}-{self.runs}.err").open("w+")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-c",
                WRITER,
                str(root),
                KEY.raw.hex(),
                str(self.number),
                str(self.runs),
                str(SAVES - self.acked_saves + 50),  # enough to reach SAVES acknowledged saves
                str(FSYNC_FAULT_RATE),
                str(seed),
                NAME,
            ],
            stdout=subprocess.PIPE,
            stderr=self.stderr,
            text=True,
        )
        stdout = self.proc.stdout
        assert stdout is not None
        lines = self.lines
        self.reader = threading.Thread(target=lambda: lines.extend(stdout), daemon=True)
        self.reader.start()

    def finish(self) -> list[str]:
        """Wait for the process (killed or done) and return all it printed."""
        assert self.proc is not None
        assert self.reader is not None
        code = self.proc.wait(timeout=60)
        self.reader.join(timeout=60)
        self.stderr.seek(0)
        err = self.stderr.read()
        self.stderr.close()
        if code not in (0, -signal.SIGKILL):
            pytest.fail(f"writer {self.number} failed ({code}): {err[-3000:]}")
        self.proc = None
        return [line.strip() for line in self.lines]


def _acked(lines: list[str]) -> tuple[set[str], int]:
    """Entry ids acknowledged in these lines, and the number of acknowledged saves."""
    ids: set[str] = set()
    saves = 0
    for line in lines:
        if line.startswith("ack "):
            saves += 1
            ids.update(line.split()[2:])
    return ids, saves


def _check_newest(root: Path, must_hold: set[str]) -> int:
    """The newest generation authenticates and holds every entry acknowledged before this read."""
    with SessionStore(root, key=KEY) as store:
        result = store.read(NAME)
        assert result.problems == [], result.problems
        held = {entry.source for entry in result.session.history}
        lost = must_hold - held
        assert not lost, f"acknowledged entries lost: {sorted(lost)[:10]}"
        assert result.generation is not None
        return result.generation


def test_four_writers_with_kills_and_faults_lose_no_acknowledged_entry(tmp_path: Path) -> None:
    seed = int.from_bytes(os.urandom(4), "big")
    rng = random.Random(seed)
    root = tmp_path / "root"
    writers = [Writer(i) for i in range(PROCESSES)]
    acknowledged: set[str] = set()
    tried = kills = faults = checks = 0
    started = time.monotonic()
    for writer in writers:
        writer.start(root, rng.randrange(1 << 30))

    def collect(writer: Writer) -> None:
        nonlocal tried, faults
        lines = writer.finish()
        ids, saves = _acked(lines)
        acknowledged.update(ids)
        writer.acked_saves += saves
        tried += sum(line.startswith("try ") for line in lines)
        faults += sum(line == "fault" for line in lines)

    next_kill = time.monotonic() + rng.uniform(0.05, 0.4)
    while any(w.proc is not None for w in writers):
        time.sleep(0.02)
        for writer in writers:
            if writer.proc is not None and writer.proc.poll() is not None:
                collect(writer)  # finished its run
                if writer.acked_saves < SAVES:
                    writer.start(root, rng.randrange(1 << 30))
        if time.monotonic() >= next_kill:
            next_kill = time.monotonic() + rng.uniform(0.05, 0.4)
            # Only a run that has acknowledged a save is killed, so every run makes progress and
            # the test ends however slow the machine is (no time budget to miss).
            running = [
                w
                for w in writers
                if w.proc is not None
                and w.proc.poll() is None
                and any(line.startswith("ack ") for line in list(w.lines))
            ]
            if running:
                victim = rng.choice(running)
                assert victim.proc is not None
                victim.proc.send_signal(signal.SIGKILL)
                kills += 1
                collect(victim)
                if victim.acked_saves < SAVES:
                    victim.start(root, rng.randrange(1 << 30))
        if rng.random() < 0.05:
            # While they write: every entry acknowledged so far is in the newest generation.
            snapshot = set(acknowledged)
            if snapshot:
                _check_newest(root, snapshot)
                checks += 1

    newest = _check_newest(root, acknowledged)
    with SessionStore(root, key=KEY) as store:
        infos = store.generations(NAME)
        assert [info.problem for info in infos] == [None] * len(infos)
        for info in infos:  # every kept generation and every value it refers to authenticates
            kept = store.read(NAME, generation=info.number).session
            assert set(kept.variables) <= {f"v{i}" for i in range(PROCESSES)}
            for record in kept.variables.values():
                if record.blob is not None:
                    assert len(store.read_blob(NAME, record.blob)) == 80_000
        assert not store.quarantine_dir.exists() or not any(store.quarantine_dir.rglob("*.ipy?*"))
        report = store.repair(grace=0)
        assert report.quarantined == []
    assert _check_newest(root, acknowledged) == newest
    assert all(w.acked_saves >= SAVES for w in writers)
    elapsed = time.monotonic() - started
    print(
        f"\nconcurrent writers (seed {seed}): {PROCESSES} processes, {tried} saves tried, "
        f"{sum(w.acked_saves for w in writers)} acknowledged, {kills} SIGKILLs, {faults} fsync "
        f"faults injected ({kills + faults} faults in all), {len(acknowledged)} acknowledged "
        f"entries, 0 acknowledged entries lost, newest generation {newest}, {checks} checks "
        f"while writing, {elapsed:.1f} s"
    )
