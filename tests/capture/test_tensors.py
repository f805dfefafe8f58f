"""ipysession.capture.tensors: torch tensors and JAX arrays as raw buffers, back on their device.

Run on the CPU builds of torch and JAX (no GPU on these machines). The CUDA paths use the same
code with a device-to-host copy at save and a host-to-device copy at restore; what a CPU machine
can check of them is the missing-device path: a tensor whose record says it was saved on
``cuda:0`` (the reducer is wrapped so that the saved record names ``cuda:0``, as a GPU machine's
would) comes back on the CPU, and says so.
"""

from __future__ import annotations

import ctypes
import gc
import pickle
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from ipysession.capture import devices, pickling, tensors
from ipysession.capture.covars import CoVariables
from ipysession.capture.namespace import (
    CaptureLimits,
    capture_group,
    capture_value,
    restore_group,
    restore_value,
)
from ipysession.capture.pickling import digest_parts
from ipysession.model import VariableRecord
from tests.builders import KEY

torch = pytest.importorskip("torch")


def buffers_of(record: VariableRecord) -> list[bytearray]:
    """A record's out-of-band buffers as restore gets them: writable memory, as decrypted."""
    return [bytearray(b.data or b"") for b in record.buffers]


def round_trip(value: Any) -> Any:
    record = capture_value("x", value)
    assert isinstance(record, VariableRecord)
    assert record.skipped is None, record.skipped
    return restore_value(record, record.data or b"", buffers=buffers_of(record))


def group_round_trip(values: Mapping[str, Any]) -> dict[str, Any]:
    covars = CoVariables()
    for name, value in values.items():
        covars.update(name, value)
    records = capture_group(dict(values), views_of=covars.shared_ids(values))
    assert records is not None
    holder = next(r for r in records.values() if r.members)
    return restore_group(holder, holder.data or b"", buffers=buffers_of(holder))


def address_of(buffer: bytearray) -> int:
    return ctypes.addressof((ctypes.c_char * len(buffer)).from_buffer(buffer))


# --- torch: values -------------------------------------------------------------------------------


def test_a_tensor_comes_back_equal_with_its_dtype_shape_and_strides() -> None:
    for tensor in (
        torch.arange(100_000, dtype=torch.float32).reshape(1000, 100),
        torch.arange(24, dtype=torch.int64).reshape(2, 3, 4).permute(2, 0, 1),
        torch.randn(300, 300, dtype=torch.float64).t(),
        torch.ones(5, dtype=torch.bfloat16),
        torch.tensor([True, False]),
        torch.tensor(3.5),
        torch.empty(0, 7),
    ):
        back = round_trip(tensor)
        assert type(back) is torch.Tensor
        assert back.dtype == tensor.dtype
        assert back.shape == tensor.shape
        assert back.stride() == tensor.stride()
        assert torch.equal(back, tensor)


def test_a_large_tensor_goes_out_of_band_and_is_restored_on_the_decrypted_memory() -> None:
    tensor = torch.arange(1_000_000, dtype=torch.float32)
    record = capture_value("t", tensor)
    assert isinstance(record, VariableRecord)
    assert [b.size for b in record.buffers] == [tensor.nbytes]
    # The stream holds the layout, not the data.
    assert len(record.data or b"") < 4096
    buffers = buffers_of(record)
    back = restore_value(record, record.data or b"", buffers=buffers)
    # No copy: the tensor's memory is the buffer the store decrypted into.
    assert back.data_ptr() == address_of(buffers[0])
    del buffers
    gc.collect()
    # The tensor keeps that memory alive by itself.
    assert torch.equal(back, tensor)
    back[0] = 42.0  # and it is writable, as the saved tensor was
    assert back[0].item() == 42.0


