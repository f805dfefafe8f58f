"""A generation never refers to a blob that is not on disk, and one that does is reported.

Seen in issue 12: a session deleted under a running kernel, whose next saves referred to blobs
that were gone; `doctor` said all was well and the restart lost the variable.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from ipysession.model import Session
from ipysession.store import SessionStore
from ipysession.store.blobs import MISSING_BLOB, blob_path
from tests.builders import BIG, KEY, make_session


def _stored_as_reference(store: SessionStore, session: Session) -> tuple[Session, str]:
    """Write ``session`` and return it as a kernel keeps it after the write: the large value
    ``big`` only as its blob reference (the bytes dropped), and that blob's id."""
    result = store.write(session)
    blob_id = result.blobs["big"]
    record = dataclasses.replace(session.variables["big"], data=None, blob=blob_id)
    return dataclasses.replace(session, variables={**session.variables, "big": record}), blob_id


def test_a_write_saves_a_value_whose_blob_is_gone_as_skipped_and_reports_it(
    tmp_path: Path,
) -> None:
    with SessionStore(tmp_path, key=KEY, gc_grace=0) as store:
        kept, blob_id = _stored_as_reference(store, make_session("nb", big=BIG))
        blob_path(store.session_dir("nb"), blob_id).unlink()  # gone, as after a delete

        result = store.write(kept)

        assert result.lost_blobs == {"big": blob_id}
        written = store.read("nb", generation=result.generation).session
        assert written.variables["big"].blob is None
        assert written.variables["big"].skipped == MISSING_BLOB
        assert written.variables["x"].saved  # the rest of the session is written as it was
        # Only the generation written before the blob vanished still refers to it.
        dangling = store.dangling_references("nb")
        assert [ref.path.name for ref in dangling] == ["gen-00000001.ipys"]
        assert result.path.name == "gen-00000002.ipys"


def test_a_write_whose_blobs_are_there_reports_nothing_lost(tmp_path: Path) -> None:
    with SessionStore(tmp_path, key=KEY, gc_grace=0) as store:
        kept, blob_id = _stored_as_reference(store, make_session("nb", big=BIG))
        result = store.write(kept)
        assert result.lost_blobs == {}
        assert store.read("nb").session.variables["big"].blob == blob_id
        assert store.dangling_references("nb") == []


def test_dangling_references_name_each_generation_and_the_missing_blob(tmp_path: Path) -> None:
    with SessionStore(tmp_path, key=KEY, gc_grace=0) as store:
        first = store.write(make_session("nb", big=BIG))
        second = store.write(make_session("nb", big=BIG))
        blob_id = first.blobs["big"]
        blob_path(store.session_dir("nb"), blob_id).unlink()

        found = store.dangling_references("nb")

        assert [(ref.path, ref.blob_id) for ref in found] == [
            (first.path, blob_id),
            (second.path, blob_id),
        ]
        assert found[0].message.startswith(f"{first.path.name} refers to stored value {blob_id}")
        assert "missing" in found[0].message
