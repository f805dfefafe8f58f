"""torch tensors, JAX arrays and CuPy arrays as raw buffers, back on the device they came from.

Pickling a tensor the library's own way copies its storage into the pickle stream (and a CUDA
tensor first into a ``torch.save``-style byte string): several copies of what may be gigabytes.
Here each array type gets a reducer (:func:`~ipysession.capture.pickling.register_reducer`)
whose reduce tuple holds the raw memory as a :class:`pickle.PickleBuffer`: large ones go out of
band, each sealed as its own blob, and on restore the memory is rebuilt on the decrypted buffer
itself (no copy) and copied once to the device it came from.

What is saved
-------------
- **torch**: each storage once (``torch.UntypedStorage``: its bytes and its device, one
  device-to-host copy for a non-CPU one), and each tensor as (storage, storage offset, shape,
  strides, dtype, ``requires_grad``). Pickle's memo does the rest: tensors that share a storage
  (views, ``model.state_dict()`` values, a parameter that is also a variable) share it again, and
  ``b = a`` is one tensor. ``nn.Parameter`` is a parameter again, with its ``requires_grad``;
  modules, optimizers and state dicts are pickled as usual, their tensors through these
  reducers. Within a group of co-variables (:mod:`.covars`, which counts a tensor's storage as
  what it shares), sharing holds across variables.
- **JAX**: an array on one device, as its host bytes, dtype, shape and device
  (``platform:id``). Arrays sharded over several devices are pickled by JAX itself.
- **CuPy**: an array's bytes (one device-to-host copy), dtype, shape, memory order and device.
  Views of a CuPy array come back as copies.

What is not handled here (pickled by the library itself, slower, still correct): tensor
subclasses other than ``nn.Parameter``, sparse, quantized, conjugate- or negative-bit views,
``meta`` tensors. Attributes a tensor or parameter carries (``t.note = ...``, a library's marks)
are set again. A tensor's ``.grad`` is not saved (nor
by ``torch.save``). A view keeps its whole storage: ``small = big[:10]; del big`` saves all of
``big``'s memory, as ``torch.save`` does.

Where it goes back
------------------
Each storage asks :mod:`.devices` (``SessionManager.device_map``, is the device here, has it the
free memory); a value whose device is missing or full comes back on the CPU and the restore
summary says so per variable. The CUDA and CuPy paths are written device-generic; the tests here
run on the CPU builds of torch and JAX, and reach the missing-device path by saving with a
record that names ``cuda:0`` (see tests/capture/test_tensors.py).

Registration
------------
:func:`register_loaded` registers the reducers of the libraries already imported
(``sys.modules``), never importing one: a kernel that has not imported torch does not pay for
it. Capture calls it before each pass; the rebuilding functions import their library on restore
(the pickle names them), which is when a restored session needs it anyway.
"""

from __future__ import annotations

import logging
import pickle
from collections.abc import Callable
from typing import Any

from ipysession import memory
from ipysession.capture import covars, devices, pickling, sizing

__all__ = [
    "rebuild_cupy_array",
    "rebuild_jax_array",
    "rebuild_torch_parameter",
    "rebuild_torch_parameter_with_attributes",
    "rebuild_torch_storage",
    "rebuild_torch_tensor",
    "rebuild_torch_tensor_with_attributes",
    "register_loaded",
]

logger = logging.getLogger("ipysession")

_registered: set[str] = set()


def register_loaded() -> None:
    """Register the reducers of torch, JAX and CuPy, for those already imported (cheap: three
    lookups in ``sys.modules`` once all are registered)."""
    for name, register in _LIBRARIES:
        # Not one still being imported (in the background): registering would wait for it.
        if name not in _registered and sizing.imported(name) is not None:
            _registered.add(name)
            try:
                register()
            except Exception:
                logger.debug("registering the %s reducers failed", name, exc_info=True)