def test_requires_grad_and_parameters_are_kept() -> None:
    leaf = torch.randn(3, requires_grad=True)
    frozen = torch.nn.Parameter(torch.randn(4, 4), requires_grad=False)
    param = torch.nn.Parameter(torch.randn(300, 300))
    non_leaf = leaf * 2  # saved as what it holds, a leaf that requires grad (as torch.save does)
    back_leaf, back_frozen, back_param, back_non_leaf = round_trip((leaf, frozen, param, non_leaf))
    assert back_leaf.requires_grad
    assert back_leaf.is_leaf
    assert type(back_frozen) is torch.nn.Parameter
    assert not back_frozen.requires_grad
    assert type(back_param) is torch.nn.Parameter
    assert back_param.requires_grad
    assert torch.equal(back_param, param)
    assert back_non_leaf.requires_grad
    assert torch.equal(back_non_leaf, non_leaf)
    back_param.sum().backward()  # a parameter that trains again
    assert back_param.grad is not None


def test_views_of_one_storage_share_it_again_within_a_value() -> None:
    big = torch.arange(200_000, dtype=torch.float32).reshape(2000, 100)
    rows, column = big[10:20], big[:, 3]
    back_big, back_rows, back_column, back_again = round_trip((big, rows, column, big))
    assert back_again is back_big
    storage = back_big.untyped_storage()
    assert back_rows.untyped_storage() is storage
    assert back_column.untyped_storage() is storage
    assert back_rows.storage_offset() == 1000
    assert back_column.stride() == (100,)
    back_big[15, 0] = -1.0
    assert back_rows[5, 0].item() == -1.0  # one memory, as before the restart


def test_a_tensor_shared_by_two_variables_and_its_views_are_one_group() -> None:
    a = torch.arange(100_000, dtype=torch.float32)
    values = {"a": a, "b": a, "view": a[5:10], "d": {"t": a}}
    covars = CoVariables()
    for name, value in values.items():
        covars.update(name, value)
    assert covars.group("view") == set(values)
    back = group_round_trip(values)
    assert back["b"] is back["a"]
    assert back["d"]["t"] is back["a"]
    assert back["view"].untyped_storage() is back["a"].untyped_storage()
    back["a"][6] = 0.5
    assert back["view"][1].item() == 0.5


def test_a_module_its_optimizer_and_its_state_dict_share_parameters_again() -> None:
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 2))
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    model(torch.randn(4, 8)).sum().backward()
    optimizer.step()
    values = {
        "model": model,
        "optimizer": optimizer,
        "state": model.state_dict(),
        "weight": model[0].weight,
    }
    covars = CoVariables()
    for name, value in values.items():
        covars.update(name, value)
    assert covars.group("model") == set(values)
    back = group_round_trip(values)
    back_model, back_optimizer = back["model"], back["optimizer"]
    assert back["weight"] is back_model[0].weight
    assert back_optimizer.param_groups[0]["params"][0] is back_model[0].weight
    assert back["state"]["0.weight"].untyped_storage() is back_model[0].weight.untyped_storage()
    original_state = optimizer.state[model[0].weight]
    restored_state = back_optimizer.state[back_model[0].weight]
    assert torch.equal(restored_state["exp_avg"], original_state["exp_avg"])
    assert torch.equal(restored_state["step"], original_state["step"])
    x = torch.randn(3, 8)
    assert torch.equal(back_model(x), model(x))
    # Training goes on: the restored optimizer steps the restored model's parameters.
    before = back_model[0].weight.detach().clone()
    back_model(x).sum().backward()
    back_optimizer.step()
    assert not torch.equal(back_model[0].weight, before)


def test_tensors_the_reducers_do_not_cover_are_pickled_by_torch_itself() -> None:
    sparse = torch.sparse_coo_tensor(
        torch.tensor([[0, 1], [1, 0]]), torch.tensor([1.0, 2.0]), check_invariants=True
    )
    conj = torch.tensor([1 + 2j]).conj()
    back_sparse, back_conj = round_trip((sparse, conj))
    assert torch.equal(back_sparse.to_dense(), sparse.to_dense())
    assert torch.equal(back_conj, conj)


