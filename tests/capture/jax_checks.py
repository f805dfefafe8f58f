"""JAX arrays through ipysession's reducers; run by tests/capture/test_tensors.py in a child
process (``python -m tests.capture.jax_checks``), because JAX starts threads and later tests of
the same pytest run fork. CPU build of JAX: no GPU here, so ``gpu:0`` is a missing device.
"""

from __future__ import annotations

import pickle

import jax
import jax.numpy as jnp

from ipysession.capture import devices, tensors
from ipysession.capture.namespace import capture_value, restore_value
from ipysession.model import VariableRecord


def arrays_come_back_equal_on_their_device() -> None:
    small = jnp.arange(12, dtype=jnp.float32).reshape(3, 4)
    large = jnp.ones((400, 400), dtype=jnp.bfloat16)
    scalar = jnp.asarray(7, dtype=jnp.int32)
    record = capture_value("x", (small, large, scalar, small))
    assert isinstance(record, VariableRecord)
    # The large array went out of band, as its raw bytes.
    assert [b.size for b in record.buffers] == [large.nbytes]
    buffers = [bytearray(b.data or b"") for b in record.buffers]
    back = restore_value(record, record.data or b"", buffers=buffers)
    for before, after in zip((small, large, scalar), back, strict=False):
        assert isinstance(after, jax.Array)
        assert after.dtype == before.dtype, (after.dtype, before.dtype)
        assert after.shape == before.shape, (after.shape, before.shape)
        assert bool((after == before).all())
        assert after.devices() == before.devices()
    assert back[3] is back[0]


def a_missing_device_means_the_cpu() -> None:
    array = jnp.arange(5.0)
    host = pickle.PickleBuffer(bytearray(array.tobytes()))
    with devices.restoring(devices.DeviceMap(), array.nbytes) as placements:
        back = tensors.rebuild_jax_array(host, array.dtype, (5,), "gpu:0")
    assert next(iter(back.devices())).platform == "cpu"
    assert bool((back == array).all())
    notes = placements.notes()
    assert notes == ["20 B of tensors saved on gpu:0, restored on cpu:0: there is no gpu:0 here"]


if __name__ == "__main__":
    arrays_come_back_equal_on_their_device()
    a_missing_device_means_the_cpu()
