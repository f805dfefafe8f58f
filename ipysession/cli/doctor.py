"""The ``ipysession doctor`` command: check key, directories and every file; ``--repair`` them."""

from __future__ import annotations

import contextlib
import os
import stat
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ipysession import paths
from ipysession._version import __version__
from ipysession.cli.common import (
    EXIT_DATA,
    EXIT_OK,
    Context,
    count_files,
    emit_json,
)
from ipysession.errors import KeyStoreError, SessionNotFound
from ipysession.formatting import count
from ipysession.presentation import State, problem_json, text_table

if TYPE_CHECKING:
    import argparse

    from ipysession.store import SessionStore


# --- doctor -------------------------------------------------------------------------------------


def _path_state(path: Path, *, directory: bool) -> dict[str, Any]:
    """Existence and permissions of one of our directories or files."""
    try:
        st = path.stat()
    except FileNotFoundError:
        return {"path": str(path), "exists": False, "mode": None, "state": "missing"}
    except OSError as exc:
        return {"path": str(path), "exists": None, "mode": None, "state": f"unreadable: {exc}"}
    mode = stat.S_IMODE(st.st_mode)
    if directory and not stat.S_ISDIR(st.st_mode):
        state = "not a directory"
    elif not paths.is_private(path):
        state = "too open"
    else:
        state = "ok"
    return {"path": str(path), "exists": True, "mode": f"{mode:04o}", "state": state}


def _fix_for(label: str, info: dict[str, Any]) -> str | None:
    if info["state"] == "too open":
        mode = "700" if label.endswith("dir") else "600"
        return f"chmod {mode} {info['path']}"
    if info["state"] == "not a directory":
        return f"move {info['path']} away; ipysession needs a directory there"
    return None


def _session_files(store: SessionStore, slug: str, sdir: Path) -> list[tuple[str, Path]]:
    """Every generation, checkpoint and blob file of one session, and its head record:
    ``(kind, path)``."""
    from ipysession.store.names import BLOB_SUFFIX, HEAD_FILE

    files = [("generation", info.path) for info in store.generations(slug)]
    files += [("checkpoint", info.path) for info in store.checkpoints(slug)]
    with contextlib.suppress(OSError):
        files += [
            ("blob", path)
            for path in sorted((sdir / "blobs").iterdir())
            if path.name.endswith(BLOB_SUFFIX) and not path.name.startswith(".")
        ]
    if os.path.lexists(sdir / HEAD_FILE):
        files.append(("head", sdir / HEAD_FILE))
    return files


def _check_sessions(store: SessionStore) -> list[dict[str, Any]]:
    sessions: list[dict[str, Any]] = []
    for summary in store.list():
        files: list[dict[str, Any]] = []
        rollback = None
        dangling: list[str] = []
        try:
            found = _session_files(store, summary.slug, summary.path)
            rollback = store.rollback(summary.slug)
            dangling = [ref.message for ref in store.dangling_references(summary.slug)]
        except SessionNotFound:  # a directory the store does not recognize as a session
            found = []
            files.append(
                {
                    "path": str(summary.path),
                    "kind": "directory",
                    "state": "not-a-session",
                    "message": "not a session directory (no generation or checkpoint in it)",
                }
            )
        for kind, path in found:
            problem = store.inspect(path)
            files.append(
                {
                    "path": str(path),
                    "kind": kind,
                    "state": str(State.of_file(problem)),
                    "message": problem.message if problem else None,
                }
            )
        sessions.append(
            {
                "name": summary.name,
                "slug": summary.slug,
                "path": str(summary.path),
                "files": files,
                # Newest generations deleted or put back from an older copy (see the head record).
                "rollback": rollback.message if rollback else None,
                # Generations that refer to a stored value no longer on disk.
                "dangling": dangling,
            }
        )
    return sessions


_FILE_FIXES = {
    "corrupt": "`ipysession doctor --repair` moves it to quarantine/ (kept, never deleted)",
    "wrong-key": "it was sealed with another key: use the key store (or passphrase) that wrote it",
    "newer-format": "it was written by a newer ipysession: upgrade (pip install -U ipysession)",
    "unreadable": "check the file's owner and permissions",
    "not-a-session": "move it out of the sessions directory: ipysession did not write it",
}