def test_attributes_of_a_tensor_or_parameter_are_set_again() -> None:
    tagged = torch.arange(100_000.0)
    tagged.note = "mine"  # type: ignore[attr-defined]
    marked = torch.nn.Parameter(torch.ones(3))
    marked._is_initialized = True  # type: ignore[attr-defined]
    view = tagged[10:20]
    back_tagged, back_marked, back_view = round_trip((tagged, marked, view))
    assert back_tagged.note == "mine"
    assert type(back_marked) is torch.nn.Parameter
    assert back_marked._is_initialized is True
    assert torch.equal(back_tagged, tagged)
    # Still the raw-buffer path: one storage, shared with the view.
    assert back_view.untyped_storage() is back_tagged.untyped_storage()


def test_a_tensor_over_the_budget_is_refused_before_it_is_copied() -> None:
    big = torch.zeros(2 * 1024 * 1024)  # 8 MiB
    limits = CaptureLimits(max_variable_bytes=4 * 1024 * 1024)
    record = capture_value("big", {"w": big}, limits=limits)
    assert isinstance(record, VariableRecord)
    assert record.skipped is not None
    # Refused on the estimate (the storage's size), before any pickling copied it.
    assert "8.0 MiB (estimated)" in record.skipped
    assert "SessionManager.max_variable_bytes" in record.skipped


def test_a_reducer_that_fails_leaves_the_value_to_torch(monkeypatch: pytest.MonkeyPatch) -> None:
    tensors.register_loaded()

    def broken(tensor: Any) -> Any:
        raise RuntimeError("a tensor kind this module does not know")

    monkeypatch.setattr(tensors, "_reduce_torch_tensor", broken)
    monkeypatch.setitem(
        pickling._REDUCERS, torch.Tensor, tensors._guarded(tensors._reduce_torch_tensor)
    )
    assert torch.equal(round_trip(torch.arange(5)), torch.arange(5))


def test_a_storage_is_saved_through_its_reducer_or_not_at_all() -> None:
    tensors.register_loaded()
    storage = torch.arange(4.0).untyped_storage()  # torch's own pickle of it does not load
    back = round_trip(storage)
    assert type(back) is torch.UntypedStorage
    assert back.nbytes() == 16
    record = capture_value("m", torch.empty(4, device="meta").untyped_storage())
    assert isinstance(record, VariableRecord)
    assert record.skipped is not None
    assert "meta device holds no data" in record.skipped


def test_an_unchanged_tensor_hashes_to_its_stored_blob_ids() -> None:
    tensor = torch.randn(100_000)
    record = capture_value("t", tensor)
    assert isinstance(record, VariableRecord)
    parts = digest_parts(tensor, "pickle", KEY.content_hasher)
    assert parts is not None
    _stream, buffer_ids = parts
    assert buffer_ids == [KEY.content_id(b.data or b"") for b in record.buffers]
    tensor[0] += 1
    changed = digest_parts(tensor, "pickle", KEY.content_hasher)
    assert changed is not None
    assert changed[1] != buffer_ids


def test_a_damaged_storage_fails_with_its_size_not_silently() -> None:
    with pytest.raises(ValueError, match="1024 bytes came back with 8"):
        tensors.rebuild_torch_storage(bytearray(8), 1024, "cpu")


