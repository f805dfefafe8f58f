"""Where a restored tensor goes: the device it was saved from, the one ``device_map`` names, or
the CPU when that device is missing here or lacks the memory.

The decision is pure (:func:`place`): it asks a :class:`DeviceProbe` (one per library, in
:mod:`~ipysession.capture.tensors`) whether a device exists and how much memory it has free, and
imports nothing itself. What was moved is collected while a value is restored
(:func:`restoring`), per variable, so the restore summary can say "model: 1.2 GiB of tensors
saved on cuda:1, restored on cpu: there is no cuda:1 here".

One decision per saved device per restored value: every storage of a model saved on ``cuda:0``
goes to the same place, so a model never comes back half on the GPU and half on the CPU because
memory ran out part way. The free-memory check compares the whole value's size (what the store
says it holds, an upper bound of what goes to that device) with the free memory, less a margin.
"""

from __future__ import annotations

import contextvars
import logging
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from enum import Enum
from typing import Protocol

from ipysession.capture.describe import MiB, format_bytes

__all__ = [
    "FREE_MEMORY_MARGIN",
    "DeviceMap",
    "DeviceProbe",
    "Moved",
    "Placement",
    "Placements",
    "current",
    "device_map_from",
    "place",
    "restoring",
]

logger = logging.getLogger("ipysession")

#: Memory left free on a device after a restore: the kernel's next cell needs some too, and a
#: restore must never be the thing that runs a GPU out of memory.
FREE_MEMORY_MARGIN = 256 * MiB


class Moved(Enum):
    """Why a tensor is (or is not) where it was saved."""

    KEPT = "kept"  # on the device it was saved from
    MAPPED = "mapped"  # where SessionManager.device_map sends it
    MISSING = "missing"  # the device is not here: on the CPU instead
    NO_MEMORY = "no memory"  # the device lacks free memory for it: on the CPU instead
    FAILED = "failed"  # the copy to the device failed: left on the CPU


@dataclass(frozen=True)
class Placement:
    """Where a tensor saved on ``saved`` goes (``device``), and why."""

    saved: str
    device: str
    why: Moved
    wanted: str | None = None  # the device it would have gone to, when it went to the CPU

    def reason(self) -> str:
        """Why it is not where it was saved, in words (empty when it is)."""
        wanted = self.wanted or self.saved
        mapped = "" if wanted == self.saved else f"SessionManager.device_map names {wanted}, but "
        if self.why is Moved.MISSING:
            return f"{mapped}there is no {wanted} here"
        if self.why is Moved.NO_MEMORY:
            return f"{mapped}{wanted} lacks the free memory"
        if self.why is Moved.FAILED:
            return f"{mapped}copying to {wanted} failed"
        if self.why is Moved.MAPPED:
            return "SessionManager.device_map"
        return ""


@dataclass(frozen=True)
class DeviceMap:
    """``SessionManager.device_map`` parsed: every device to one (``"cpu"``), or some devices to
    others (``{"cuda:1": "cuda:0"}``; a key without an index, ``"cuda"``, covers them all)."""

    everything: str | None = None
    mapping: Mapping[str, str] = field(default_factory=dict)

    def target(self, saved: str) -> str:
        """The device a tensor saved on ``saved`` should go to."""
        if self.everything is not None:
            return self.everything
        if saved in self.mapping:
            return self.mapping[saved]
        kind = saved.split(":", 1)[0]
        return self.mapping.get(kind, saved)


def device_map_from(value: object) -> DeviceMap:
    """Parse the trait's value: ``""`` (keep), a device name, or a dict of device names.

    Raises :class:`ValueError` naming what is wrong.
    """
    if value is None or value == "" or value == {}:
        return DeviceMap()
    if isinstance(value, str):
        return DeviceMap(everything=_device_name(value))
    if isinstance(value, Mapping):
        mapping = {_device_name(k): _device_name(v) for k, v in value.items()}
        return DeviceMap(mapping=mapping)
    msg = f"device_map must be a device name or a dict of device names, not {value!r}"
    raise ValueError(msg)


def _device_name(name: object) -> str:
    if not isinstance(name, str) or not name.strip():
        msg = f"a device is named by a string such as 'cpu' or 'cuda:0', not {name!r}"
        raise ValueError(msg)
    kind, _, index = name.strip().partition(":")
    if not kind.isidentifier() or (index and not index.isdigit()):
        msg = f"{name!r} is not a device name such as 'cpu', 'cuda' or 'cuda:0'"
        raise ValueError(msg)
    return name.strip()


