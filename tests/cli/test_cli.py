"""The ``ipysession`` command line, on real stores under ``tmp_path`` (nothing of the store mocked).

Most tests call :func:`ipysession.cli.app.main` in-process with ``capsys``; a few run
``python -m ipysession`` for real. ``IPYSESSION_DIR`` / ``IPYSESSION_CONFIG_DIR`` point into
``tmp_path`` and keyring's ``fail`` backend is forced, so nothing touches the real home or keyring.
"""

from __future__ import annotations

import base64
import io
import json
import logging
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, get_args

import pytest

import ipysession.cli.app as cli
from ipysession.cli.app import EXIT_DATA, EXIT_OK, EXIT_USAGE, main
from ipysession.connections.records import make_record
from ipysession.keys import resolution as keystore
from ipysession.keys.crypto import MasterKey, PassphraseKey, new_master_key
from ipysession.model import (
    Session,
    VariableRecord,
)
from ipysession.store import SessionStore, fileformat
from ipysession.store.recent import RECENT_FILE, RecentConnections
from ipysession.store.retention import Retention
from tests import builders
from tests.builders import BIG, CONN_SECRET, ENV_SECRET

PASSPHRASE = "correct horse battery staple"


def make_session(name: str = "analysis", *, big: bool = True) -> Session:
    """The complete session of tests/builders.py, with a large value ``big`` stored as a blob."""
    return builders.make_session(name, big=BIG if big else None, complete=True)


# --- fixtures -----------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Path]]:
    dirs = {"root": tmp_path / "root", "config": tmp_path / "config"}
    monkeypatch.setenv("IPYSESSION_DIR", str(dirs["root"]))
    monkeypatch.setenv("IPYSESSION_CONFIG_DIR", str(dirs["config"]))
    monkeypatch.setenv("PYTHON_KEYRING_BACKEND", "keyring.backends.fail.Keyring")
    monkeypatch.delenv("IPYSESSION_PASSPHRASE", raising=False)
    monkeypatch.delenv("PW", raising=False)
    keystore.clear_key_cache()
    yield dirs
    keystore.clear_key_cache()


def local_store() -> SessionStore:
    """A store on $IPYSESSION_DIR with the key the CLI resolves (as a kernel would)."""
    return SessionStore(key=keystore.resolve_key().key)


@pytest.fixture
def saved(env: dict[str, Path]) -> Session:
    """A session with every field, saved twice (two generations) and with a checkpoint."""
    session = make_session()
    with local_store() as store:
        store.write(session)
        store.write(session)
        store.checkpoint(session.name, "before-refactor")
    return session


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def inline(store: SessionStore, session: Session) -> dict[str, Any]:
    """``to_dict()`` with blob references replaced by their bytes, to compare sessions."""
    variables = {}
    for name, record in session.variables.items():
        if record.blob is not None:
            data = store.read_blob(session.name, record.blob)
            record = VariableRecord(
                name,
                record.type_name,
                record.size,
                encoding=record.encoding,
                data=data,
                fingerprint=record.fingerprint,
                extra=record.extra,
            )
        variables[name] = record
    doc = session.to_dict()
    doc["variables"] = {n: r.to_dict() for n, r in variables.items()}
    return doc


def session_files(root: Path) -> list[Path]:
    return [p for p in (root / "sessions").rglob("*") if p.suffix in (".ipys", ".ipyb")]


def key_id_of(path: Path) -> str:
    return fileformat.read_header(path.read_bytes()).key_id.hex()


# --- parser, help, exit codes -------------------------------------------------------------------

COMMANDS = ["list", "show", "snapshots", "delete", "doctor", "export", "import", "rekey"]


def test_help_lists_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "--help")
    assert code == EXIT_OK
    for command in COMMANDS:
        assert command in out
    assert "exit codes" in out
    assert "IPYSESSION_DIR" in out


@pytest.mark.parametrize("command", COMMANDS)
def test_each_command_has_help(capsys: pytest.CaptureFixture[str], command: str) -> None:
    code, out, _ = run(capsys, command, "-h")
    assert code == EXIT_OK
    assert out.startswith(f"usage: ipysession {command}")


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    from ipysession import __version__

    code, out, _ = run(capsys, "--version")
    assert code == EXIT_OK
    assert out.strip() == f"ipysession {__version__}"


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["frobnicate"],
        ["show"],
        ["show", "a", "--generation", "two"],
        ["show", "a", "--generation", "1", "--checkpoint", "x"],
        ["export", "a", "out.ipys"],
        ["list", "--key-backend", "carrier-pigeon"],
    ],
)
def test_usage_errors_exit_1(capsys: pytest.CaptureFixture[str], argv: list[str]) -> None:
    code, out, err = run(capsys, *argv)
    assert code == EXIT_USAGE
    assert "usage: ipysession" in err
    assert "Traceback" not in err
    assert out == ""


def test_key_backend_choices_match_keystore() -> None:
    assert set(cli.KEY_BACKENDS) == set(get_args(keystore.BackendChoice))


def test_global_options_work_after_the_command(
    capsys: pytest.CaptureFixture[str], saved: Session, tmp_path: Path
) -> None:
    code, out, _ = run(capsys, "list", "--root", str(tmp_path / "elsewhere"))
    assert code == EXIT_OK
    assert "No saved sessions" in out
    code, out, _ = run(capsys, "--root", str(tmp_path / "root"), "list")
    assert code == EXIT_OK
    assert saved.name in out


def test_logging_handler_is_removed_after_main(
    capsys: pytest.CaptureFixture[str], saved: Session
) -> None:
    logger = logging.getLogger("ipysession")
    before = (list(logger.handlers), logger.level)
    assert run(capsys, "--debug", "list")[0] == EXIT_OK
    assert run(capsys, "show", "missing")[0] == EXIT_DATA
    assert (list(logger.handlers), logger.level) == before


# --- list ---------------------------------------------------------------------------------------


def test_list_empty_store_needs_no_key(
    capsys: pytest.CaptureFixture[str], env: dict[str, Path]
) -> None:
    code, out, _err = run(capsys, "list")
    assert code == EXIT_OK
    assert "No saved sessions" in out
    assert not (env["config"] / "master.key").exists()  # a read-only look creates no key
    code, out, _ = run(capsys, "list", "--json")
    assert code == EXIT_OK
    assert json.loads(out) == []


