"""The workspace: records -> Session (snapshot, values the writer stored in blobs) and
Session -> shell (part by part, one failure never stopping the rest), in an in-process shell."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterator
from typing import Any

import pytest

import ipysession
from ipysession.extension import get_manager
from ipysession.model import ImportRecord, VariableRecord
from ipysession.session.reports import RESTORE_PARTS, RestoreReport
from ipysession.session.workspace import Workspace, writer_info
from tests.builders import make_session
from tests.shell import ipython_shell, run


@pytest.fixture
def shell() -> Iterator[Any]:
    with ipython_shell(autosave=False) as shell:
        ipysession.load_ipython_extension(shell)
        yield shell


def workspace_of(shell: Any) -> Workspace:
    manager = get_manager(shell)
    assert manager is not None
    return manager.workspace


def test_a_snapshot_is_the_captured_records_history_and_writer(shell: Any) -> None:
    run(shell, "import json\nanswer = 42")
    snapshot = workspace_of(shell).snapshot("nb", writer_info("kernel-1", "run-1"))
    assert snapshot.name == "nb"
    assert set(snapshot.variables) == {"answer"}
    assert [i.name for i in snapshot.imports] == ["json"]
    assert [h.source for h in snapshot.history] == ["import json\nanswer = 42"]
    assert (snapshot.writer.kernel_id, snapshot.writer.run_id) == ("kernel-1", "run-1")
    assert snapshot.writer.pid == os.getpid()
    assert snapshot.cwd == os.getcwd()


def test_values_the_writer_stored_keep_only_their_blob_reference(shell: Any) -> None:
    workspace = workspace_of(shell)
    run(shell, "kept = b'k' * 10\nchanged = b'c' * 10")
    written = workspace.snapshot("nb", writer_info("", "run-1"))
    sealed = {
        name: dataclasses.replace(written.variables[name], data=None, blob=f"blob-{name}")
        for name in ("kept", "changed")
    }
    workspace.stored_in_blobs(sealed, written)
    run(shell, "changed = b'again'")  # captured again before the next cell starts
    workspace.catch_up()
    assert workspace.records["kept"].data is None
    assert workspace.records["kept"].blob == "blob-kept"
    assert workspace.records["changed"].blob is None  # the newer capture is kept as it is


def test_a_restore_applies_every_part_and_one_failure_never_stops_the_rest(
    shell: Any, tmp_path: Any
) -> None:
    session = make_session(
        variables={
            "good": make_session().variables["x"],
            "broken": VariableRecord("broken", "bytes", 3, encoding="pickle", data=b"bad"),
            "huge": VariableRecord("huge", "bytes", 10**10, skipped="too large"),
        },
        imports=[ImportRecord("json", "json"), ImportRecord("gone", "no_such_module_here")],
        cwd=str(tmp_path / "removed since"),
        layout={"panels": ["notebook"]},
    )
    workspace = workspace_of(shell)
    report = RestoreReport(session="nb")
    workspace.apply(session, report, source="nb", parts=RESTORE_PARTS, variables=None, own=True)
    assert report.variables == ["good"]
    assert report.imports == ["json"]
    assert shell.user_ns["good"] == 1
    assert shell.user_ns["json"].__name__ == "json"
    skipped = dict(report.skipped)
    assert set(skipped) == {"broken", "huge", "gone", "cwd"}
    assert skipped["huge"] == "not saved: too large"
    assert report.history == len(session.history)
    assert report.layout
    assert workspace.layout == {"panels": ["notebook"]}
    # A value that failed to load here is carried, so the next save does not drop it.
    assert workspace.records["broken"] is session.variables["broken"]


def test_history_and_identity_are_continued_only_from_this_kernels_own_session(
    shell: Any,
) -> None:
    workspace = workspace_of(shell)
    created = workspace.created
    other = make_session(cells=3, created=1.0, extra={"future_field": 1})
    report = RestoreReport(session="other")
    workspace.apply(other, report, source="other", parts=RESTORE_PARTS, variables=None, own=False)
    assert report.history == 0
    assert workspace.previous_history == []
    assert workspace.created == created
    assert workspace.extra == {}
    workspace.apply(
        other,
        RestoreReport(session="nb"),
        source="nb",
        parts=RESTORE_PARTS,
        variables=None,
        own=True,
    )
    assert len(workspace.previous_history) == 3
    assert workspace.created == 1.0
    assert workspace.extra == {"future_field": 1}
