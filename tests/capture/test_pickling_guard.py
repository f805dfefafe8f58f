"""Unpickling under :func:`ipysession.capture.pickling.guarded` while a library is imported in
the background (session/imports_loading.py): a value that needs it is refused before anything
of it runs, so the main thread never imports it (and never waits on its import lock)."""

from __future__ import annotations

from typing import Any

import pytest

from ipysession.capture import pickling, tensors
from ipysession.session.loading import ModulePending, pending_module

torch = pytest.importorskip("torch")


def pending(library: str) -> Any:
    def check(module: str) -> None:
        if module.split(".")[0] == library:
            raise ModulePending(library)

    return check


def test_a_tensor_is_refused_before_its_storage_is_rebuilt_while_torch_is_pending(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    tensors.register_loaded()
    serialized = pickling.serialize(torch.arange(6, dtype=torch.float32))
    rebuilt: list[int] = []
    rebuild = tensors.rebuild_torch_storage

    def watched(*args: Any) -> Any:
        rebuilt.append(1)
        return rebuild(*args)

    # Unpickling looks the function up on the module: this is the one the stream calls.
    monkeypatch.setattr(tensors, "rebuild_torch_storage", watched)
    buffers = [bytearray(buffer) for buffer in serialized.buffers]
    with pytest.raises(ModulePending) as raised, pickling.guarded(pending("torch")):
        pickling.loads(serialized.data, buffers)
    assert pending_module(raised.value) == "torch"
    assert rebuilt == []  # rebuilding a storage imports torch: it never ran
    # Once torch is in, the same stream comes back whole.
    with pickling.guarded(pending("pandas")):
        back = pickling.loads(serialized.data, buffers)
    assert rebuilt == [1]
    assert torch.equal(back, torch.arange(6, dtype=torch.float32))