def test_list_text_and_json(capsys: pytest.CaptureFixture[str], saved: Session) -> None:
    with local_store() as store:
        store.write(make_session("second", big=False))
    code, out, _ = run(capsys, "list")
    assert code == EXIT_OK
    header = out.splitlines()[0].split()
    assert header == [
        "session",
        "updated",
        "size",
        "generations",
        "variables",
        "skipped",
        "connections",
        "state",
    ]
    row = next(line for line in out.splitlines() if line.startswith("analysis"))
    # generations, variables saved (x, big), skipped (fh), connections, state
    assert row.split()[-5:] == ["2", "2", "1", "2", "ok"]

    code, out, _ = run(capsys, "list", "--json")
    assert code == EXIT_OK
    rows = {r["name"]: r for r in json.loads(out)}
    assert set(rows) == {"analysis", "second"}
    first = rows["analysis"]
    assert (first["generations"], first["variables"], first["skipped"]) == (2, 2, 1)
    assert first["connections"] == 2
    assert first["state"] == "ok"
    assert first["problem"] is None
    sdir = Path(first["path"])
    newest = sorted(sdir.glob("gen-*.ipys"))[-1].stat().st_size
    blobs = sum(p.stat().st_size for p in sdir.glob("blobs/*.ipyb"))
    assert blobs > 0
    assert first["size_bytes"] == newest + blobs  # values (the blob) are counted
    assert first["updated"] == saved.updated


def test_list_marks_sessions_that_do_not_read(
    capsys: pytest.CaptureFixture[str], saved: Session, env: dict[str, Path]
) -> None:
    with SessionStore(key=MasterKey(new_master_key())) as other:
        other.write(make_session("foreign", big=False))
    code, out, _ = run(capsys, "list")
    assert code == EXIT_OK
    assert "wrong-key" in out
    assert "doctor" in out
    rows = json.loads(run(capsys, "list", "--json")[1])
    foreign = next(r for r in rows if r["name"] is None)
    assert foreign["state"] == "wrong-key"
    assert foreign["problem"]["kind"] == "wrong-key"


# --- show ---------------------------------------------------------------------------------------


def test_show_text(capsys: pytest.CaptureFixture[str], saved: Session) -> None:
    code, out, err = run(capsys, "show", "analysis")
    assert code == EXIT_OK, err
    assert "generation 2" in out
    assert "ipysession 0.1.0, IPython 8.20.0, Python 3.11.7" in out
    assert "kernel kernel-abcdef123456" in out
    assert "/home/ada/project" in out
    assert "2 cells" in out
    assert "saved (blob)" in out
    assert "saved (inline)" in out
    assert "skipped: open file handles are not saved" in out
    assert "import numpy as np" in out
    assert "from os import path as p" in out
    assert "%autoreload 2" in out
    assert "%precision 3" in out
    assert "API_TOKEN=***" in out
    assert "password=***" in out
    assert "postgresql://ada@db.example/prod" in out
    assert "3 successes, 1 failure" in out
    assert "last error  timeout" in out
    assert "no auto-reconnect" in out
    # most recently used connection first
    assert out.index("db [sqlalchemy]") < out.index("old [jupyter]")
    assert CONN_SECRET not in out + err
    assert ENV_SECRET not in out + err


def test_show_json(capsys: pytest.CaptureFixture[str], saved: Session) -> None:
    code, out, _ = run(capsys, "show", "analysis", "--json")
    assert code == EXIT_OK
    doc = json.loads(out)
    assert doc["name"] == "analysis"
    assert doc["generation"] == 2
    assert doc["history"] == {"cells": 2}
    assert doc["writer"]["host"] == "lab"
    variables = {v["name"]: v for v in doc["variables"]}
    assert variables["big"]["stored"] == "blob"
    assert variables["big"]["size"] == len(BIG)
    assert variables["fh"] == {
        "name": "fh",
        "type": "TextIOWrapper",
        "size": 0,
        "state": "skipped",
        "stored": None,
        "encoding": None,
        "skipped": "open file handles are not saved",
    }
    assert [i["statement"] for i in doc["imports"]] == [
        "import numpy as np",
        "from os import path as p",
    ]
    assert doc["preferences"]["env"] == {"API_TOKEN": "***"}
    assert [c["name"] for c in doc["connections"]] == ["db", "old"]
    db = doc["connections"][0]
    assert db["secrets"] == {"password": "***"}
    assert db["params"] == {"url": "postgresql://ada@db.example/prod"}
    assert db["stats"]["successes"] == 3
    assert doc["problems"] == []
    assert "future_field" not in out  # unknown fields are kept in the file, not shown
    assert CONN_SECRET not in out
    assert ENV_SECRET not in out


def test_show_generation_and_checkpoint(capsys: pytest.CaptureFixture[str], saved: Session) -> None:
    code, out, _ = run(capsys, "show", "analysis", "--generation", "1")
    assert code == EXIT_OK
    assert "generation 1" in out
    code, out, _ = run(capsys, "show", "analysis", "--checkpoint", "before-refactor")
    assert code == EXIT_OK
    assert "checkpoint 'before-refactor'" in out
    code, _, err = run(capsys, "show", "analysis", "--generation", "9")
    assert code == EXIT_DATA
    assert "no generation 9" in err


def test_show_not_found_exit_2_without_traceback(
    capsys: pytest.CaptureFixture[str], saved: Session
) -> None:
    code, out, err = run(capsys, "show", "nope")
    assert code == EXIT_DATA
    assert out == ""
    assert "No session named 'nope'" in err
    assert "ipysession list" in err  # the fix
    assert "Traceback" not in err


def test_show_skips_a_corrupt_newest_generation(
    capsys: pytest.CaptureFixture[str], saved: Session, env: dict[str, Path]
) -> None:
    newest = sorted((env["root"] / "sessions").glob("*/gen-*.ipys"))[-1]
    data = bytearray(newest.read_bytes())
    data[-1] ^= 0xFF
    newest.write_bytes(bytes(data))
    code, out, err = run(capsys, "show", "analysis", "--json")
    assert code == EXIT_OK
    doc = json.loads(out)
    assert doc["generation"] == 1
    assert doc["problems"][0]["kind"] == "corrupt"
    assert str(newest) in err


