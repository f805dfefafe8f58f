"""The session model: every field round-trips, unknown fields survive, errors name the field."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from ipysession.errors import ModelError
from ipysession.model import HistoryEntry, ImportRecord, Session, VariableRecord, redact
from tests.builders import CONN_SECRET, ENV_SECRET, make_session


def full_session() -> Session:
    """The complete session plus every variant of a record the model must carry."""
    session = make_session("notebooks/analysis.ipynb", complete=True)
    session.history.append(
        HistoryEntry("y = 'héllo ✓' / 0", 3, 1_700_000_003.0, success=False, run_id="run-1")
    )
    session.variables["ref"] = VariableRecord(
        "ref", "numpy.ndarray", 8_000_000, encoding="pickle", blob="ab" * 32
    )
    session.variables["fn"] = VariableRecord(
        "fn", "function", 120, encoding="cloudpickle", data=bytes(range(256)), fingerprint="f00d"
    )
    session.imports.append(ImportRecord("j", "os.path", "join"))
    session.preferences.env["MODE"] = "dev"
    session.layout = {"cells": [{"id": "c1", "collapsed": False}], "zoom": 1.5}
    return session


def test_round_trip_every_field() -> None:
    session = full_session()
    doc = session.to_dict()
    # Through real JSON, as the file format does.
    again = Session.from_dict(json.loads(json.dumps(doc)))
    assert again == session
    assert again.to_dict() == doc
    assert again.variables["x"].data == b"\x80\x04K*."
    assert again.variables["ref"].blob == "ab" * 32
    assert again.variables["fh"].saved is False
    assert again.connections["old"].variable == "old"
    assert session.blob_ids() == {"ab" * 32}


def test_unknown_fields_survive_at_every_level() -> None:
    doc: dict[str, Any] = json.loads(json.dumps(full_session().to_dict()))
    doc["future_top"] = {"nested": [1, 2, 3]}
    doc["writer"]["future_writer"] = "w"
    doc["history"][0]["future_cell"] = {"outputs": 2}
    doc["variables"]["x"]["future_var"] = [None]
    doc["preferences"]["future_pref"] = True
    doc["connections"]["db"]["future_conn"] = "c"
    doc["connections"]["db"]["stats"]["future_stat"] = 7
    expected = copy.deepcopy(doc)

    again = Session.from_dict(doc).to_dict()
    assert again == expected
    assert Session.from_dict(doc).extra == {
        "future_field": {"kept": True},
        "future_top": {"nested": [1, 2, 3]},
    }


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
            lambda d: d["variables"]["x"].update(data="not base64!"),
            "session.variables.x.data",
        ),
        (lambda d: d["variables"]["x"].pop("type"), "session.variables.x.type"),
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
    assert CONN_SECRET not in text
    assert "'password': '***'" in text
    for secret in (CONN_SECRET, ENV_SECRET):
        assert secret not in repr(full_session())
        assert secret not in repr(full_session().preferences)
    assert redact("") == ""
    assert redact(None) == ""
    assert redact("x") == "***"


def test_import_statements() -> None:
    assert ImportRecord("np", "numpy").statement() == "import numpy as np"
    assert ImportRecord("os", "os").statement() == "import os"
    assert ImportRecord("os", "os.path").statement() == "import os.path"
    assert ImportRecord("path", "os", "path").statement() == "from os import path"
    assert ImportRecord("j", "os.path", "join").statement() == "from os.path import join as j"