def test_nothing_imports_torch_or_jax_that_the_kernel_had_not_imported() -> None:
    code = (
        "import sys\n"
        "from ipysession.capture.namespace import capture_value\n"
        "capture_value('x', [1, 2])\n"
        "assert not {'torch', 'jax', 'cupy'} & set(sys.modules), sorted(sys.modules)\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


# --- devices -------------------------------------------------------------------------------------


@pytest.fixture
def saved_on_cuda(monkeypatch: pytest.MonkeyPatch) -> None:
    """Storages are saved as a CUDA machine saves them: their record names ``cuda:0``."""
    tensors.register_loaded()
    real = pickling._REDUCERS[torch.UntypedStorage]

    def as_if_on_cuda(storage: Any) -> Any:
        rebuild, (raw, nbytes, _device) = real(storage)
        return rebuild, (raw, nbytes, "cuda:0")

    monkeypatch.setitem(pickling._REDUCERS, torch.UntypedStorage, as_if_on_cuda)
    return


@pytest.mark.usefixtures("saved_on_cuda")
def test_a_tensor_saved_on_a_missing_device_comes_back_on_the_cpu_and_says_so() -> None:
    assert not torch.cuda.is_available()  # the CPU build: cuda:0 is missing here
    model = torch.nn.Linear(300, 100)
    record = capture_value("model", model)
    assert isinstance(record, VariableRecord)
    with devices.restoring(devices.DeviceMap(), record.size) as placements:
        back = restore_value(record, record.data or b"", buffers=buffers_of(record))
    assert back.weight.device.type == "cpu"
    assert torch.equal(back.weight, model.weight)
    assert placements.notes() == [
        "117.6 KiB of tensors saved on cuda:0, restored on cpu: there is no cuda:0 here"
    ]


def test_device_map_sends_tensors_where_it_says_and_a_missing_target_falls_back() -> None:
    tensor = torch.arange(10.0)
    record = capture_value("t", tensor)
    assert isinstance(record, VariableRecord)
    to_cpu = devices.device_map_from("cpu")
    with devices.restoring(to_cpu, record.size) as placements:
        back = restore_value(record, record.data or b"", buffers=buffers_of(record))
    assert back.device.type == "cpu"
    assert placements.notes() == []  # asked for: nothing to say
    to_gpu = devices.device_map_from({"cpu": "cuda:0"})
    with devices.restoring(to_gpu, record.size) as placements:
        back = restore_value(record, record.data or b"", buffers=buffers_of(record))
    assert back.device.type == "cpu"
    assert torch.equal(back, tensor)
    assert placements.notes() == [
        "40 B of tensors saved on cpu, restored on cpu: SessionManager.device_map names "
        "cuda:0, but there is no cuda:0 here"
    ]


def test_a_tensor_unpickled_outside_a_restore_goes_back_where_it_was_saved() -> None:
    tensors.register_loaded()
    serialized = pickling.serialize(torch.ones(3))
    back = pickle.loads(serialized.data, buffers=[bytearray(b) for b in serialized.buffers])
    assert torch.equal(back, torch.ones(3))


# --- JAX -----------------------------------------------------------------------------------------


def test_jax_arrays_round_trip_and_a_missing_device_means_the_cpu() -> None:
    # In a child process: JAX starts threads, and later tests of this run fork (pty, ssh).
    pytest.importorskip("jax")
    root = Path(__file__).resolve().parents[2]
    subprocess.run(
        [sys.executable, "-m", "tests.capture.jax_checks"], check=True, cwd=root, timeout=300
    )


def test_a_device_storage_is_copied_to_the_host_once() -> None:
    # The path a CUDA storage takes, run on a CPU one (the copy_ is the device-to-host copy).
    tensor = torch.arange(400_000, dtype=torch.float32)
    storage = tensor.untyped_storage()
    host = tensors._copied_to_host(storage, storage.nbytes())
    assert isinstance(host, pickle.PickleBuffer)
    with host.raw() as raw:
        assert raw.tobytes() == tensor.numpy().tobytes()
        owner = raw.obj.obj if isinstance(raw.obj, memoryview) else raw.obj
    (kept,) = pickling.serialize(host).buffers
    assert memoryview(kept).obj is owner  # the pickler kept that copy: no second one
    tensor += 1  # and it is a copy: the live tensor changes, the saved bytes do not
    assert bytes(kept) != tensor.numpy().tobytes()
