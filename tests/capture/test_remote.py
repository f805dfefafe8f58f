"""Dask futures and persisted collections are never saved: skipped with what to do instead."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from ipysession.capture.namespace import capture_value
from ipysession.capture.remote import remote_handle_reason
from ipysession.model import VariableRecord
from tests.servers.dask import DaskCluster

pytestmark = pytest.mark.kernel


@pytest.fixture
def client(dask_cluster: DaskCluster) -> Iterator[Any]:
    from distributed import Client

    with Client(dask_cluster.address, timeout=60, set_as_default=False) as c:
        yield c


def skipped(name: str, value: object) -> str:
    record = capture_value(name, value)
    assert isinstance(record, VariableRecord)
    assert record.data is None
    assert record.skipped
    return record.skipped


def test_a_future_is_skipped_with_publish_advice(client: Any) -> None:
    future = client.submit(sum, [1, 2])
    assert future.result(timeout=60) == 3
    reason = skipped("total", future)
    assert reason.startswith("a Dask future names results held in the workers' memory")
    assert "client.publish_dataset(total=total)" in reason
    assert "total = client.get_dataset('total')" in reason


def test_futures_in_a_list_and_a_persisted_array_are_skipped(client: Any) -> None:
    import dask.array as da

    futures = client.map(abs, [-1, -2])
    assert "a list of Dask futures" in skipped("futures", futures)
    persisted = client.persist(da.ones(10, chunks=5))
    assert "a persisted Dask collection (Array)" in skipped("arr", persisted)


def test_a_lazy_collection_is_not_a_handle() -> None:
    import dask.array as da

    lazy = da.ones(10, chunks=5)
    assert remote_handle_reason("lazy", lazy) is None
    record = capture_value("lazy", lazy)
    assert isinstance(record, VariableRecord)
    assert record.data is not None
    assert remote_handle_reason("plain", [1, 2, 3]) is None