def test_show_wrong_key_and_newer_format_exit_2(
    capsys: pytest.CaptureFixture[str], saved: Session, env: dict[str, Path]
) -> None:
    with SessionStore(key=MasterKey(new_master_key())) as other:
        other.write(make_session("foreign", big=False))
    code, _, err = run(capsys, "show", "foreign")
    assert code == EXIT_DATA
    assert "different key" in err
    assert "ipysession doctor" in err

    for gen in (env["root"] / "sessions").glob("analysis-*/gen-*.ipys"):
        data = bytearray(gen.read_bytes())
        # The next format version: only a version a newer release could have written asks for
        # an upgrade (anything else in that field is damage).
        data[8:10] = (fileformat.FORMAT_VERSION + 1).to_bytes(2, "big")
        gen.write_bytes(bytes(data))
    code, _, err = run(capsys, "show", "analysis")
    assert code == EXIT_DATA
    assert f"version {fileformat.FORMAT_VERSION + 1}" in err
    assert "pip install -U ipysession" in err


def test_key_unavailable_exit_2(capsys: pytest.CaptureFixture[str], saved: Session) -> None:
    code, _, err = run(capsys, "--key-backend", "passphrase", "show", "analysis")
    assert code == EXIT_DATA
    assert "IPYSESSION_PASSPHRASE" in err
    assert "Traceback" not in err


# --- delete -------------------------------------------------------------------------------------


