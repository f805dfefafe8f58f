"""ipysession.capture.devices: where a restored tensor goes.

The decision is pure; its probe (what a library says about this machine's devices) is a fake
here because there is no GPU on these machines: it stands for "cuda:0 exists with N bytes free",
which only a GPU can answer for real. The real probes are exercised by tests/capture/test_tensors.py
(CPU builds: every CUDA device is missing).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from ipysession.capture.describe import MiB
from ipysession.capture.devices import (
    DeviceMap,
    Moved,
    Placement,
    Placements,
    device_map_from,
    place,
)


@dataclass
class FakeProbe:
    """Devices this fake machine has, with their free bytes (``None``: cannot tell)."""

    free: dict[str, int | None] = field(default_factory=dict)
    host: str = "cpu"
    asked: list[str] = field(default_factory=list)

    def is_host(self, device: str) -> bool:
        return device == "cpu"

    def available(self, device: str) -> bool:
        self.asked.append(device)
        return device in self.free

    def free_bytes(self, device: str) -> int | None:
        return self.free[device]


def test_a_tensor_goes_back_to_its_device_when_it_is_here_with_room() -> None:
    probe = FakeProbe({"cuda:0": 8 * 1024 * MiB})
    assert place("cuda:0", 100 * MiB, DeviceMap(), probe, margin=256 * MiB) == Placement(
        "cuda:0", "cuda:0", Moved.KEPT
    )
    assert place("cpu", 100, DeviceMap(), probe, margin=0) == Placement("cpu", "cpu", Moved.KEPT)


def test_a_missing_device_or_one_without_room_means_the_cpu() -> None:
    probe = FakeProbe({"cuda:0": 300 * MiB, "mps": None})
    missing = place("cuda:1", 10, DeviceMap(), probe, margin=0)
    assert missing == Placement("cuda:1", "cpu", Moved.MISSING, "cuda:1")
    assert missing.reason() == "there is no cuda:1 here"
    # 100 MiB fits in 300 MiB free, not with the 256 MiB margin kept for the next cell.
    full = place("cuda:0", 100 * MiB, DeviceMap(), probe, margin=256 * MiB)
    assert full == Placement("cuda:0", "cpu", Moved.NO_MEMORY, "cuda:0")
    assert full.reason() == "cuda:0 lacks the free memory"
    # A device whose free memory cannot be told is used.
    assert place("mps", 10**12, DeviceMap(), probe, margin=0).device == "mps"


def test_a_probe_that_fails_means_the_device_is_not_here() -> None:
    class Broken(FakeProbe):
        def available(self, device: str) -> bool:
            raise RuntimeError("driver")

    placement = place("cuda:0", 1, DeviceMap(), Broken(), margin=0)
    assert placement.why is Moved.MISSING


def test_device_map_names_one_device_for_all_or_some_devices_for_others() -> None:
    assert device_map_from("").target("cuda:1") == "cuda:1"
    assert device_map_from("cpu").target("cuda:1") == "cpu"
    mapping = device_map_from({"cuda:1": "cuda:0", "mps": "cpu"})
    assert mapping.target("cuda:1") == "cuda:0"
    assert mapping.target("cuda:2") == "cuda:2"
    assert mapping.target("mps:0") == "cpu"  # a key without an index covers every index
    probe = FakeProbe({"cuda:0": None})
    assert place("cuda:1", 1, mapping, probe, margin=0) == Placement(
        "cuda:1", "cuda:0", Moved.MAPPED
    )


@pytest.mark.parametrize("bad", [3, ["cpu"], " ", "cuda:x", {"cuda": 0}, {"9": "cpu"}])
def test_a_bad_device_map_is_refused_with_what_is_wrong(bad: object) -> None:
    with pytest.raises(ValueError, match="device"):
        device_map_from(bad)


def test_one_decision_per_saved_device_for_a_whole_value() -> None:
    # 3 storages of 100 MiB in a 300 MiB model, 350 MiB free: the first alone would fit, the
    # model does not. All three stay together on the CPU, and the device is asked once.
    probe = FakeProbe({"cuda:0": 350 * MiB})
    placements = Placements(DeviceMap(), 300 * MiB, margin=64 * MiB)
    decided = {placements.decide("torch", "cuda:0", 100 * MiB, probe).device for _ in range(3)}
    assert decided == {"cpu"}
    assert probe.asked == ["cuda:0"]
    assert placements.notes() == [
        "300.0 MiB of tensors saved on cuda:0, restored on cpu: cuda:0 lacks the free memory"
    ]


def test_a_failed_copy_is_counted_as_such() -> None:
    probe = FakeProbe({"cuda:0": None})
    placements = Placements(DeviceMap(), 10, margin=0)
    placement = placements.decide("torch", "cuda:0", 10, probe)
    assert placements.notes() == []  # back where it was saved: nothing to say
    placements.failed(placement, 10)
    assert placements.notes() == [
        "10 B of tensors saved on cuda:0, restored on cpu: copying to cuda:0 failed"
    ]
