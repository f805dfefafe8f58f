"""Co-variables without a shell: which variables share objects, and a group pickled as one
tuple comes back sharing them (identity, numpy views, cycles), with out-of-band buffers that the
restored arrays use as they are."""

from __future__ import annotations

import pickle
from typing import Any

import numpy as np
import pandas as pd
import pytest

from ipysession.capture.covars import CoVariables, reached_ids
from ipysession.capture.namespace import (
    capture_group,
    capture_value,
    restore_group,
    restore_value,
)
from ipysession.capture.pickling import OUT_OF_BAND_MIN, serialize
from ipysession.errors import CaptureError
from ipysession.model import VariableRecord


class Holder:
    def __init__(self, ref: object) -> None:
        self.ref = ref


def groups_of(ns: dict[str, Any]) -> set[frozenset[str]]:
    covars = CoVariables()
    for name, value in ns.items():
        covars.update(name, value)
    return {frozenset(covars.group(name)) for name in ns}


def round_trip(ns: dict[str, Any], names: set[str]) -> dict[str, Any]:
    covars = CoVariables()
    for name in names:
        covars.update(name, ns[name])
    records = capture_group({n: ns[n] for n in names}, views_of=covars.shared_ids(names))
    assert records is not None
    (holder,) = [r for r in records.values() if r.members]
    assert holder.data is not None
    assert all(records[n].group == holder.name for n in names - {holder.name})
    buffers = [bytearray(b.data or b"") for b in holder.buffers]
    return restore_group(holder, holder.data, buffers=buffers)


def test_the_aliasing_cases_form_one_group_and_unrelated_values_stay_alone() -> None:
    a = [1, 2]
    ns = {"a": a, "b": a, "d": {"x": a}, "c": Holder(a), "other": [1, 2], "n": 1, "m": 1}
    groups = groups_of(ns)
    assert frozenset({"a", "b", "c", "d"}) in groups
    # Equal values, and interned numbers shared by two names, are no reason to group.
    assert frozenset({"other"}) in groups
    assert frozenset({"n"}) in groups
    assert frozenset({"m"}) in groups


def test_a_group_comes_back_sharing_what_it_shared() -> None:
    a = [1, 2]
    ns: dict[str, Any] = {"a": a, "b": a, "d": {"x": a}, "c": Holder(a)}
    back = round_trip(ns, {"a", "b", "c", "d"})
    assert back["b"] is back["a"]
    assert back["d"]["x"] is back["a"]
    assert back["c"].ref is back["a"]
    back["a"].append(3)
    assert back["b"] == [1, 2, 3]


def test_a_cycle_across_two_variables_comes_back_as_a_cycle() -> None:
    p: list[Any] = [1]
    q = [p]
    p.append(q)
    ns = {"p": p, "q": q}
    assert frozenset({"p", "q"}) in groups_of(ns)
    back = round_trip(ns, {"p", "q"})
    assert back["q"][0] is back["p"]
    assert back["p"][1] is back["q"]


def test_a_numpy_view_comes_back_a_view_of_its_array_without_doubling_memory() -> None:
    big = np.arange(100_000, dtype=np.float64)
    ns = {"big": big, "view": big[2:5], "rows": big.reshape(1000, 100)[::2]}
    assert frozenset(ns) in groups_of(ns)
    back = round_trip(ns, set(ns))
    assert back["view"].base is back["big"]
    assert back["rows"].base is back["big"]
    np.testing.assert_array_equal(back["rows"], ns["rows"])
    back["big"][3] = -1.0
    assert back["view"][1] == -1.0  # the same memory, as before
    assert back["big"].flags.writeable


def test_an_object_holding_a_layer_that_is_also_a_variable_keeps_it() -> None:
    layer = Holder(np.ones(10))
    model = Holder([layer, Holder(None)])
    back = round_trip({"layer": layer, "model": model}, {"layer", "model"})
    assert back["model"].ref[0] is back["layer"]


def test_a_column_of_a_frame_comes_back_equal_and_independent_as_pandas_means_it() -> None:
    """pandas 3 copies on write: a column taken from a frame behaves as a copy. Not grouped by
    the column (pandas objects are not walked), so it comes back as exactly that; ``df2 = df``
    is one object, and comes back as one."""
    df = pd.DataFrame({"a": np.arange(10.0), "b": np.arange(10.0)})
    ns = {"df": df, "df2": df, "col": df["a"]}
    groups = groups_of(ns)
    assert frozenset({"df", "df2"}) in groups
    back = round_trip(ns, {"df", "df2"})
    assert back["df2"] is back["df"]
    col = restore_value(*_saved(capture_value("col", ns["col"])))
    back["df"].loc[0, "a"] = 99.0
    pd.testing.assert_series_equal(col, ns["col"])