class DeviceProbe(Protocol):
    """What one library says about the devices of this machine."""

    host: str  # its name for host memory ("cpu")

    def is_host(self, device: str) -> bool: ...

    def available(self, device: str) -> bool: ...

    def free_bytes(self, device: str) -> int | None:
        """Free memory on ``device`` now, or ``None`` when the library cannot tell."""
        ...


def place(
    saved: str, nbytes: int, device_map: DeviceMap, probe: DeviceProbe, *, margin: int
) -> Placement:
    """Where a value of ``nbytes`` saved on ``saved`` goes (never raises for a device)."""
    target = device_map.target(saved)
    why = Moved.KEPT if target == saved else Moved.MAPPED
    if probe.is_host(target):
        return Placement(saved, target, why)
    try:
        if not probe.available(target):
            return Placement(saved, probe.host, Moved.MISSING, target)
        free = probe.free_bytes(target)
    except Exception:
        logger.debug("asking about device %s failed", target, exc_info=True)
        return Placement(saved, probe.host, Moved.MISSING, target)
    if free is not None and nbytes + margin > free:
        return Placement(saved, probe.host, Moved.NO_MEMORY, target)
    return Placement(saved, target, why)


@dataclass
class _Tally:
    count: int = 0
    nbytes: int = 0


class Placements:
    """The device decisions made while one value (or group) is restored, and what moved.

    Made by :func:`restoring`; the rebuilding functions of :mod:`.tensors` ask :meth:`decide`
    for each storage and report copies that failed with :meth:`failed`.
    """

    def __init__(self, device_map: DeviceMap, value_bytes: int, *, margin: int) -> None:
        self.device_map = device_map
        self.value_bytes = value_bytes
        self.margin = margin
        self._decided: dict[tuple[str, str], Placement] = {}
        self._moved: dict[Placement, _Tally] = {}

    def decide(self, library: str, saved: str, nbytes: int, probe: DeviceProbe) -> Placement:
        """Where a storage of ``nbytes`` saved on ``saved`` goes; the first storage of a saved
        device decides for all of them (the check counts the whole value)."""
        key = (library, saved)
        placement = self._decided.get(key)
        if placement is None:
            size = max(nbytes, self.value_bytes)
            placement = place(saved, size, self.device_map, probe, margin=self.margin)
            self._decided[key] = placement
        self._count(placement, nbytes)
        return placement

    def failed(self, placement: Placement, nbytes: int) -> Placement:
        """A copy to ``placement.device`` failed: the storage stays in host memory."""
        self._count(placement, -nbytes)
        moved = Placement(placement.saved, "cpu", Moved.FAILED, placement.device)
        self._count(moved, nbytes)
        return moved

    def _count(self, placement: Placement, nbytes: int) -> None:
        if placement.why in (Moved.KEPT, Moved.MAPPED):  # where it was saved, or was asked
            return
        tally = self._moved.setdefault(placement, _Tally())
        tally.count += 1 if nbytes >= 0 else -1
        tally.nbytes += nbytes
        if tally.count <= 0:
            del self._moved[placement]

    def notes(self) -> list[str]:
        """One line per (saved device, new device, reason): what did not come back where it
        was saved or ``device_map`` sent it, e.g. "64.0 MiB of tensors saved on cuda:0,
        restored on cpu: there is no cuda:0 here"."""
        lines = []
        for placement, tally in self._moved.items():
            # Bytes, not a count: views share one storage, and storages are what is placed.
            lines.append(
                f"{format_bytes(tally.nbytes)} of tensors saved on {placement.saved}, restored "
                f"on {placement.device}: {placement.reason()}"
            )
        return lines


_CURRENT: contextvars.ContextVar[Placements | None] = contextvars.ContextVar(
    "ipysession_placements", default=None
)


def current() -> Placements:
    """The placements of the value being restored; outside :func:`restoring` (a value
    unpickled by hand), tensors go back where they were saved when that device is here."""
    placements = _CURRENT.get()
    if placements is None:
        return Placements(DeviceMap(), 0, margin=FREE_MEMORY_MARGIN)
    return placements


@contextmanager
def restoring(
    device_map: DeviceMap, value_bytes: int, *, margin: int = FREE_MEMORY_MARGIN
) -> Iterator[Placements]:
    """Decide devices for the one value (or group) restored inside, of ``value_bytes``."""
    placements = Placements(device_map, value_bytes, margin=margin)
    token = _CURRENT.set(placements)
    try:
        yield placements
    finally:
        _CURRENT.reset(token)