class FakeTTY(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_delete_with_yes(capsys: pytest.CaptureFixture[str], saved: Session) -> None:
    code, out, _ = run(capsys, "delete", "analysis", "--yes")
    assert code == EXIT_OK
    assert "Deleted session 'analysis'" in out
    with local_store() as store:
        assert not store.exists("analysis")


def test_delete_without_tty_needs_yes(
    capsys: pytest.CaptureFixture[str], saved: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO("y\n"))
    code, _out, err = run(capsys, "delete", "analysis")
    assert code == EXIT_USAGE
    assert "--yes" in err
    with local_store() as store:
        assert store.exists("analysis")


@pytest.mark.parametrize(
    ("answer", "deleted"), [("y\n", True), ("yes\n", True), ("n\n", False), ("\n", False)]
)
def test_delete_asks_on_a_tty(
    capsys: pytest.CaptureFixture[str],
    saved: Session,
    monkeypatch: pytest.MonkeyPatch,
    answer: str,
    deleted: bool,
) -> None:
    monkeypatch.setattr(sys, "stdin", FakeTTY(answer))
    code, out, err = run(capsys, "delete", "analysis")
    assert code == EXIT_OK
    assert "[y/N]" in err
    assert ("Nothing deleted" in out) is not deleted
    with local_store() as store:
        assert store.exists("analysis") is not deleted


def test_delete_missing_exit_2(capsys: pytest.CaptureFixture[str], saved: Session) -> None:
    code, _, err = run(capsys, "delete", "nope", "--yes")
    assert code == EXIT_DATA
    assert "No session named 'nope'" in err


# --- snapshots ----------------------------------------------------------------------------------


def test_snapshots(capsys: pytest.CaptureFixture[str], saved: Session) -> None:
    code, out, _ = run(capsys, "snapshots", "analysis")
    assert code == EXIT_OK
    lines = out.splitlines()
    assert lines[0].split()[:4] == ["snapshot", "time", "size", "cells"]
    assert "generation 2" in lines[2]  # newest first
    assert "generation 1" in lines[3]
    assert "checkpoint before-refactor" in out
    assert "lab pid 4242, kernel kernel-a" in out

    code, out, _ = run(capsys, "snapshots", "analysis", "--json")
    assert code == EXIT_OK
    records = json.loads(out)
    assert [r["generation"] for r in records] == [2, 1, None]
    assert records[2]["checkpoint"] == "before-refactor"
    assert all(r["state"] == "ok" and r["cells"] == 2 for r in records)
    assert all((r["variables"], r["skipped"]) == (2, 1) for r in records)
    assert records[0]["writer_kernel_id"] == "kernel-abcdef123456"
    assert (records[0]["writer_host"], records[0]["writer_pid"]) == ("lab", 4242)

    code, _, _err = run(capsys, "snapshots", "nope")
    assert code == EXIT_DATA


# --- doctor -------------------------------------------------------------------------------------


def test_doctor_all_well(
    capsys: pytest.CaptureFixture[str], saved: Session, env: dict[str, Path]
) -> None:
    code, out, err = run(capsys, "doctor")
    assert code == EXIT_OK, out + err
    assert "key          file: no OS keyring available" in out
    assert str(env["config"] / "master.key") in out
    assert "Everything is in order." in out
    code, out, _ = run(capsys, "doctor", "--json")
    assert code == EXIT_OK
    report = json.loads(out)
    assert report["ok"] is True
    assert report["key"]["backend"] == "file"
    assert report["key"]["reason"]
    assert report["key"]["location"] == str(env["config"] / "master.key")
    assert report["key"]["key_file"]["state"] == "ok"
    assert report["paths"]["root dir"]["state"] == "ok"
    assert report["paths"]["config dir"]["mode"] == "0700"
    kinds = sorted(f["kind"] for f in report["sessions"][0]["files"])
    assert kinds == ["blob", "checkpoint", "generation", "generation", "head"]
    assert report["summary"]["files"] == {"ok": 5}  # with the head record


def test_doctor_reports_corrupt_and_wrong_key_and_repair_quarantines_the_corrupt_one(
    capsys: pytest.CaptureFixture[str], saved: Session, env: dict[str, Path]
) -> None:
    root = env["root"]
    with SessionStore(key=MasterKey(new_master_key())) as other:
        other.write(make_session("foreign", big=False))
    corrupt = sorted(root.glob("sessions/analysis-*/gen-*.ipys"))[-1]
    data = bytearray(corrupt.read_bytes())
    data[60] ^= 0x01
    corrupt.write_bytes(bytes(data))
    wrong = next(root.glob("sessions/foreign-*/gen-*.ipys"))
    # a stale temp file and an orphan blob, both older than the grace period
    sdir = corrupt.parent
    stale = sdir / ".tmp-gen-00000009.ipys.123.abcd"
    stale.write_bytes(b"half a write")
    orphan_value = b"orphan" * 20_000
    with local_store() as store:
        orphan_store = SessionStore(key=store.key, retention=Retention((), keep=1))
        tmp = make_session("orphaned", big=False)
        tmp.variables["v"] = VariableRecord(
            "v", "bytes", len(orphan_value), encoding="pickle", data=orphan_value
        )
        orphan_store.write(tmp)
        del tmp.variables["v"]
        orphan_store.write(tmp)
    orphan = next(root.glob("sessions/orphaned-*/blobs/*.ipyb"))
    old = time.time() - 3600
    for path in (stale, orphan):
        os.utime(path, (old, old))

    code, out, err = run(capsys, "doctor")
    assert code == EXIT_DATA
    assert "CORRUPT" in out
    assert "WRONG-KEY" in out
    assert str(corrupt) in out  # the to-do list names the file ...
    assert "doctor --repair" in out  # ... and the fix
    assert str(wrong) in out
    assert "doctor found" in err
    assert corrupt.exists()  # doctor alone changes nothing

    code, out, _ = run(capsys, "doctor", "--json")
    assert code == EXIT_DATA
    report = json.loads(out)
    assert report["ok"] is False
    states = {f["path"]: f["state"] for s in report["sessions"] for f in s["files"]}
    assert states[str(corrupt)] == "corrupt"
    assert states[str(wrong)] == "wrong-key"
    assert report["summary"]["files"]["corrupt"] == 1

    code, out, err = run(capsys, "doctor", "--repair", "--json")
    report = json.loads(out)
    assert not corrupt.exists()
    quarantined = [Path(p["quarantined_to"]) for p in report["repair"]["quarantined"]]
    assert len(quarantined) == 1
    assert quarantined[0].is_relative_to(root / "quarantine")
    assert quarantined[0].exists()
    assert report["quarantine"]["files"] == 1
    # The foreign session's generation and head record are both under the other key.
    wrong_head = wrong.parent / "head.ipys"
    assert [p["path"] for p in report["repair"]["left_in_place"]] == [str(wrong), str(wrong_head)]
    assert wrong.exists()
    assert str(stale) in report["repair"]["temp_files_removed"]
    assert not stale.exists()
    assert str(orphan) in report["repair"]["blobs_removed"]
    assert not orphan.exists()
    # the wrong-key file is still a problem for the user to resolve; the corrupt one is not
    assert code == EXIT_DATA
    assert len(report["problems"]) == 2
    assert str(wrong) in report["problems"][0]
    assert str(wrong_head) in report["problems"][1]

    code, out, _ = run(capsys, "doctor", "--repair")
    assert "left in place (wrong-key)" in out
    assert "quarantined    1 file" in out


@pytest.mark.parametrize("where", ["trailer", "body"])
def test_doctor_reports_a_tampered_version_4_blob_as_corrupt(
    capsys: pytest.CaptureFixture[str], saved: Session, env: dict[str, Path], where: str
) -> None:
    [blob] = env["root"].glob("sessions/analysis-*/blobs/*.ipyb")
    data = bytearray(blob.read_bytes())
    assert fileformat.read_header(bytes(data)).version == 4
    # The id trailer is the 32 bytes before the 16-byte tag; the body starts after the header.
    offset = len(data) - 16 - 32 + 5 if where == "trailer" else fileformat.HEADER_SIZE + 5
    data[offset] ^= 0x01
    blob.write_bytes(bytes(data))

    code, out, _ = run(capsys, "doctor", "--json")
    assert code == EXIT_DATA
    states = {f["path"]: f["state"] for s in json.loads(out)["sessions"] for f in s["files"]}
    assert states[str(blob)] == "corrupt"
    assert [path for path, state in states.items() if state != "ok"] == [str(blob)]

    code, out, _ = run(capsys, "doctor", "--repair", "--json")
    [moved] = json.loads(out)["repair"]["quarantined"]
    assert moved["path"] == str(blob)
    assert not blob.exists()
    assert Path(moved["quarantined_to"]).read_bytes() == bytes(data)  # kept, as it was


def test_doctor_reports_deleted_newest_generations_as_a_rollback(
    capsys: pytest.CaptureFixture[str], saved: Session, env: dict[str, Path]
) -> None:
    newest = sorted(env["root"].glob("sessions/analysis-*/gen-*.ipys"))[-1]
    newest.unlink()
    code, out, _ = run(capsys, "doctor")
    assert code == EXIT_DATA
    assert "ROLLBACK: Generation 2 is the newest one written" in out
    report = json.loads(run(capsys, "doctor", "--json")[1])
    [session] = report["sessions"]
    assert "generation 2 is not in" in session["rollback"]
    assert any("rollback" in problem for problem in report["problems"])


def test_doctor_flags_open_permissions(
    capsys: pytest.CaptureFixture[str], saved: Session, env: dict[str, Path]
) -> None:
    if os.name != "posix":
        pytest.skip("permissions are POSIX")
    env["root"].chmod(0o755)
    code, out, _ = run(capsys, "doctor")
    assert code == EXIT_DATA
    assert "too open (0755)" in out
    assert f"chmod 700 {env['root']}" in out


def test_doctor_with_key_unavailable(capsys: pytest.CaptureFixture[str], saved: Session) -> None:
    code, out, _ = run(capsys, "--key-backend", "passphrase", "doctor")
    assert code == EXIT_DATA
    assert "UNAVAILABLE" in out
    assert "not checked" in out
    report = json.loads(run(capsys, "--key-backend", "passphrase", "doctor", "--json")[1])
    assert report["key"]["state"] == "unavailable"
    assert report["sessions"] == []


def test_doctor_reports_a_directory_that_is_not_a_session(
    capsys: pytest.CaptureFixture[str], saved: Session, env: dict[str, Path]
) -> None:
    (env["root"] / "sessions" / "junk").mkdir()
    code, out, _ = run(capsys, "doctor")
    assert code == EXIT_DATA
    assert "not a session directory" in out


# --- export / import ----------------------------------------------------------------------------


def test_export_import_round_trip_under_another_root(
    capsys: pytest.CaptureFixture[str],
    saved: Session,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    exported = tmp_path / "moving" / "analysis.ipys"
    exported.parent.mkdir()
    monkeypatch.setenv("PW", PASSPHRASE)
    code, out, err = run(capsys, "export", "analysis", str(exported), "--passphrase-env", "PW")
    assert code == EXIT_OK, err
    assert "3 variables" not in out  # 2 saved, 1 skipped
    assert "2 variables" in out
    assert PASSPHRASE not in out + err
    if os.name == "posix":
        assert exported.stat().st_mode & 0o777 == 0o600

    # one self-contained file: values inline, no blob references; sealed with the passphrase
    doc = fileformat.decode_session(exported.read_bytes(), PassphraseKey(PASSPHRASE))
    assert fileformat.read_header(exported.read_bytes()).uses_passphrase
    assert all("blob" not in v for v in doc["variables"].values())
    assert CONN_SECRET.encode() not in exported.read_bytes()

    # another machine: another root, another config dir, another master key
    monkeypatch.setenv("IPYSESSION_DIR", str(tmp_path / "root2"))
    monkeypatch.setenv("IPYSESSION_CONFIG_DIR", str(tmp_path / "config2"))
    keystore.clear_key_cache()
    code, out, err = run(capsys, "import", str(exported), "--passphrase-env", "PW")
    assert code == EXIT_OK, err
    assert "as a new session 'analysis'" in out
    code, out, err = run(
        capsys, "import", str(exported), "--passphrase-env", "PW", "--name", "copy"
    )
    assert code == EXIT_OK, err

    with local_store() as store:
        assert store.root == tmp_path / "root2"
        for name in ("analysis", "copy"):
            back = store.read(name).session
            assert back.variables["big"].blob is not None  # re-externalized under the new key
            expected = saved.to_dict()
            expected["name"] = name
            assert inline(store, back) == expected
        header = fileformat.read_header(store.read("analysis").path.read_bytes())
        assert not header.uses_passphrase
        assert header.key_id.hex() == store.key.key_id_hex  # type: ignore[attr-defined]


def test_export_import_keeps_groups_and_out_of_band_buffers(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import numpy as np

    from ipysession.capture.namespace import capture_group, restore_group

    big = np.random.default_rng(4).random(50_000)
    values = {"big": big, "view": big[10:20], "alias": big}
    records = capture_group(values, views_of={id(big)})
    assert records is not None
    with local_store() as store:
        store.write(Session(name="arrays", variables=records))
        stored = store.read("arrays").session.variables["alias"]  # the first name holds it
        assert [b.blob is not None for b in stored.buffers] == [True]
    exported = tmp_path / "arrays.ipys"
    monkeypatch.setenv("PW", PASSPHRASE)
    code, _, err = run(capsys, "export", "arrays", str(exported), "--passphrase-env", "PW")
    assert code == EXIT_OK, err
    doc = fileformat.decode_session(exported.read_bytes(), PassphraseKey(PASSPHRASE))
    assert all("blob" not in b for b in doc["variables"]["alias"]["buffers"])  # inline
    monkeypatch.setenv("IPYSESSION_DIR", str(tmp_path / "root2"))
    monkeypatch.setenv("IPYSESSION_CONFIG_DIR", str(tmp_path / "config2"))
    keystore.clear_key_cache()
    code, _, err = run(capsys, "import", str(exported), "--passphrase-env", "PW")
    assert code == EXIT_OK, err
    with local_store() as store:
        back = store.read("arrays").session.variables
        holder = back["alias"]
        assert (holder.members, back["view"].group, back["big"].group) == (
            ("alias", "big", "view"),
            "alias",
            "alias",
        )
        (buffer,) = holder.buffers
        assert buffer.blob is not None  # re-externalized under the new key
        assert holder.data is not None
        restored = restore_group(
            holder, holder.data, buffers=[store.read_blob("arrays", buffer.blob)]
        )
    np.testing.assert_array_equal(restored["big"], big)
    assert restored["alias"] is restored["big"]
    assert restored["view"].base is restored["big"]


def test_import_refuses_to_overwrite_without_force(
    capsys: pytest.CaptureFixture[str],
    saved: Session,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PW", PASSPHRASE)
    exported = tmp_path / "a.ipys"
    assert run(capsys, "export", "analysis", str(exported), "--passphrase-env", "PW")[0] == EXIT_OK
    code, _, err = run(capsys, "import", str(exported), "--passphrase-env", "PW")
    assert code == EXIT_USAGE
    assert "already exists" in err
    assert "--force" in err
    code, out, _ = run(capsys, "import", str(exported), "--passphrase-env", "PW", "--force")
    assert code == EXIT_OK
    assert "newest generation of the existing session" in out
    with local_store() as store:
        assert [g.number for g in store.generations("analysis")] == [3, 2, 1]


def test_export_refuses_to_overwrite_without_force(
    capsys: pytest.CaptureFixture[str],
    saved: Session,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PW", PASSPHRASE)
    target = tmp_path / "a.ipys"
    target.write_bytes(b"precious")
    code, _, err = run(capsys, "export", "analysis", str(target), "--passphrase-env", "PW")
    assert code == EXIT_USAGE
    assert "--force" in err
    assert target.read_bytes() == b"precious"
    code, _, _ = run(capsys, "export", "analysis", str(target), "--passphrase-env", "PW", "--force")
    assert code == EXIT_OK
    assert target.read_bytes() != b"precious"
    code, _, err = run(
        capsys, "export", "analysis", str(tmp_path), "--passphrase-env", "PW", "--force"
    )
    assert code == EXIT_USAGE
    assert "directory" in err


@pytest.mark.parametrize("value", [None, "", "   "])
@pytest.mark.parametrize("command", ["export", "import"])
def test_missing_or_empty_passphrase_is_refused(
    capsys: pytest.CaptureFixture[str],
    saved: Session,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    value: str | None,
    command: str,
) -> None:
    if value is not None:
        monkeypatch.setenv("PW", value)
    argv = ["export", "analysis"] if command == "export" else ["import"]
    code, _out, err = run(capsys, *argv, str(tmp_path / "x.ipys"), "--passphrase-env", "PW")
    assert code == EXIT_USAGE
    assert "environment variable PW is" in err
    assert ("not set" in err) is (value is None)
    assert not (tmp_path / "x.ipys").exists()


def test_import_wrong_passphrase_and_bad_files(
    capsys: pytest.CaptureFixture[str],
    saved: Session,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PW", PASSPHRASE)
    exported = tmp_path / "a.ipys"
    assert run(capsys, "export", "analysis", str(exported), "--passphrase-env", "PW")[0] == EXIT_OK

    monkeypatch.setenv("PW", "not the passphrase")
    code, _, err = run(capsys, "import", str(exported), "--passphrase-env", "PW", "--name", "n")
    assert code == EXIT_DATA
    assert "passphrase does not open this file" in err
    assert str(exported) in err
    assert "not the passphrase" not in err

    code, _, err = run(capsys, "import", str(tmp_path / "missing.ipys"), "--passphrase-env", "PW")
    assert code == EXIT_DATA
    assert "missing.ipys" in err

    generation = next((tmp_path / "root").glob("sessions/analysis-*/gen-*.ipys"))
    code, _, err = run(capsys, "import", str(generation), "--passphrase-env", "PW")
    assert code == EXIT_DATA
    assert "not an export" in err

    junk = tmp_path / "junk.ipys"
    junk.write_bytes(b"this is not a session at all, not even close" * 3)
    code, _, err = run(capsys, "import", str(junk), "--passphrase-env", "PW")
    assert code == EXIT_DATA
    assert "junk.ipys" in err
    assert "Traceback" not in err


def test_export_missing_session_exit_2(
    capsys: pytest.CaptureFixture[str],
    saved: Session,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PW", PASSPHRASE)
    code, _, err = run(capsys, "export", "nope", str(tmp_path / "x.ipys"), "--passphrase-env", "PW")
    assert code == EXIT_DATA
    assert "No session named 'nope'" in err


def test_export_marks_an_unreadable_value_as_skipped(
    capsys: pytest.CaptureFixture[str],
    saved: Session,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    env: dict[str, Path],
) -> None:
    for blob in env["root"].glob("sessions/analysis-*/blobs/*.ipyb"):
        blob.unlink()
    monkeypatch.setenv("PW", PASSPHRASE)
    target = tmp_path / "a.ipys"
    code, _, err = run(capsys, "export", "analysis", str(target), "--passphrase-env", "PW")
    assert code == EXIT_OK
    assert "variable 'big' is not exported" in err
    doc = fileformat.decode_session(target.read_bytes(), PassphraseKey(PASSPHRASE))
    assert doc["variables"]["big"]["skipped"].startswith("not exported")
    assert doc["variables"]["x"]["data"]


# --- rekey --------------------------------------------------------------------------------------


def test_rekey_reencrypts_everything(
    capsys: pytest.CaptureFixture[str], saved: Session, env: dict[str, Path]
) -> None:
    with local_store() as store:
        before = inline(store, store.read("analysis").session)
    old_id = keystore.resolve_key().key.key_id_hex  # type: ignore[attr-defined]
    key_file = json.loads((env["config"] / "master.key").read_text())
    old_key = MasterKey(base64.b64decode(key_file["key"]))
    assert old_key.key_id_hex == old_id
    files = session_files(env["root"])
    assert {key_id_of(p) for p in files} == {old_id}

    code, out, err = run(capsys, "rekey")
    assert code == EXIT_OK, err
    assert "Re-encrypted 1 session: 3 session files, 1 blob" in out
    assert old_id in out

    keystore.clear_key_cache()
    new_key = keystore.resolve_key().key
    assert new_key.key_id_hex != old_id  # type: ignore[attr-defined]
    marker = json.loads((env["config"] / "key-location.json").read_text())
    assert marker["key_id"] == new_key.key_id_hex  # type: ignore[attr-defined]
    assert marker["pending_key_id"] is None
    assert {key_id_of(p) for p in session_files(env["root"])} == {new_key.key_id_hex}  # type: ignore[attr-defined]
    with local_store() as store:
        assert inline(store, store.read("analysis").session) == before
        assert store.read("analysis", checkpoint="before-refactor").session.name == "analysis"
    assert run(capsys, "doctor")[0] == EXIT_OK
    assert run(capsys, "show", "analysis")[0] == EXIT_OK
    # the old key opens nothing any more, and is gone from the key file
    with SessionStore(key=old_key) as with_old_key:
        for path in session_files(env["root"]):
            problem = with_old_key.inspect(path)
            assert problem is not None
            assert problem.kind == "wrong-key"
    assert old_id not in (env["config"] / "master.key").read_text()


def test_rekey_reseals_the_recent_connections_list(
    capsys: pytest.CaptureFixture[str], saved: Session, env: dict[str, Path]
) -> None:
    old_key = keystore.resolve_key().key
    with local_store() as store:
        recent = store.recent_connections()
    db = make_record("db", "sqlalchemy", f"postgresql://bob:{CONN_SECRET}@h/sales")
    recent.remember(make_record("lite", "sqlalchemy", "sqlite:///x.db"))
    recent.remember(db)

    code, out, err = run(capsys, "rekey")
    assert code == EXIT_OK, err
    assert "Re-encrypted the recent-connections list (2 connections)." in out

    keystore.clear_key_cache()
    new_key = keystore.resolve_key().key
    assert key_id_of(env["root"] / RECENT_FILE) == new_key.key_id_hex  # type: ignore[attr-defined]
    records = RecentConnections(env["root"], new_key).records()
    assert [r.name for r in records] == ["db", "lite"]
    assert records[0].secrets == db.secrets
    assert RecentConnections(env["root"], old_key).records() == []
    assert CONN_SECRET.encode() not in (env["root"] / RECENT_FILE).read_bytes()


def test_rekey_leaves_an_unreadable_recent_list_as_it_is_and_still_replaces_the_key(
    capsys: pytest.CaptureFixture[str], saved: Session, env: dict[str, Path]
) -> None:
    lost = MasterKey(b"a key rekey never knew, 32 bytes")
    RecentConnections(env["root"], lost).remember(make_record("db", "factory", "m:f"))
    before = (env["root"] / RECENT_FILE).read_bytes()

    code, out, err = run(capsys, "rekey")
    assert code == EXIT_OK, err
    assert "the recent-connections list could not be re-encrypted" in err
    assert "Re-encrypted the recent-connections list" not in out
    assert "the old key" in out
    assert "is gone" in out
    assert (env["root"] / RECENT_FILE).read_bytes() == before


def test_rekey_interrupted_then_resumed(
    capsys: pytest.CaptureFixture[str],
    saved: Session,
    env: dict[str, Path],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from ipysession.errors import StoreWriteError

    old_id = keystore.resolve_key().key.key_id_hex  # type: ignore[attr-defined]

    def crash(self: SessionStore, new_key: Any) -> None:
        msg = "No space left on device"
        raise StoreWriteError(msg, path=self.root, hint="Free some space")

    with monkeypatch.context() as patch:
        patch.setattr(SessionStore, "rekey", crash)
        code, _, err = run(capsys, "rekey")
    assert code == EXIT_DATA
    assert "No space left" in err
    marker = json.loads((env["config"] / "key-location.json").read_text())
    assert marker["key_id"] == old_id
    assert marker["pending_key_id"] is not None
    # everything still reads while the rotation is pending
    assert run(capsys, "show", "analysis")[0] == EXIT_OK

    keystore.clear_key_cache()
    code, _out, _ = run(capsys, "rekey")
    assert code == EXIT_OK
    marker = json.loads((env["config"] / "key-location.json").read_text())
    assert marker["pending_key_id"] is None
    assert old_id not in {key_id_of(p) for p in session_files(env["root"])}
    assert run(capsys, "show", "analysis")[0] == EXIT_OK


def test_rekey_keeps_the_old_key_while_a_file_cannot_be_read(
    capsys: pytest.CaptureFixture[str], saved: Session, env: dict[str, Path]
) -> None:
    newest = sorted(env["root"].glob("sessions/analysis-*/gen-*.ipys"))[-1]
    data = bytearray(newest.read_bytes())
    data[8:10] = (7).to_bytes(2, "big")
    newest.write_bytes(bytes(data))
    code, _, err = run(capsys, "rekey")
    assert code == EXIT_DATA
    assert "old key is kept" in err
    assert str(newest) in err
    marker = json.loads((env["config"] / "key-location.json").read_text())
    assert marker["pending_key_id"] is not None


def test_rekey_refuses_a_passphrase(
    capsys: pytest.CaptureFixture[str], saved: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("IPYSESSION_PASSPHRASE", PASSPHRASE)
    code, _, err = run(capsys, "rekey")
    assert code == EXIT_DATA
    assert "passphrase key cannot be rotated" in err
    assert PASSPHRASE not in err


# --- secrets never printed ----------------------------------------------------------------------


def test_secrets_never_printed_or_logged(
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
    saved: Session,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    caplog.set_level(logging.DEBUG, logger="ipysession")
    monkeypatch.setenv("PW", PASSPHRASE)
    with SessionStore(key=MasterKey(new_master_key())) as other:
        other.write(make_session("foreign"))
    outputs = []
    for expected, argv in (
        (EXIT_OK, ["list"]),
        (EXIT_OK, ["list", "--json"]),
        (EXIT_OK, ["show", "analysis"]),
        (EXIT_OK, ["show", "analysis", "--json"]),
        (EXIT_DATA, ["show", "foreign"]),
        (EXIT_OK, ["snapshots", "analysis", "--json"]),
        (EXIT_DATA, ["doctor"]),
        (EXIT_DATA, ["doctor", "--json"]),
        (EXIT_OK, ["export", "analysis", str(tmp_path / "e.ipys"), "--passphrase-env", "PW"]),
        (EXIT_OK, ["import", str(tmp_path / "e.ipys"), "--passphrase-env", "PW", "--name", "c"]),
        (EXIT_OK, ["show", "c", "--json"]),
        (EXIT_OK, ["rekey"]),
        (EXIT_OK, ["show", "analysis"]),
    ):
        code, out, err = run(capsys, "--debug", *argv)
        assert code == expected, (argv, err)
        outputs.append(out + err)
    logged = "\n".join(
        [r.getMessage() for r in caplog.records] + [str(r.exc_info) for r in caplog.records]
    )
    everything = "\n".join(outputs) + logged
    for secret in (CONN_SECRET, ENV_SECRET, PASSPHRASE):
        assert secret not in everything
    assert "***" in everything


# --- errors at the boundary ---------------------------------------------------------------------


def test_unexpected_error_is_one_line_unless_debug(
    capsys: pytest.CaptureFixture[str], saved: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    def boom(self: SessionStore) -> list[Any]:
        msg = "something broke\nsecond line"
        raise RuntimeError(msg)

    monkeypatch.setattr(SessionStore, "list", boom)
    code, _out, err = run(capsys, "list")
    assert code == EXIT_DATA
    assert err.strip() == (
        "ipysession: unexpected error: RuntimeError: something broke (run with --debug for details)"
    )
    assert "Traceback" not in err
    code, _, err = run(capsys, "--debug", "list")
    assert code == EXIT_DATA
    assert "Traceback" in err
    assert "RuntimeError: something broke" in err


def test_session_error_traceback_only_with_debug(
    capsys: pytest.CaptureFixture[str], saved: Session
) -> None:
    code, _, err = run(capsys, "show", "nope")
    assert code == EXIT_DATA
    assert "Traceback" not in err
    code, _, err = run(capsys, "show", "nope", "--debug")
    assert code == EXIT_DATA
    assert "Traceback" in err
    assert err.rstrip().splitlines()[-1].startswith("ipysession: error: No session named 'nope'")


# --- real processes -----------------------------------------------------------------------------


def subprocess_env(env: dict[str, Path]) -> dict[str, str]:
    child = {k: v for k, v in os.environ.items() if k != "IPYSESSION_PASSPHRASE"}
    child.update(
        IPYSESSION_DIR=str(env["root"]),
        IPYSESSION_CONFIG_DIR=str(env["config"]),
        PYTHON_KEYRING_BACKEND="keyring.backends.fail.Keyring",
    )
    return child


def test_python_m_ipysession_list(saved: Session, env: dict[str, Path]) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "ipysession", "list", "--json"],
        env=subprocess_env(env),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == EXIT_OK, result.stderr
    assert [row["name"] for row in json.loads(result.stdout)] == ["analysis"]

    result = subprocess.run(
        [sys.executable, "-m", "ipysession", "show", "nope"],
        env=subprocess_env(env),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == EXIT_DATA
    assert "No session named 'nope'" in result.stderr
    assert "Traceback" not in result.stderr

    result = subprocess.run(
        [sys.executable, "-m", "ipysession", "--no-such-option"],
        env=subprocess_env(env),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == EXIT_USAGE


def test_cli_never_imports_ipython(saved: Session, env: dict[str, Path], tmp_path: Path) -> None:
    script = f"""
import json, os, sys
from ipysession.cli.app import main
os.environ["PW"] = "pw"
codes = [main(argv) for argv in (
    ["list"], ["show", "analysis", "--json"], ["snapshots", "analysis"], ["doctor"],
    ["export", "analysis", {str(tmp_path / "x.ipys")!r}, "--passphrase-env", "PW"],
)]
loaded = sorted(m for m in sys.modules if m.split(".")[0] in ("IPython", "traitlets", "ipykernel"))
print(json.dumps({{"codes": codes, "loaded": loaded}}))
"""
    result = subprocess.run(
        [sys.executable, "-c", script],
        env=subprocess_env(env),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["codes"] == [0, 0, 0, 0, 0]
    assert report["loaded"] == []


def test_main_in_process_leaves_ipython_unimported(
    capsys: pytest.CaptureFixture[str], saved: Session
) -> None:
    already = "IPython" in sys.modules
    assert run(capsys, "list")[0] == EXIT_OK
    assert run(capsys, "show", "analysis")[0] == EXIT_OK
    if not already:
        assert "IPython" not in sys.modules


# --- smaller paths ------------------------------------------------------------------------------


def test_commands_on_an_empty_store_need_no_key(
    capsys: pytest.CaptureFixture[str], env: dict[str, Path]
) -> None:
    for argv in (["show", "a"], ["snapshots", "a"], ["delete", "a", "--yes"]):
        code, _, err = run(capsys, *argv)
        assert code == EXIT_DATA
        assert "there are no saved sessions in" in err
        assert "IPYSESSION_DIR" in err  # the fix: look at the right root
    assert not (env["config"] / "master.key").exists()


def test_list_shows_an_older_readable_generation(
    capsys: pytest.CaptureFixture[str], saved: Session, env: dict[str, Path]
) -> None:
    newest = sorted(env["root"].glob("sessions/analysis-*/gen-*.ipys"))[-1]
    data = bytearray(newest.read_bytes())
    data[-5] ^= 0x10
    newest.write_bytes(bytes(data))
    code, out, _ = run(capsys, "list")
    assert code == EXIT_OK
    assert "corrupt (falls back to generation 1)" in out
    row = json.loads(run(capsys, "list", "--json")[1])[0]
    assert (row["state"], row["newest_readable"]) == ("corrupt", 1)  # text and JSON agree


def test_export_write_failure_names_the_file(
    capsys: pytest.CaptureFixture[str],
    saved: Session,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PW", PASSPHRASE)
    target = tmp_path / "no" / "such" / "dir" / "a.ipys"
    code, _, err = run(capsys, "export", "analysis", str(target), "--passphrase-env", "PW")
    assert code == EXIT_DATA
    assert "Cannot write the export" in err
    assert str(target) in err
    assert "exists, is writable" in err
    assert list(tmp_path.glob("**/.tmp-*")) == []


def test_import_rejects_an_empty_name(
    capsys: pytest.CaptureFixture[str],
    saved: Session,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PW", PASSPHRASE)
    exported = tmp_path / "a.ipys"
    assert run(capsys, "export", "analysis", str(exported), "--passphrase-env", "PW")[0] == EXIT_OK
    code, _, err = run(capsys, "import", str(exported), "--passphrase-env", "PW", "--name", " ")
    assert code == EXIT_USAGE
    assert "--name" in err


def test_rekey_quarantines_a_corrupt_file_and_still_commits(
    capsys: pytest.CaptureFixture[str], saved: Session, env: dict[str, Path]
) -> None:
    oldest = sorted(env["root"].glob("sessions/analysis-*/gen-*.ipys"))[0]
    data = bytearray(oldest.read_bytes())
    data[70] ^= 0x01
    oldest.write_bytes(bytes(data))
    code, out, err = run(capsys, "rekey")
    assert code == EXIT_OK
    assert f"not re-encrypted: {oldest}" in err
    assert "1 file not re-encrypted" in out
    assert "were not re-encrypted; those sealed with the old key" in out
    assert not oldest.exists()
    assert run(capsys, "doctor")[0] == EXIT_OK


def test_doctor_repair_on_a_clean_store(capsys: pytest.CaptureFixture[str], saved: Session) -> None:
    code, out, _ = run(capsys, "doctor", "--repair")
    assert code == EXIT_OK
    assert "repair: checked 5 files" in out  # with the head record
    assert "nothing needed repairing" in out


def test_doctor_on_an_empty_store(capsys: pytest.CaptureFixture[str], env: dict[str, Path]) -> None:
    code, out, _ = run(capsys, "doctor")
    assert code == EXIT_OK
    assert "No saved sessions." in out
    # Not made yet is not a problem (the verdict says all is in order), so not "missing".
    assert "root dir       not created yet" in out


@pytest.mark.parametrize(
    ("error", "expected"),
    [(KeyboardInterrupt(), cli.EXIT_INTERRUPTED), (BrokenPipeError(), cli.EXIT_BROKEN_PIPE)],
)
def test_interrupt_and_broken_pipe(
    capsys: pytest.CaptureFixture[str],
    saved: Session,
    monkeypatch: pytest.MonkeyPatch,
    error: BaseException,
    expected: int,
) -> None:
    def fail(self: SessionStore) -> list[Any]:
        raise error

    monkeypatch.setattr(SessionStore, "list", fail)
    code, _, err = run(capsys, "list")
    assert code == expected
    assert "Traceback" not in err