def _saved(record: object) -> tuple[VariableRecord, bytes]:
    assert isinstance(record, VariableRecord)
    assert record.data is not None
    assert not record.buffers
    return record, record.data


def test_the_walk_is_bounded_whatever_the_value_holds() -> None:
    huge = [[i] for i in range(100_000)]
    assert len(reached_ids(huge, max_nodes=50)) <= 50
    # Sharing beyond the budget is not seen: documented, and the values are still saved.
    covars = CoVariables(max_nodes=50)
    covars.update("huge", huge)
    covars.update("last", huge[-1])
    assert covars.group("last") == {"last"}


def test_a_group_forms_again_when_a_member_is_rebound() -> None:
    a = [1]
    covars = CoVariables()
    covars.update("a", a)
    covars.update("b", a)
    assert covars.group("a") == {"a", "b"}
    covars.update("b", [2])
    assert covars.group("a") == {"a"}
    covars.remove("a")
    assert covars.group("b") == {"b"}


def test_a_group_that_cannot_be_pickled_together_says_so_and_each_value_is_captured_alone() -> None:
    import threading

    shared = [1]
    lock = threading.Lock()
    assert capture_group({"a": shared, "b": [shared, lock]}) is None


def test_out_of_band_buffers_are_used_by_the_restored_array_without_a_copy() -> None:
    arr = np.random.default_rng(1).random(100_000)
    record = capture_value("arr", arr)
    assert isinstance(record, VariableRecord)
    assert record.data is not None
    assert len(record.data) < 1_000  # the stream holds no array data
    (buffer,) = record.buffers
    assert buffer.size == arr.nbytes
    memory = bytearray(buffer.data or b"")
    back = restore_value(record, record.data, buffers=[memory])
    np.testing.assert_array_equal(back, arr)
    assert back.flags.writeable
    # The array's memory is the buffer handed in: no copy was made.
    assert _owner(back) is memory
    assert back.__array_interface__["data"][0] == np.frombuffer(memory).ctypes.data


def _owner(array: Any) -> Any:
    base = array
    while isinstance(base, np.ndarray):
        base = base.base
    return base.obj if isinstance(base, memoryview) else base


def test_small_buffers_stay_in_the_stream() -> None:
    small = np.arange(OUT_OF_BAND_MIN // 8 - 1, dtype=np.float64)
    assert serialize(small).buffers == ()
    assert len(serialize(np.arange(OUT_OF_BAND_MIN // 8, dtype=np.float64)).buffers) == 1


def test_a_record_refuses_buffers_it_does_not_have() -> None:
    record = capture_value("arr", np.arange(20_000.0))
    assert isinstance(record, VariableRecord)
    assert record.data is not None
    with pytest.raises(CaptureError, match="1 out-of-band buffers expected, 0 given"):
        restore_value(record, record.data, buffers=[])
    assert pickle.loads(record.data, buffers=[bytearray(record.buffers[0].data or b"")]).size


def test_a_group_over_the_budget_together_is_captured_one_by_one() -> None:
    from ipysession.capture.namespace import CaptureLimits

    shared = [1]
    big = np.zeros(100_000)  # 800 kB: under the limit alone, over it counted twice
    limits = CaptureLimits(max_variable_bytes=1_000_000)
    assert capture_group({"a": [shared, big], "b": [shared, big]}, limits=limits) is None
    assert capture_group({"a": [shared, big], "b": shared}, limits=limits) is not None


def test_views_of_every_shape_come_back_as_views() -> None:
    big = np.arange(120_000, dtype=np.float64).reshape(300, 400).copy()  # owns its memory
    ns = {
        "big": big,
        "reversed": big[::-1, ::2],
        "column": big[:, 7],
        "transposed": big.T,
        "flat": big.reshape(-1)[5:50_000],
    }
    back = round_trip(ns, set(ns))
    for name in ("reversed", "column", "transposed", "flat"):
        np.testing.assert_array_equal(back[name], ns[name])
        assert back[name].base is back["big"], name
