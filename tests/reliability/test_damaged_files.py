"""Truncated, bit-flipped, zero-length, absurdly long, foreign and junk files in a session
directory, met by a kernel starting (an in-process shell): never a crash, never a pickle loaded
before authentication, the newest good generation restored, ``--generation`` reaching the older
ones, and one message saying what was skipped.

"Never a pickle loaded" is checked with a payload that creates a marker file when unpickled,
planted where a careless reader would unpickle it: as a generation file, behind a forged header
that names our key, and in place of a stored value (a blob) a good generation refers to.
"""

from __future__ import annotations

import os
import pickle
import random
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import ipysession
from ipysession import display
from ipysession.extension import get_manager
from ipysession.keys.crypto import MasterKey
from ipysession.session.manager import SessionManager
from ipysession.store import fileformat
from tests.reliability.faults import wait_for
from tests.shell import ipython_shell, run

pytestmark = pytest.mark.slow


class _Touch:
    """Unpickling this creates the marker file: proof that a pickle was loaded."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (Path.touch, (self.marker,))


@pytest.fixture
def shown() -> Iterator[list[str]]:
    messages: list[str] = []
    real = display.show
    display.show = lambda message: messages.append(message.text)  # type: ignore[assignment]
    yield messages
    display.show = real  # type: ignore[assignment]


@pytest.fixture
def shell() -> Iterator[Any]:
    with ipython_shell(autosave=False) as shell:
        ipysession.load_ipython_extension(shell)
        yield shell


def manager_of(shell: Any) -> SessionManager:
    manager = get_manager(shell)
    assert manager is not None
    return manager


def save_generations(shell: Any, count: int = 3) -> tuple[Path, int]:
    """Generations where ``a`` is 1..count (the last one twice: the final save when the
    extension unloads), the kernel then stopped. Returns the session dir and the newest number.
    Generation 2 holds a value large enough to be a blob."""
    for n in range(1, count + 1):
        big = f"b'{n}' * 100_000" if n == 2 else "None"
        run(shell, f"a = {n}\nbig = {big}")
        run(shell, "%session save")
    manager = manager_of(shell)
    sdir = manager.store.session_dir(manager.name)
    ipysession.unload_ipython_extension(shell)  # the kernel stops (with its final save)
    shell.reset(new_session=True)
    newest = max(int(p.name[4:-5]) for p in sdir.glob("gen-*.ipys"))
    return sdir, newest


def start(shell: Any) -> None:
    """The kernel starts again."""
    ipysession.load_ipython_extension(shell)


def gen(sdir: Path, number: int) -> Path:
    return sdir / f"gen-{number:08d}.ipys"


def payload(marker: Path) -> bytes:
    return pickle.dumps(_Touch(marker))


def damage(path: Path, how: str, marker: Path) -> None:
    data = path.read_bytes()
    if how == "truncated":
        path.write_bytes(data[: len(data) // 2])
    elif how == "bit-flipped":
        flipped = bytearray(data)
        flipped[len(data) // 2] ^= 0x10
        path.write_bytes(bytes(flipped))
    elif how == "zero-length":
        path.write_bytes(b"")
    elif how == "absurd-length":
        with open(path, "r+b") as f:  # a sparse file of a terabyte: never to be read
            f.truncate(1 << 40)
    elif how == "junk":
        path.write_bytes(os.urandom(len(data)))
    elif how == "junk-header":  # our magic, then random bytes: no "upgrade" for this
        path.write_bytes(fileformat.MAGIC + (44672).to_bytes(2, "big") + os.urandom(len(data)))
    elif how == "older-copy":  # generation 1, authentic, copied over the newest
        path.write_bytes(gen(path.parent, 1).read_bytes())
    elif how == "pickle":
        path.write_bytes(payload(marker))
    elif how == "forged-header":  # our magic, version and key id, then a pickle
        path.write_bytes(data[: fileformat.HEADER_SIZE] + payload(marker) + bytes(16))
    elif how == "newer-format":
        newer = bytearray(data)
        newer[8:10] = (fileformat.FORMAT_VERSION + 1).to_bytes(2, "big")
        path.write_bytes(bytes(newer))
    elif how == "wrong-key":
        other = MasterKey(b"another key entirely, 32 bytes!!", description="other")
        path.write_bytes(fileformat.encode_session({"name": "x"}, other))
    else:  # pragma: no cover
        raise AssertionError(how)


@pytest.mark.parametrize(
    ("how", "problem"),
    [
        ("truncated", "corrupt"),
        ("bit-flipped", "corrupt"),
        ("zero-length", "corrupt"),
        ("absurd-length", "corrupt"),
        ("junk", "corrupt"),
        ("junk-header", "corrupt"),
        ("older-copy", "corrupt"),
        ("pickle", "corrupt"),
        ("forged-header", "corrupt"),
        ("newer-format", "newer-format"),
        ("wrong-key", "wrong-key"),
    ],
)
def test_a_damaged_newest_generation_falls_back_to_the_newest_good_one(
    how: str, problem: str, shell: Any, shown: list[str], tmp_path: Path
) -> None:
    marker = tmp_path / "unpickled-before-authentication"
    sdir, newest = save_generations(shell)
    damage(gen(sdir, newest), how, marker)
    shown.clear()
    start(shell)
    assert shell.user_ns["a"] == 3  # from the newest good generation
    assert shell.user_ns["big"] is None
    manager = manager_of(shell)
    report = manager.last_restore
    assert report is not None
    assert report.generation == newest - 1
    assert len(report.problems) == 1
    assert report.problems[0].startswith(f"{problem}:")
    messages = [t for t in shown if "ipysession" in t]
    assert len(messages) == 1
    assert "Problems with session files (older generation used)" in messages[0]
    assert str(gen(sdir, newest)) in messages[0]
    # A corrupt file is moved to quarantine (kept); a valid foreign one stays where it is.
    assert gen(sdir, newest).exists() == (problem != "corrupt")
    run(shell, "%session restore --generation 2")
    assert shell.user_ns["big"] == b"2" * 100_000
    run(shell, "%session restore --generation 1")
    assert shell.user_ns["a"] == 1
    run(shell, "%session snapshots")
    run(shell, "a = 'after'")
    run(shell, "%session save")  # saving on top works, and reads back
    saved = manager.store.read(manager.name)
    assert saved.generation == manager.last_generation
    assert pickle.loads(saved.session.variables["a"].data or b"") == "after"
    assert not marker.exists()


def test_deleted_newest_generations_are_reported_in_the_restore_summary(
    shell: Any, shown: list[str]
) -> None:
    sdir, newest = save_generations(shell)
    gen(sdir, newest).unlink()
    gen(sdir, newest - 1).unlink()
    shown.clear()
    start(shell)
    report = manager_of(shell).last_restore
    assert report is not None
    assert report.generation == newest - 2
    [problem] = report.problems
    assert problem.startswith(f"rollback: Generation {newest} is the newest one written")
    messages = [t for t in shown if "ipysession" in t]
    assert len(messages) == 1
    assert f"generations {newest - 1}-{newest}" in messages[0]


def test_a_stored_value_replaced_by_a_pickle_fails_alone(
    shell: Any, shown: list[str], tmp_path: Path
) -> None:
    marker = tmp_path / "unpickled-before-authentication"
    sdir, _ = save_generations(shell, count=2)
    [blob] = list((sdir / "blobs").iterdir())
    blob.write_bytes(payload(marker))
    shown.clear()
    start(shell)
    assert shell.user_ns["a"] == 2
    assert "big" not in shell.user_ns
    report = manager_of(shell).last_restore
    assert report is not None
    assert [name for name, _ in report.skipped] == ["big"]
    assert not marker.exists()


def test_junk_in_the_session_dir_is_never_a_crash(
    shell: Any, shown: list[str], tmp_path: Path
) -> None:
    marker = tmp_path / "unpickled-before-authentication"
    sdir, newest = save_generations(shell, count=2)
    rng = random.Random(7)
    for i in range(20):  # random names and bytes, some named like session files
        name = (
            rng.choice(["", "gen-", "gen-0000009", ".tmp-", "x"])
            + f"{i}"
            + rng.choice(["", ".ipys", ".ipyb", ".json"])
        )
        (sdir / name).write_bytes(os.urandom(rng.randrange(0, 5000)))
    (sdir / "gen-00000050.ipys").mkdir()  # a directory named like a generation
    (sdir / "gen-00000051.ipys").symlink_to(tmp_path / "elsewhere")  # a dangling symlink
    os.mkfifo(sdir / "gen-00000052.ipys")  # a FIFO: reading it would block forever
    with open(sdir / "gen-00000053.ipys", "wb") as f:  # the newest: a terabyte, sparse
        f.truncate(1 << 40)
    (sdir / "gen-00000054.ipys").write_bytes(payload(marker))
    (sdir / "blobs" / "junk.ipyb").write_bytes(os.urandom(100))
    (sdir / "blobs" / f"{'A' * 43}.ipyb").write_bytes(payload(marker))
    (sdir / "checkpoints").mkdir()
    (sdir / "checkpoints" / "junk.ipys").write_bytes(payload(marker))
    (sdir / "lease.json").write_bytes(os.urandom(64))
    (sdir / "session.lock").write_bytes(b"not a lock")
    shown.clear()
    start(shell)
    assert shell.user_ns["a"] == 2
    assert shell.user_ns["big"] == b"2" * 100_000
    report = manager_of(shell).last_restore
    assert report is not None
    assert report.generation == newest
    assert {p.split(":")[0] for p in report.problems} == {"corrupt"}
    for command in ("status", "snapshots", "list", "show", "history"):
        run(shell, f"%session {command}")
    run(shell, "%session restore --generation 1")
    assert shell.user_ns["a"] == 1
    run(shell, "a = 3")
    run(shell, "%session save")
    manager = manager_of(shell)
    assert manager.store.read(manager.name).generation == manager.last_generation
    assert (sdir / "gen-00000050.ipys").is_dir()  # other people's things are left alone
    assert (sdir / "gen-00000051.ipys").is_symlink()
    assert not marker.exists()
    shutil.rmtree(sdir / "gen-00000050.ipys")


@pytest.mark.parametrize("how", ["wrong-key", "newer-format"])
@pytest.mark.parametrize("autorestore", ["always", "never"])
def test_a_session_this_kernel_cannot_read_is_left_untouched(
    how: str, autorestore: str, shell: Any, shown: list[str], tmp_path: Path
) -> None:
    sdir, _ = save_generations(shell, count=2)
    for path in sdir.glob("gen-*.ipys"):
        damage(path, how, tmp_path / "marker")
    if how == "wrong-key":  # a session sealed under another key holds its own name
        other = MasterKey(b"another key entirely, 32 bytes!!", description="other")
        for path in sdir.glob("gen-*.ipys"):
            path.write_bytes(fileformat.encode_session({"name": "cwd:" + os.getcwd()}, other))
    before = {p: p.read_bytes() for p in sdir.rglob("*") if p.is_file() and "lease" not in p.name}
    shown.clear()
    shell.config.SessionManager.autorestore = autorestore
    shell.config.SessionManager.autosave = True
    shell.config.SessionManager.autosave_interval = 0.05
    start(shell)
    manager = manager_of(shell)
    run(shell, "mine = 1")
    wait_for(lambda: manager.last_generation is not None, "saved somewhere")
    run(shell, "pass")  # notices from the writer thread show under the next cell
    assert manager.fork_of is not None
    assert manager.name.startswith(manager.fork_of + " (fork ")
    words = "different key" if how == "wrong-key" else "newer ipysession"
    notes = [t for t in shown if words in t or "another key" in t]
    assert len(notes) == 1, shown
    assert f"'{manager.name}'" in notes[0]
    after = {p: p.read_bytes() for p in sdir.rglob("*") if p.is_file() and "lease" not in p.name}
    assert after == before  # not one byte of the unreadable session changed
    assert manager.store.read(manager.name).session.variables.keys() >= {"mine"}