def _key_report(ctx: Context) -> dict[str, Any]:
    try:
        res = ctx.resolution()
    except KeyStoreError as exc:
        return {"state": "unavailable", "backend": ctx.key_backend, "error": str(exc)}
    key_id = getattr(res.key, "key_id_hex", None)
    report: dict[str, Any] = {
        "state": "ok",
        "backend": res.backend,
        "reason": res.reason,
        "location": res.location,
        "key_id": key_id,
        "config_dir": str(res.config_dir) if res.config_dir else None,
        "error": None,
    }
    if res.backend == "file" and res.location:
        report["key_file"] = _path_state(Path(res.location), directory=False)
    return report


def _doctor_report(ctx: Context, *, repair: bool) -> tuple[dict[str, Any], list[str]]:
    """The doctor's findings, and one line per problem still standing (with its fix)."""
    from ipysession.store.names import QUARANTINE_DIR

    problems: list[str] = []
    key = _key_report(ctx)
    if key["state"] != "ok":
        problems.append(f"key unavailable: {key['error']}")
    config_dir = Path(key.get("config_dir") or paths.config_dir())
    dirs = {
        "root dir": _path_state(ctx.root, directory=True),
        "sessions dir": _path_state(ctx.sessions_dir, directory=True),
        "quarantine dir": _path_state(ctx.root / QUARANTINE_DIR, directory=True),
        "config dir": _path_state(config_dir, directory=True),
    }
    if "key_file" in key:
        dirs["key file"] = key["key_file"]
    for label, info in dirs.items():
        fix = _fix_for(label, info)
        if fix:
            problems.append(f"{label} {info['path']} is {info['state']}: {fix}")
    quarantined = count_files(ctx.root / QUARANTINE_DIR)
    report: dict[str, Any] = {
        "version": __version__,
        "python": sys.version.split()[0],
        "root": str(ctx.root),
        "key": key,
        "paths": dirs,
        "quarantine": {"path": str(ctx.root / QUARANTINE_DIR), "files": quarantined},
        "sessions": [],
        "repair": None,
    }
    if key["state"] == "ok" and ctx.has_sessions():
        store = ctx.store()
        report["sessions"] = _check_sessions(store)
        if repair:
            done = store.repair()
            report["repair"] = {
                "files_checked": done.files_checked,
                "quarantined": [problem_json(p) for p in done.quarantined],
                "left_in_place": [problem_json(p) for p in done.left_in_place],
                "temp_files_removed": [str(p) for p in done.temp_files_removed],
                "blobs_removed": [str(p) for p in done.blobs_removed],
                "sessions_skipped": [
                    {"path": str(p), "reason": why} for p, why in done.sessions_skipped
                ],
            }
            report["quarantine"]["files"] = count_files(ctx.root / QUARANTINE_DIR)
            for path, why in done.sessions_skipped:
                problems.append(f"{path} was not repaired: {why}")
    fixed = {p["path"] for p in (report["repair"] or {}).get("quarantined", [])}
    for session in report["sessions"]:
        if session["rollback"]:
            problems.append(f"session {session['path']}: {session['rollback']}")
        for dangling in session["dangling"]:
            problems.append(
                f"session {session['path']}: {dangling}; the next save of a kernel that holds "
                "the variable stores it again"
            )
        for f in session["files"]:
            if f["state"] != "ok" and f["path"] not in fixed:
                problems.append(f"{f['path']} is {f['state']}: {_FILE_FIXES[f['state']]}")
    counts: dict[str, int] = {}
    for session in report["sessions"]:
        for f in session["files"]:
            counts[f["state"]] = counts.get(f["state"], 0) + 1
    report["summary"] = {"files": counts, "problems": len(problems)}
    report["ok"] = not problems
    return report, problems


