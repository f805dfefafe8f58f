"""Talking to the OS keyring: the only module that imports ``keyring``, and only lazily.

Every keyring call runs on one daemon worker thread under a deadline (:func:`keyring_call`): on
headless Linux, WSL and SSH logins ``import keyring`` and backend discovery can stall for minutes,
and an unlock prompt nobody can see hangs forever. A call that has not returned by its deadline is
abandoned (:class:`KeyringHung`; its thread is left to finish on its own, and only one keyring call
runs at a time, so hung calls do not pile up). A call that raises is classified
(:class:`KeyringFailed`: ``"locked"``, ``"unavailable"`` or ``"error"``), so that "locked" or
"prompt dismissed" is never mistaken for "no key yet".

The functions run on the worker (:func:`keyring_read`, :func:`keyring_write`,
:func:`keyring_delete`) also classify the backend: keyring's ``fail`` and ``null`` backends, a
chainer with nothing to chain and a backend with a negative priority mean "no keyring"; backends
that store secrets in plain text (``keyrings.alt``, any backend whose class says "plaintext", or
any backend keyring itself does not recommend, priority below 1) are refused unless the caller
allows them. Only items of service :data:`KEYRING_SERVICE` are touched. What to do with the answers
(which key, the marker, falling back to a key file) is :mod:`ipysession.keys.resolution`'s job.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final, TypeVar

__all__ = [
    "BOTH_ITEMS",
    "KEYRING_ITEM",
    "KEYRING_PENDING_ITEM",
    "KEYRING_SERVICE",
    "KeyringFailed",
    "KeyringHung",
    "Reply",
    "keyring_call",
    "keyring_delete",
    "keyring_read",
    "keyring_write",
]

KEYRING_SERVICE: Final = "ipysession"
KEYRING_ITEM: Final = "master-key"
KEYRING_PENDING_ITEM: Final = "master-key-pending"
BOTH_ITEMS: Final = (KEYRING_ITEM, KEYRING_PENDING_ITEM)

_T = TypeVar("_T")


class KeyringHung(Exception):
    """A keyring call did not return before the deadline."""


class KeyringFailed(Exception):
    """A keyring call raised; ``kind`` is ``"locked"``, ``"unavailable"`` or ``"error"``."""

    def __init__(self, message: str, *, kind: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message


@dataclass(frozen=True)
class Reply:
    """What a keyring read found, computed on the worker thread."""

    backend_name: str
    unusable: str | None
    values: dict[str, str | None] = field(repr=False)


class _Worker:
    """One keyring call at a time, on a daemon thread."""

    def __init__(self) -> None:
        self._call_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._what = ""

    def call(self, fn: Callable[[], _T], *, deadline: float, what: str) -> _T:
        """See :func:`keyring_call`."""
        if not self._call_lock.acquire(timeout=_remaining(deadline)):
            raise KeyringHung(what)
        try:
            previous = self._thread
            if previous is not None and previous.is_alive():
                previous.join(_remaining(deadline))
                if previous.is_alive():
                    message = f"{what} (an earlier call, {self._what}, has not returned yet)"
                    raise KeyringHung(message)
            results: list[_T] = []
            failures: list[KeyringFailed] = []

            def run() -> None:
                try:
                    results.append(fn())
                except KeyringFailed as exc:
                    failures.append(exc)
                except Exception as exc:  # noqa: BLE001 - keyring backends raise anything
                    failures.append(_classify_failure(exc))

            thread = threading.Thread(target=run, name="ipysession-keyring", daemon=True)
            self._thread, self._what = thread, what
            thread.start()
            thread.join(_remaining(deadline))
            if thread.is_alive():
                raise KeyringHung(what)
        finally:
            self._call_lock.release()
        if failures:
            raise failures[0]
        if not results:
            msg = f"{what} ended without a result"
            raise KeyringFailed(msg, kind="error")
        return results[0]


_WORKER = _Worker()


def keyring_call(fn: Callable[[], _T], *, deadline: float, what: str) -> _T:
    """Run ``fn`` on the keyring worker thread; raise :class:`KeyringHung` at ``deadline``.

    ``deadline`` is a :func:`time.monotonic` time; ``what`` says what the call does, for messages.
    An exception ``fn`` raises is re-raised here as a :class:`KeyringFailed`.
    """
    return _WORKER.call(fn, deadline=deadline, what=what)


def _remaining(deadline: float) -> float:
    return max(0.0, deadline - time.monotonic())


# --------------------------------------------------------------------------------------------
# What runs on the keyring worker thread. Only these functions import keyring.


def _classify_failure(exc: Exception) -> KeyringFailed:
    message = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    try:
        from keyring.errors import KeyringLocked, NoKeyringError
    except Exception:  # noqa: BLE001 - a broken keyring install means no keyring
        return KeyringFailed(f"keyring cannot be imported ({message})", kind="unavailable")
    if isinstance(exc, KeyringLocked):
        return KeyringFailed(message, kind="locked")
    if isinstance(exc, (NoKeyringError, ImportError)):
        return KeyringFailed(message, kind="unavailable")
    return KeyringFailed(message, kind="error")


def _backend_name(backend: object) -> str:
    cls = type(backend)
    return f"{cls.__module__}.{cls.__qualname__}"


def _looks_plaintext(backend: object) -> bool:
    cls = type(backend)
    if cls.__module__ == "keyrings.alt" or cls.__module__.startswith("keyrings.alt."):
        return True
    if "plaintext" in _backend_name(backend).lower():
        return True
    return str(getattr(cls, "scheme", "")).lower() == "no encryption"


def _unusable_reason(backend: Any, allow_plaintext: bool) -> str | None:
    """Why ``backend`` cannot hold the master key, or ``None`` if it can."""
    from keyring.backends import chainer, fail, null

    name = _backend_name(backend)
    if isinstance(backend, fail.Keyring):
        return "no OS keyring available (keyring's fail backend)"
    if isinstance(backend, null.Keyring):
        return "no OS keyring available (keyring's null backend, which drops every write)"
    if isinstance(backend, chainer.ChainerBackend):
        chained = list(backend.backends)
        if not chained:
            return "no OS keyring available (keyring's chainer backend has nothing to chain)"
        for each in chained:
            reason = _unusable_reason(each, allow_plaintext)
            if reason is not None:
                return f"keyring's chainer backend includes an unusable backend: {reason}"
        return None
    try:
        priority = float(type(backend).priority)
    except Exception as exc:  # noqa: BLE001 - keyring's way of saying "not viable here"
        return f"keyring backend {name} is not usable here ({type(exc).__name__}: {exc})"
    if priority < 0:
        return f"no OS keyring available ({name} has priority {priority:g}: not a keyring)"
    if not allow_plaintext and (_looks_plaintext(backend) or priority < 1):
        return (
            f"keyring backend {name} stores secrets in plain text or is not recommended by "
            f"keyring (priority {priority:g}); it is refused unless allow_plaintext_keyring=True"
        )
    return None


def keyring_read(items: tuple[str, ...], allow_plaintext: bool) -> Reply:
    import keyring

    backend = keyring.get_keyring()
    name = _backend_name(backend)
    unusable = _unusable_reason(backend, allow_plaintext)
    if unusable is not None:
        return Reply(name, unusable, {})
    values: dict[str, str | None] = {}
    for item in items:
        value = backend.get_password(KEYRING_SERVICE, item)
        values[item] = value if isinstance(value, str) else None
    return Reply(name, None, values)


def keyring_write(item: str, value: str, allow_plaintext: bool) -> str | None:
    """Store ``value`` and return what the keyring gives back for it (to verify)."""
    import keyring

    backend = keyring.get_keyring()
    unusable = _unusable_reason(backend, allow_plaintext)
    if unusable is not None:
        raise KeyringFailed(unusable, kind="unavailable")
    try:
        backend.set_password(KEYRING_SERVICE, item, value)
    except Exception as exc:  # noqa: BLE001 - classified, reported without its message
        # Keep only the type: a backend could echo what it was asked to store.
        kind = _classify_failure(exc).kind
        raise KeyringFailed(type(exc).__name__, kind=kind) from None
    read_back = backend.get_password(KEYRING_SERVICE, item)
    return read_back if isinstance(read_back, str) else None


def keyring_delete(item: str) -> None:
    import keyring
    from keyring.errors import PasswordDeleteError

    with contextlib.suppress(PasswordDeleteError):
        keyring.get_keyring().delete_password(KEYRING_SERVICE, item)