def _guarded(reducer: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """``reducer``, or the library's own pickling when it fails: a value this module cannot
    take apart (a tensor kind it does not know) is still saved, only slower."""

    def reduce(value: Any) -> Any:
        try:
            return reducer(value)
        except Exception:
            logger.debug("reducing a %s failed", type(value).__name__, exc_info=True)
            return NotImplemented

    return reduce


# --- torch ---------------------------------------------------------------------------------------


def _register_torch() -> None:
    import torch

    # Not guarded: torch's own pickling of an UntypedStorage makes a pickle that does not load
    # (torch 2.13), so a storage this reducer cannot take fails the save of its value, with
    # the reason, rather than saving what could never be restored.
    pickling.register_reducer(torch.UntypedStorage, _reduce_torch_storage)
    pickling.register_reducer(torch.Tensor, _guarded(_reduce_torch_tensor))
    pickling.register_reducer(torch.nn.Parameter, _guarded(_reduce_torch_parameter))
    for cls in (torch.Tensor, torch.nn.Parameter):
        covars.register_memory_owner(cls, _torch_storage_of)
        sizing.register_nbytes(cls, _torch_saved_bytes)


def _torch_storage_of(tensor: Any) -> object:
    # torch keeps one Python object per storage, so views of one storage name the same object.
    return tensor.untyped_storage()


def _torch_saved_bytes(tensor: Any) -> int:
    # What is saved: the whole storage (a view keeps all of it), not only the view's elements.
    return int(tensor.untyped_storage().nbytes())


def _plain_tensor(tensor: Any) -> bool:
    """A dense tensor whose storage, offset, shape, strides and dtype say everything."""
    import torch

    return (
        tensor.layout == torch.strided
        and not tensor.is_quantized
        and not tensor.is_conj()
        and not tensor.is_neg()
        and tensor.device.type != "meta"
    )


def _reduce_torch_storage(storage: Any) -> Any:
    device = storage.device
    if device.type == "meta":
        msg = "a tensor storage on the meta device holds no data to save"
        raise TypeError(msg)
    nbytes = storage.nbytes()
    host = (
        _host_bytes(storage, nbytes) if device.type == "cpu" else _copied_to_host(storage, nbytes)
    )
    return (rebuild_torch_storage, (host, nbytes, str(device)))


def _copied_to_host(storage: Any, nbytes: int) -> object:
    """The bytes of a device storage, copied once, straight into the host memory that the
    blob is sealed from (:func:`ipysession.memory.filled`: the pickler keeps it uncopied;
    ``.cpu()`` would have been a first copy and the pickler's snapshot a second)."""
    if nbytes == 0:
        return bytearray()
    import torch

    on_device = torch.empty(0, dtype=torch.uint8, device=storage.device)
    on_device.set_(storage, 0, (nbytes,), (1,))

    def copy_into(host: memoryview) -> None:
        torch.frombuffer(host, dtype=torch.uint8).copy_(on_device)  # the device-to-host copy

    return pickle.PickleBuffer(memory.filled(nbytes, copy_into))


def _host_bytes(host: Any, nbytes: int) -> object:
    """The bytes of a CPU storage, uncopied where numpy can expose them (the pickler then
    copies them once, to seal them while the tensor goes on changing)."""
    if nbytes == 0:
        return bytearray()
    import torch

    flat = torch.empty(0, dtype=torch.uint8).set_(host, 0, (nbytes,), (1,))
    try:
        # The array keeps `flat` (and so the storage) alive while the pickler holds the buffer.
        array: Any = flat.numpy()
        return pickle.PickleBuffer(array)
    except (ImportError, RuntimeError, TypeError):  # torch built without numpy
        return bytearray(flat.tolist())


def _reduce_torch_tensor(tensor: Any) -> Any:
    if not _plain_tensor(tensor):
        return NotImplemented
    args = (
        tensor.untyped_storage(),
        tensor.storage_offset(),
        tuple(tensor.shape),
        tuple(tensor.stride()),
        tensor.dtype,
        bool(tensor.requires_grad),
    )
    if tensor.__dict__:  # attributes of its own (a library's marks): set again on restore
        return (rebuild_torch_tensor_with_attributes, (*args, dict(tensor.__dict__)))
    return (rebuild_torch_tensor, args)


def _reduce_torch_parameter(param: Any) -> Any:
    if not _plain_tensor(param):
        return NotImplemented
    if param.__dict__:
        args = (param.detach(), bool(param.requires_grad), dict(param.__dict__))
        return (rebuild_torch_parameter_with_attributes, args)
    return (rebuild_torch_parameter, (param.detach(), bool(param.requires_grad)))


class _TorchProbe:
    host = "cpu"

    def is_host(self, device: str) -> bool:
        return device.split(":", 1)[0] == "cpu"

    def available(self, device: str) -> bool:
        import torch

        parsed = torch.device(device)
        if parsed.type == "cuda":
            index = parsed.index or 0
            return bool(torch.cuda.is_available()) and index < torch.cuda.device_count()
        if parsed.type == "mps":
            return bool(torch.backends.mps.is_available())
        try:
            torch.empty(0, device=parsed)
        except (RuntimeError, AssertionError):
            return False
        return True

    def free_bytes(self, device: str) -> int | None:
        import torch

        parsed = torch.device(device)
        if parsed.type == "cuda":
            free, _total = torch.cuda.mem_get_info(parsed.index or 0)
            return int(free)
        return None


@pickling.imports_when_called("torch")
def rebuild_torch_storage(buffer: Any, nbytes: int, device: str) -> Any:
    """A storage on ``buffer`` (host memory, used as it is), copied to its device when that is
    here (pickles name this function: keep its name and arguments)."""
    import torch

    if nbytes == 0:
        host = torch.empty(0, dtype=torch.uint8).untyped_storage()
    else:
        view = memoryview(buffer)
        if view.nbytes != nbytes:
            msg = f"a tensor storage of {nbytes} bytes came back with {view.nbytes}"
            raise ValueError(msg)
        if view.readonly:  # a small in-band buffer read as bytes: writable memory for torch
            buffer = bytearray(view)
        host = torch.frombuffer(buffer, dtype=torch.uint8).untyped_storage()
    placements = devices.current()
    placement = placements.decide("torch", device, nbytes, _TorchProbe())
    if placement.device == "cpu" or placement.device.startswith("cpu:"):
        return host
    try:
        return host.to(device=torch.device(placement.device))  # the one host-to-device copy
    except (RuntimeError, MemoryError):  # out of memory after all, a device gone meanwhile
        logger.debug("copying a storage to %s failed", placement.device, exc_info=True)
        placements.failed(placement, nbytes)
        return host


@pickling.imports_when_called("torch")
def rebuild_torch_tensor(
    storage: Any, offset: int, shape: Any, stride: Any, dtype: Any, requires_grad: bool
) -> Any:
    """A tensor on a restored storage (pickles name this function: keep it)."""
    import torch

    tensor = torch.empty(0, dtype=dtype, device=storage.device)
    tensor.set_(storage, offset, shape, stride)
    if requires_grad:
        tensor.requires_grad_(True)
    return tensor


@pickling.imports_when_called("torch")
def rebuild_torch_tensor_with_attributes(
    storage: Any,
    offset: int,
    shape: Any,
    stride: Any,
    dtype: Any,
    requires_grad: bool,
    attributes: dict[str, Any],
) -> Any:
    """:func:`rebuild_torch_tensor`, with the tensor's own attributes set again (pickles name
    this function: keep it)."""
    tensor = rebuild_torch_tensor(storage, offset, shape, stride, dtype, requires_grad)
    tensor.__dict__.update(attributes)
    return tensor


@pickling.imports_when_called("torch")
def rebuild_torch_parameter(data: Any, requires_grad: bool) -> Any:
    """An ``nn.Parameter`` on a restored tensor (pickles name this function: keep it)."""
    import torch

    return torch.nn.Parameter(data, requires_grad=requires_grad)


@pickling.imports_when_called("torch")
def rebuild_torch_parameter_with_attributes(
    data: Any, requires_grad: bool, attributes: dict[str, Any]
) -> Any:
    """:func:`rebuild_torch_parameter`, with its own attributes set again (pickles name this
    function: keep it)."""
    param = rebuild_torch_parameter(data, requires_grad)
    param.__dict__.update(attributes)
    return param


# --- JAX -----------------------------------------------------------------------------------------


def _register_jax() -> None:
    from jax._src.array import ArrayImpl

    pickling.register_reducer(ArrayImpl, _guarded(_reduce_jax_array))
    sizing.register_nbytes(ArrayImpl, _array_nbytes)


def _array_nbytes(array: Any) -> int:
    return int(array.nbytes)


def _reduce_jax_array(array: Any) -> Any:
    import numpy as np

    placed = array.devices()
    if len(placed) != 1 or not array.is_fully_addressable:
        return NotImplemented
    (device,) = placed
    # The one device-to-host copy (none on the CPU); C order (ascontiguousarray would make a
    # 0-d array 1-d).
    host = np.asarray(array, order="C")
    saved_on = f"{device.platform}:{device.id}"
    flat: Any = host.reshape(-1).view(np.uint8)
    raw = pickle.PickleBuffer(flat)
    return (rebuild_jax_array, (raw, host.dtype, tuple(array.shape), saved_on))


class _JaxProbe:
    host = "cpu:0"

    def is_host(self, device: str) -> bool:
        return device.split(":", 1)[0] == "cpu"

    def _device(self, device: str) -> Any:
        import jax

        platform, _, index = device.partition(":")
        try:
            found = jax.devices(platform)
        except RuntimeError:  # no backend for that platform here
            return None
        wanted = int(index or 0)
        return next((d for d in found if d.id == wanted), None)

    def available(self, device: str) -> bool:
        return self._device(device) is not None

    def free_bytes(self, device: str) -> int | None:
        found = self._device(device)
        stats = found.memory_stats() if found is not None else None
        if not stats or "bytes_limit" not in stats:
            return None
        return int(stats["bytes_limit"]) - int(stats.get("bytes_in_use", 0))


@pickling.imports_when_called("jax")
def rebuild_jax_array(buffer: Any, dtype: Any, shape: Any, device: str) -> Any:
    """A JAX array from host bytes, put on its device (pickles name this function: keep it)."""
    import jax
    import numpy as np

    host = np.frombuffer(buffer, dtype=dtype).reshape(shape)
    probe = _JaxProbe()
    placement = devices.current().decide("jax", device, host.nbytes, probe)
    target = probe._device(placement.device) or jax.devices("cpu")[0]
    return jax.device_put(host, target)


# --- CuPy ----------------------------------------------------------------------------------------


def _register_cupy() -> None:
    import cupy

    pickling.register_reducer(cupy.ndarray, _guarded(_reduce_cupy_array))
    sizing.register_nbytes(cupy.ndarray, _array_nbytes)


def _reduce_cupy_array(array: Any) -> Any:  # pragma: no cover - needs CUDA (not run here)
    import numpy as np

    order = "F" if array.flags.f_contiguous and not array.flags.c_contiguous else "C"
    host = np.asarray(array.get(order=order))  # the one device-to-host copy
    flat: Any = host.reshape(-1, order="A").view(np.uint8)
    raw = pickle.PickleBuffer(flat)
    saved_on = f"cuda:{array.device.id}"
    return (rebuild_cupy_array, (raw, host.dtype, tuple(host.shape), order, saved_on))


class _CupyProbe:  # pragma: no cover - needs CUDA (not run here)
    host = "cpu"

    def is_host(self, device: str) -> bool:
        return device.split(":", 1)[0] == "cpu"

    def available(self, device: str) -> bool:
        import cupy

        kind, _, index = device.partition(":")
        count = int(cupy.cuda.runtime.getDeviceCount())
        return kind == "cuda" and int(index or 0) < count

    def free_bytes(self, device: str) -> int | None:
        import cupy

        with cupy.cuda.Device(int(device.partition(":")[2] or 0)) as dev:
            free, _total = dev.mem_info
        return int(free)


@pickling.imports_when_called("cupy")
def rebuild_cupy_array(
    buffer: Any, dtype: Any, shape: Any, order: str, device: str
) -> Any:  # pragma: no cover - needs CUDA (not run here)
    """A CuPy array from host bytes on its device, or a numpy array when that device is not
    here (pickles name this function: keep it)."""
    import numpy as np

    host = np.frombuffer(buffer, dtype=dtype).reshape(shape, order=order)  # type: ignore[call-overload]
    placements = devices.current()
    probe = _CupyProbe()  # without CuPy here, "not available": the numpy array it was
    placement = placements.decide("cupy", device, host.nbytes, probe)
    if probe.is_host(placement.device):
        return host
    import cupy

    try:
        with cupy.cuda.Device(int(placement.device.partition(":")[2] or 0)):
            return cupy.asarray(host)
    except (cupy.cuda.memory.OutOfMemoryError, RuntimeError):
        placements.failed(placement, host.nbytes)
        return host


_LIBRARIES = (("torch", _register_torch), ("jax", _register_jax), ("cupy", _register_cupy))