def _short_file_name(path: Path, sdir: Path) -> str:
    """``gen-00000003.ipys``, ``checkpoints/x.ipys``, ``blobs/1a2b3c4d5e6f….ipyb``."""
    try:
        name = path.relative_to(sdir).as_posix()
    except ValueError:
        name = path.name
    stem, dot, suffix = name.rpartition(".")
    if name.startswith("blobs/") and len(stem) > len("blobs/") + 12:
        return f"{stem[: len('blobs/') + 12]}…{dot}{suffix}"
    return name


def _doctor_text(report: dict[str, Any]) -> str:
    key = report["key"]
    lines = [f"ipysession {report['version']} (Python {report['python']})", ""]
    if key["state"] == "ok":
        lines += [
            f"key          {key['backend']}: {key['reason']}",
            f"  location   {key['location'] or '-'}",
            f"  key id     {key['key_id'] or '-'}",
        ]
    else:
        lines.append(f"key          UNAVAILABLE: {key['error']}")
    lines.append("")
    for label, info in report["paths"].items():
        mode = f" ({info['mode']})" if info["mode"] else ""
        state = info["state"]
        if state == "missing" and label.endswith("dir"):
            # Not a problem (none is listed, the verdict says all is in order): ipysession
            # makes its directories when it first needs them, the quarantine at the first
            # damaged file. "missing" next to "Everything is in order" read as a contradiction.
            state = "not created yet (made when first needed)"
        lines.append(f"{label:<15}{state}{mode}  {info['path']}")
    quarantine = report["quarantine"]
    lines.append(f"{'quarantined':<15}{count(quarantine['files'], 'file')} in {quarantine['path']}")
    lines.append("")
    if key["state"] != "ok":
        lines.append("Session files not checked: the key is unavailable.")
    elif not report["sessions"]:
        lines.append("No saved sessions.")
    for session in report["sessions"]:
        name = session["name"] if session["name"] is not None else "? (unreadable)"
        lines.append(f"session {name}  [{session['slug']}]")
        rows = [
            [
                f["kind"],
                _short_file_name(Path(f["path"]), Path(session["path"])),
                f["state"] if f["state"] == "ok" else f"{f['state'].upper()}: {f['message']}",
            ]
            for f in session["files"]
        ]
        if rows:
            lines.append(text_table(["file", "name", "state"], rows, indent="  "))
        else:
            lines.append("  (no files)")
        if session["rollback"]:
            lines.append(f"  ROLLBACK: {session['rollback']}")
        for dangling in session["dangling"]:
            lines.append(f"  MISSING BLOB: {dangling}")
    repair = report["repair"]
    if repair is not None:
        lines += ["", f"repair: checked {count(repair['files_checked'], 'file')}"]
        for p in repair["quarantined"]:
            lines.append(
                f"  quarantined {p['path']} -> {p['quarantined_to'] or '(could not move)'}"
            )
        for p in repair["left_in_place"]:
            lines.append(f"  left in place ({p['kind']}) {p['path']}")
        for path in repair["temp_files_removed"]:
            lines.append(f"  removed stale temp file {path}")
        for path in repair["blobs_removed"]:
            lines.append(f"  removed unreferenced blob {path}")
        for skipped in repair["sessions_skipped"]:
            lines.append(f"  skipped {skipped['path']}: {skipped['reason']}")
        if not any(repair[k] for k in ("quarantined", "temp_files_removed", "blobs_removed")):
            lines.append("  nothing needed repairing")
    counts = report["summary"]["files"]
    if counts:
        lines += ["", "files: " + ", ".join(f"{n} {state}" for state, n in sorted(counts.items()))]
    return "\n".join(lines)


def cmd_doctor(ctx: Context, args: argparse.Namespace) -> int:
    report, problems = _doctor_report(ctx, repair=args.repair)
    if args.json:
        report["problems"] = problems
        emit_json(ctx, report)
    else:
        ctx.say(_doctor_text(report))
        if problems:
            ctx.say("\nTo do:")
            ctx.say("\n".join(f"  - {p}" for p in problems))
        else:
            ctx.say("\nEverything is in order.")
    if problems:
        ctx.warn(f"doctor found {count(len(problems), 'problem')} (listed above)")
        return EXIT_DATA
    return EXIT_OK
