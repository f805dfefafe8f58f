"""The store's records: problem kinds as the command line prints them, the problems an error
carries, and variable counts that mean saved (or skipped) variables in every view."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

from ipysession.errors import CorruptFile, NewerFormat, StoreError
from ipysession.model import VariableRecord
from ipysession.store import FileProblem, SessionStore, problems_of
from ipysession.store.results import ProblemKind
from tests.builders import KEY, make_session


def test_problem_kinds_print_and_serialize_as_their_words() -> None:
    assert [kind.value for kind in ProblemKind] == [
        "corrupt",
        "wrong-key",
        "newer-format",
        "unreadable",
    ]
    for kind in ProblemKind:
        assert kind == kind.value  # callers compare with the plain word
        assert str(kind) == f"{kind}" == kind.value
        assert json.loads(json.dumps({"kind": kind})) == {"kind": kind.value}
    assert ProblemKind.of(NewerFormat(found=9, supported=1)) is ProblemKind.NEWER_FORMAT
    assert ProblemKind.of(CorruptFile("bad")) is ProblemKind.CORRUPT
    assert ProblemKind.of(PermissionError(13, "denied")) is ProblemKind.UNREADABLE


def test_a_store_error_carries_its_file_problems() -> None:
    problem = FileProblem(Path("gen-00000001.ipys"), ProblemKind.CORRUPT, "failed authentication")
    error = CorruptFile("No generation could be read", path=Path("sdir"))
    assert error.problems == ()
    assert problems_of(error) == []
    error.problems = (problem,)
    assert problems_of(error) == [problem]
    # Pickled (say, across a process boundary), the problems stay with it.
    copy = pickle.loads(pickle.dumps(error))
    assert isinstance(copy, CorruptFile)
    assert problems_of(copy) == [problem]
    assert str(copy) == str(error)
    newer = pickle.loads(pickle.dumps(NewerFormat(found=9, supported=1)))
    assert (newer.found, newer.supported) == (9, 1)
    assert problems_of(ValueError("not ours")) == []
    assert problems_of(StoreError("no files")) == []


def test_every_view_counts_saved_and_skipped_variables_apart(tmp_path: Path) -> None:
    # Two saved (one inline, one in a blob) and one skipped: `%session status` says 2 variables,
    # and so must list, generations and checkpoints.
    session = make_session(big=b"v" * 100_000)
    session.variables["fh"] = VariableRecord("fh", "TextIOWrapper", 0, skipped="open file")
    with SessionStore(tmp_path, key=KEY) as store:
        store.write(session)
        store.checkpoint("nb", "cp")
        expected = (sum(r.saved for r in session.variables.values()), 1)
        assert expected == (2, 1)
        with SessionStore(tmp_path, key=KEY) as fresh:  # decoded from disk, not remembered
            for views in (store, fresh):
                [summary] = views.list()
                [generation] = views.generations("nb")
                [checkpoint] = views.checkpoints("nb")
                assert (summary.variables, summary.skipped) == expected
                assert (generation.variables, generation.skipped) == expected
                assert (checkpoint.variables, checkpoint.skipped) == expected
