"""The session model: every field round-trips, unknown fields survive, errors name the field."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from ipysession.errors import ModelError
from ipysession.model import (
    ConnectionRecord,
    ConnectionStats,
    HistoryEntry,
    ImportRecord,
    Preferences,
    Session,
    VariableRecord,
    WriterInfo,
    redact,
)

SECRET = "s3cr3t-t0ken-for-the-model-test"


def full_session() -> Session:
    """A session with every field populated."""
    return Session(
        name="notebooks/analysis.ipynb",
        created=1_700_000_000.5,
        updated=1_700_000_100.25,
        writer=WriterInfo(
            python="3.11.7",
            ipython="8.20.0",
            ipysession="0.1.0",
            host="laptop",
            pid=4242,
            kernel_id="0f1e2d3c-kernel",
            run_id="run-1",
        ),
        history=[
            HistoryEntry("import numpy as np", 1, 1_700_000_001.0),
            HistoryEntry("x = 1 / 0", 2, 1_700_000_002.0, success=False, run_id="run-1"),
            HistoryEntry("y = 'héllo ✓'", 3, 1_700_000_003.0),
        ],
        variables={
            "small": VariableRecord("small", "int", 5, encoding="pickle", data=b"\x80\x04K*."),
            "big": VariableRecord(
                "big", "numpy.ndarray", 8_000_000, encoding="pickle", blob="ab" * 32
            ),
            "fh": VariableRecord("fh", "_io.TextIOWrapper", 0, skipped="open file handle"),
            "fn": VariableRecord(
                "fn",
                "function",
                120,
                encoding="cloudpickle",
                data=bytes(range(256)),
                fingerprint="f00d",
            ),
        },
        imports=[
            ImportRecord("np", "numpy"),
            ImportRecord("os", "os"),
            ImportRecord("path", "os", "path"),
            ImportRecord("j", "os.path", "join"),
        ],
        preferences=Preferences(
            extensions=["autoreload"],
            magics={"autoreload": "2", "precision": "3"},
            env={"API_TOKEN": SECRET, "MODE": "dev"},
        ),
        cwd="/home/ada/project",
        layout={"cells": [{"id": "c1", "collapsed": False}], "zoom": 1.5},
        connections={
            "db": ConnectionRecord(
                name="db",
                kind="sqlalchemy",
                params={"url": "postgresql://ada@db.example/prod"},
                secrets={"password": SECRET},
                variable="engine",
                auto=False,
                stats=ConnectionStats(
                    created=1_700_000_000.0,
                    last_used=1_700_000_050.0,
                    successes=3,
                    failures=1,
                    last_error="timeout",
                ),
            ),
            "remote": ConnectionRecord(name="remote", kind="jupyter", params={"host": "gpu1"}),
        },
    )


def test_round_trip_every_field() -> None:
    session = full_session()
    doc = session.to_dict()
    # Through real JSON, as the file format does.
    again = Session.from_dict(json.loads(json.dumps(doc)))
    assert again == session
    assert again.to_dict() == doc
    assert again.variables["small"].data == b"\x80\x04K*."
    assert again.variables["big"].blob == "ab" * 32
    assert again.variables["fh"].saved is False
    assert again.connections["remote"].variable == "remote"
    assert session.blob_ids() == {"ab" * 32}


def test_unknown_fields_survive_at_every_level() -> None:
    doc: dict[str, Any] = json.loads(json.dumps(full_session().to_dict()))
    doc["future_top"] = {"nested": [1, 2, 3]}
    doc["writer"]["future_writer"] = "w"
    doc["history"][0]["future_cell"] = {"outputs": 2}
    doc["variables"]["small"]["future_var"] = [None]
    doc["preferences"]["future_pref"] = True
    doc["connections"]["db"]["future_conn"] = "c"
    doc["connections"]["db"]["stats"]["future_stat"] = 7
    expected = copy.deepcopy(doc)

    again = Session.from_dict(doc).to_dict()
    assert again == expected
    assert Session.from_dict(doc).extra == {"future_top": {"nested": [1, 2, 3]}}


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda d: d.pop("name"), "session.name"),
        (lambda d: d.update(name=3), "session.name"),
        (
            lambda d: d["history"][1].update(execution_count="2"),
            "session.history[1].execution_count",
        ),
        (lambda d: d["history"][0].update(time=True), "session.history[0].time"),
        (
            lambda d: d["variables"]["small"].update(data="not base64!"),
            "session.variables.small.data",
        ),
        (lambda d: d["variables"]["small"].pop("type"), "session.variables.small.type"),
        (lambda d: d["imports"][0].update(module=None), "session.imports[0].module"),
        (lambda d: d["preferences"]["env"].update(MODE=1), "preferences.env.MODE"),
        (lambda d: d["preferences"].update(extensions=[1]), "preferences.extensions[0]"),
        (lambda d: d["connections"]["db"].update(kind=[]), "session.connections.db.kind"),
        (
            lambda d: d["connections"]["db"]["stats"].update(successes=1.5),
            "session.connections.db.stats.successes",
        ),
        (lambda d: d.update(history={}), "session.history"),
    ],
)
def test_validation_errors_name_the_field(mutate: Any, field: str) -> None:
    doc = json.loads(json.dumps(full_session().to_dict()))
    mutate(doc)
    with pytest.raises(ModelError) as info:
        Session.from_dict(doc)
    assert field in str(info.value)


def test_variable_must_have_exactly_one_of_data_blob_skipped() -> None:
    with pytest.raises(ModelError, match="exactly one"):
        VariableRecord("v", "int", 1, encoding="pickle", data=b"x", blob="b")
    with pytest.raises(ModelError, match="exactly one"):
        VariableRecord("v", "int", 1, encoding="pickle")
    with pytest.raises(ModelError, match="no encoding"):
        VariableRecord("v", "int", 1, data=b"x")


def test_not_a_document() -> None:
    with pytest.raises(ModelError, match="session"):
        Session.from_dict([1, 2])


def test_connection_repr_hides_secrets() -> None:
    record = full_session().connections["db"]
    text = repr(record)
    assert SECRET not in text
    assert "'password': '***'" in text
    assert SECRET not in repr(full_session())
    assert SECRET not in repr(full_session().preferences)
    assert redact("") == ""
    assert redact(None) == ""
    assert redact("x") == "***"


def test_import_statements() -> None:
    assert ImportRecord("np", "numpy").statement() == "import numpy as np"
    assert ImportRecord("os", "os").statement() == "import os"
    assert ImportRecord("os", "os.path").statement() == "import os.path"
    assert ImportRecord("path", "os", "path").statement() == "from os import path"
    assert ImportRecord("j", "os.path", "join").statement() == "from os.path import join as j"
