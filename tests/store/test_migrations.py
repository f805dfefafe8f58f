"""The migration chain, and the committed fixtures of every released format version."""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from ipysession.capture.namespace import restore_group, restore_value
from ipysession.errors import NewerFormat
from ipysession.keys.crypto import MasterKey
from ipysession.model import Session
from ipysession.store import SessionStore, fileformat, migrations
from ipysession.store.migrations import Step, step, upgrade
from ipysession.store.names import session_dir_for

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
# TEST KEY, published on purpose (see tests/fixtures/make_fixtures.py); it protects nothing.
FIXTURE_KEY = b"test key only, not a secret!!!!!"


def _make_fixtures_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("make_fixtures", FIXTURES / "make_fixtures.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# --- the chain mechanism, with a registry of its own ---------------------------------------------


@pytest.fixture
def registry() -> tuple[dict[int, Step], list[str]]:
    steps: dict[int, Step] = {}
    applied: list[str] = []

    @step(1, registry=steps)
    def v1_to_v2(doc: dict[str, Any]) -> dict[str, Any]:
        applied.append("1->2")
        assert doc["format"] == 1
        doc["cells"] = doc.pop("history")  # a rename
        return doc

    @step(2, registry=steps)
    def v2_to_v3(doc: dict[str, Any]) -> dict[str, Any]:
        applied.append("2->3")
        assert doc["format"] == 2
        assert "cells" in doc  # sees the output of the previous step
        doc["cell_count"] = len(doc["cells"])
        return doc

    return steps, applied


def test_steps_apply_in_order_and_keep_unknown_fields(
    registry: tuple[dict[int, Step], list[str]],
) -> None:
    steps, applied = registry
    doc = {"format": 1, "name": "n", "history": ["a", "b"], "from_the_future": {"x": 1}}
    out = upgrade(doc, 1, to_version=3, steps=steps)
    assert applied == ["1->2", "2->3"]
    assert out == {
        "format": 3,
        "name": "n",
        "cells": ["a", "b"],
        "cell_count": 2,
        "from_the_future": {"x": 1},
    }


def test_starting_midway_applies_only_later_steps(
    registry: tuple[dict[int, Step], list[str]],
) -> None:
    steps, applied = registry
    out = upgrade({"format": 2, "cells": []}, 2, to_version=3, steps=steps)
    assert applied == ["2->3"]
    assert out["format"] == 3


def test_current_version_is_unchanged(registry: tuple[dict[int, Step], list[str]]) -> None:
    steps, applied = registry
    doc = {"format": 3, "cells": []}
    assert upgrade(dict(doc), 3, to_version=3, steps=steps) == doc
    assert applied == []


def test_missing_step_is_an_error() -> None:
    steps: dict[int, Step] = {}
    step(1, registry=steps)(lambda doc: doc)
    with pytest.raises(LookupError, match="from format version 2 to 3"):
        upgrade({"format": 1}, 1, to_version=4, steps=steps)


def test_newer_version_is_refused_naming_both() -> None:
    with pytest.raises(NewerFormat) as info:
        upgrade({"format": 5}, 5, to_version=3, steps={})
    assert info.value.found == 5
    assert info.value.supported == 3
    assert "5" in str(info.value)
    assert "3" in str(info.value)


def test_a_step_registers_once() -> None:
    steps: dict[int, Step] = {}
    step(1, registry=steps)(lambda doc: doc)
    with pytest.raises(ValueError, match="already registered"):
        step(1, registry=steps)(lambda doc: doc)


def test_the_real_registry_covers_every_older_version() -> None:
    for version in range(1, migrations.CURRENT_VERSION):
        assert version in migrations.STEPS


# --- fixtures of released versions: read forever ------------------------------------------------


def test_fixture_key_is_the_one_that_made_the_fixtures() -> None:
    assert _make_fixtures_module().FIXTURE_KEY == FIXTURE_KEY


@pytest.mark.parametrize("version", [1, 2, 3, 4])
def test_fixture_session_reads(version: int) -> None:
    key = MasterKey(FIXTURE_KEY, description="fixture test key")
    data = (FIXTURES / f"v{version}-session.ipys").read_bytes()
    assert fileformat.read_header(data).version == version
    doc = fileformat.decode_session(data, key)
    assert doc["format"] == fileformat.FORMAT_VERSION
    doc.pop("format")
    session = Session.from_dict(doc)
    # Literal expectations: these must not follow later changes of the fixture script.
    assert session.name == "fixtures/v1.ipynb"
    assert session.created == 1_750_000_000.0
    assert session.updated == 1_750_000_060.5
    assert session.writer.kernel_id == "kernel-v1"
    assert [h.source for h in session.history] == ["import math", "r = math.pi * 2", "1 / 0"]
    assert [h.success for h in session.history] == [True, True, False]
    assert session.variables["r"].data == b"\x80\x04G@\x19!\xfbTD-\x18."
    assert session.variables["fh"].skipped == "open file handle"
    assert [i.statement() for i in session.imports] == ["import math", "from os import path as p"]
    assert session.preferences.magics == {"autoreload": "2", "precision": "3"}
    assert session.preferences.env == {"FIXTURE_MODE": "v1"}
    assert session.cwd == "/home/fixture/project"
    assert session.layout == {"cells": ["c1", "c2"]}
    assert session.connections["db"].secrets == {"password": "fixture-password"}
    assert session.connections["db"].variable == "engine"
    blob = fileformat.decode_blob(
        (FIXTURES / f"v{version}-blob.ipyb").read_bytes(),
        key,
        expected_id=session.variables["big"].blob,
    )
    assert blob == b"\x80\x04\x95" + bytes(range(256)) * 300


def test_fixture_reads_through_the_store(tmp_path: Path) -> None:
    key = MasterKey(FIXTURE_KEY, description="fixture test key")
    name = "fixtures/v1.ipynb"
    sdir = session_dir_for(tmp_path, name)
    (sdir / "blobs").mkdir(parents=True)
    shutil.copy(FIXTURES / "v1-session.ipys", sdir / "gen-00000001.ipys")
    blob_id = key.content_id(b"\x80\x04\x95" + bytes(range(256)) * 300)
    shutil.copy(FIXTURES / "v1-blob.ipyb", sdir / "blobs" / f"{blob_id}.ipyb")
    with SessionStore(tmp_path, key=key) as store:
        result = store.read(name)
        assert result.problems == []
        assert result.generation == 1
        assert result.session.variables["big"].blob == blob_id
        assert bytes(store.read_blob(name, blob_id)).startswith(b"\x80\x04\x95")
        # And a session read from an old file is written back in the current format.
        written = store.write(result.session)
        again = store.read(name)
        assert again.generation == written.generation == 2
        assert again.session == result.session


@pytest.mark.parametrize("version", [3, 4])
def test_the_format_3_fixture_brings_back_its_group_and_its_out_of_band_buffer(
    tmp_path: Path, version: int
) -> None:
    """From version 3 on (version 4 changed only the blob files: they name themselves)."""
    key = MasterKey(FIXTURE_KEY, description="fixture test key")
    name = "fixtures/v1.ipynb"
    sdir = session_dir_for(tmp_path, name)
    (sdir / "blobs").mkdir(parents=True)
    shutil.copy(FIXTURES / f"v{version}-session.ipys", sdir / "gen-00000001.ipys")
    shutil.copy(FIXTURES / f"v{version}-head.ipys", sdir / "head.ipys")
    # Literal values: these must not follow later changes of the fixture script.
    buffer_value = bytes(range(256)) * 400
    for value, fixture in (
        (b"\x80\x04\x95" + bytes(range(256)) * 300, f"v{version}-blob.ipyb"),
        (buffer_value, f"v{version}-buffer.ipyb"),
    ):
        assert fileformat.read_header((FIXTURES / fixture).read_bytes()).version == version
        shutil.copy(FIXTURES / fixture, sdir / "blobs" / f"{key.content_id(value)}.ipyb")
    with SessionStore(tmp_path, key=key) as store:
        result = store.read(name)
        assert result.problems == []
        assert result.rollback is None
        variables = result.session.variables
        holder, member, buf = variables["a"], variables["b"], variables["buf"]
        assert (holder.members, member.group) == (("a", "b"), "a")
        assert holder.data is not None
        values = restore_group(holder, holder.data)
        assert values["a"] == [1, 2]
        assert values["b"]["x"] is values["a"]  # shared, as when it was saved
        assert buf.data is not None
        (buffer,) = buf.buffers
        assert buffer.blob == key.content_id(buffer_value)
        memory = store.read_blob(name, buffer.blob)
        assert restore_value(buf, buf.data, buffers=[memory]) == bytearray(buffer_value)


def test_a_format_1_document_migrates_to_an_unbound_one() -> None:
    doc = upgrade({"format": 1, "name": "nb", "bound": {"generation": 7}}, 1, to_version=2)
    assert doc == {"format": 2, "name": "nb", "bound": None}  # nothing in a v1 file binds it
    data = (FIXTURES / "v2-session.ipys").read_bytes()
    key = MasterKey(FIXTURE_KEY, description="fixture test key")
    assert fileformat.open_session(data, key).binding == fileformat.Binding(generation=1)
    v1 = fileformat.open_session((FIXTURES / "v1-session.ipys").read_bytes(), key)
    assert (v1.version, v1.binding) == (1, None)
