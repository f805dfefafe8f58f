"""The frontend layout channel: a comm target through which a frontend keeps an opaque layout.

A frontend (a JupyterLab or VS Code extension, a custom web page) may keep its own state with
the session: open panels, cell collapse state, scroll positions, anything JSON. ipysession does
not interpret it; it stores it with the session, encrypted, and hands it back after a restart.

Protocol
--------
Transport: Jupyter comms (``comm_open``/``comm_msg``/``comm_close`` on the shell channel,
replies as ``comm_msg`` on the IOPub channel), target name ``ipysession``. Available only in a
kernel (ipykernel); terminal IPython has no comms.

1. The frontend opens a comm to target ``ipysession``. The ``data`` of the ``comm_open`` may be
   empty (``{}``) or carry a first request, handled exactly like a request sent with
   ``comm_msg`` (so a frontend can fetch in one round trip).
2. Requests are the ``data`` of ``comm_msg`` messages on that comm, a JSON object:

   ``{"action": "save", "layout": <any JSON value>}``
       Store ``layout``, replacing the previous one (``null`` clears it). The layout, encoded
       as compact UTF-8 JSON, must be at most 262144 bytes (256 KiB); a value JSON cannot
       encode (``NaN``, ``Infinity``) is refused. A successful save marks the session changed,
       so the next autosave writes it.
   ``{"action": "fetch"}``
       Ask for the stored layout.

3. The kernel answers each request with one ``comm_msg`` on the same comm, its ``data`` being:

   - ``{"status": "ok"}`` after a save;
   - ``{"status": "ok", "layout": <the layout, or null when there is none>, "session": <name>,
     "session_id": <stable id>}`` after a fetch;
   - ``{"status": "error", "reason": "<text for a human>"}`` when the request is refused: the
     layout is too large or not JSON, ``layout`` is missing from a save, the action is missing
     or unknown, or the request is not a JSON object. Nothing is stored then.

   If a request carries an ``"id"`` (any JSON value), the reply carries the same ``"id"``, so a
   frontend with several requests in flight can match replies to requests.
4. Either side may close the comm. The kernel closes its comms when the extension unloads.
   Comms do not survive a kernel restart: after one, the frontend opens a new comm and fetches;
   by then the restored layout is in place.

The JupyterLab extension also sends ``subscribe`` (the reply carries the session's state and
the comm then receives ``state`` and ``notice`` messages pushed by the kernel) and the panel's
actions, which the extension registers in :attr:`LayoutChannel.actions`; docs/frontend-protocol.md
describes every message.

Example (frontend side)::

    comm = kernel.createComm("ipysession")
    comm.open({"action": "fetch", "id": 1})
    // <- {"status": "ok", "layout": {...} | null, "id": 1}
    comm.send({"action": "save", "layout": {"panels": ["left"]}, "id": 2})
    // <- {"status": "ok", "id": 2}

Kernel side, the manager owns one :class:`LayoutChannel`: ``register(shell)`` at load,
``set_layout(...)`` on restore, ``layout`` at save, ``on_change(layout)`` to hear of a frontend's
save and mark the session dirty, and ``close()`` at unload.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ipysession.errors import CaptureError, SessionError

if TYPE_CHECKING:
    from types import TracebackType

    from IPython.core.interactiveshell import InteractiveShell

__all__ = ["MAX_LAYOUT_BYTES", "TARGET_NAME", "LayoutChannel"]

log = logging.getLogger("ipysession")

TARGET_NAME = "ipysession"
MAX_LAYOUT_BYTES = 256 * 1024


def _encode(value: Any, max_bytes: int) -> bytes:
    """Compact UTF-8 JSON of ``value``; raises CaptureError when not JSON or too large."""
    try:
        encoded = json.dumps(
            value, separators=(",", ":"), ensure_ascii=False, allow_nan=False
        ).encode("utf-8")
    except (TypeError, ValueError) as exc:
        msg = f"The layout is not JSON ({exc})"
        raise CaptureError(msg, hint="Send a layout made of JSON values only") from exc
    if len(encoded) > max_bytes:
        msg = f"The layout is too large ({len(encoded)} bytes encoded; at most {max_bytes})"
        raise CaptureError(msg, hint="Keep the frontend layout small; store data elsewhere")
    return encoded


class LayoutChannel:
    """The ``ipysession`` comm target and the layout it holds.

    ``on_change``, when set, is called with the new layout (a fresh copy of the JSON value, or
    ``None`` when the frontend cleared it) after each successful save from a frontend; the
    manager sets it to keep the layout and mark the session dirty. Errors it raises are logged
    and the frontend still gets ``{"status": "ok"}``: the layout is stored in the channel.
    """

    def __init__(
        self, *, target_name: str = TARGET_NAME, max_bytes: int = MAX_LAYOUT_BYTES
    ) -> None:
        self.target_name = target_name
        self.max_bytes = max_bytes
        self.on_change: Callable[[Any], None] | None = None
        #: When set, a fetch reply also carries what it returns: the session's ``name`` and stable
        #: ``session_id``, so a frontend can keep the id in the notebook's metadata and follow the
        #: session when the notebook is renamed.
        self.identity: Callable[[], dict[str, str]] | None = None
        self._lock = threading.Lock()
        self._encoded: bytes | None = None
        #: More actions (name -> handler of the request, returning the reply's fields), which the
        #: extension registers: the panel's snapshots, restore, checkpoint... A handler raising
        #: :class:`~ipysession.errors.SessionError` answers ``{"status": "error"}`` with its text.
        self.actions: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {}
        #: The session's state (a ``{"type": "state", ...}`` message) for a subscribe reply.
        self.state: Callable[[], dict[str, Any]] | None = None
        #: Called with the request after a subscribe was answered (on the main thread): the
        #: extension sends what it kept for the frontend.
        self.on_subscribe: Callable[[dict[str, Any]], None] | None = None
        self._manager: Any = None
        self._comms: dict[str, Any] = {}
        self._subscribers: dict[str, Any] = {}

    # --- lifecycle ----------------------------------------------------------------------------

    @property
    def registered(self) -> bool:
        """Whether the comm target is registered with a kernel."""
        return self._manager is not None

    def register(self, shell: InteractiveShell) -> bool:
        """Register the comm target with ``shell``'s kernel.

        Returns ``False`` (and does nothing) when the shell runs outside a kernel, as in terminal
        IPython; ``True`` when the target is registered (also when it already was).
        """
        if self._manager is not None:
            return True
        manager = getattr(getattr(shell, "kernel", None), "comm_manager", None)
        if manager is None:
            return False
        manager.register_target(self.target_name, self._on_open)
        self._manager = manager
        log.debug("Registered the %s comm target", self.target_name)
        return True

    def close(self) -> None:
        """Unregister the target and close open comms. Safe to call twice. Keeps the layout."""
        manager, self._manager = self._manager, None
        if manager is None:
            return
        try:
            if getattr(manager, "targets", {}).get(self.target_name) == self._on_open:
                manager.unregister_target(self.target_name, self._on_open)
        except Exception:
            log.warning("Could not unregister the %s comm target", self.target_name, exc_info=True)
        comms, self._comms = list(self._comms.values()), {}
        self._subscribers = {}
        for comm in comms:
            try:
                comm.close()
            except Exception:
                log.warning("Could not close a %s comm", self.target_name, exc_info=True)

    def __enter__(self) -> LayoutChannel:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    # --- the layout ---------------------------------------------------------------------------

    @property
    def layout(self) -> Any:
        """The stored layout (a fresh copy of the JSON value), or ``None`` when there is none."""
        with self._lock:
            encoded = self._encoded
        return None if encoded is None else json.loads(encoded)

    def set_layout(self, value: Any) -> None:
        """Replace the layout (on restore). Does not call ``on_change``.

        Raises :class:`~ipysession.errors.CaptureError` when ``value`` is not JSON or encodes
        to more than ``max_bytes``; the previous layout is kept then.
        """
        encoded = None if value is None else _encode(value, self.max_bytes)
        with self._lock:
            self._encoded = encoded

    # --- comm handling ------------------------------------------------------------------------

    def _on_open(self, comm: Any, msg: dict[str, Any]) -> None:
        comm_id = str(getattr(comm, "comm_id", id(comm)))
        self._comms[comm_id] = comm
        comm.on_msg(lambda message: self._on_msg(comm, message))
        comm.on_close(lambda _message: self._forget(comm_id))
        data = _data(msg)
        if isinstance(data, dict) and "action" in data:
            self._reply(comm, data)

    def _on_msg(self, comm: Any, msg: dict[str, Any]) -> None:
        self._reply(comm, _data(msg))

    def _forget(self, comm_id: str) -> None:
        self._comms.pop(comm_id, None)
        self._subscribers.pop(comm_id, None)

    @property
    def subscribed(self) -> bool:
        """Whether a frontend listens for pushed messages (the JupyterLab extension is there)."""
        return bool(self._subscribers)

    def push(self, message: dict[str, Any]) -> int:
        """Send ``message`` to every subscribed comm (any thread); returns how many got it."""
        sent = 0
        for comm in list(self._subscribers.values()):
            try:
                comm.send(message)
                sent += 1
            except Exception:
                log.warning("Could not push to a %s comm", self.target_name, exc_info=True)
        return sent

    def _reply(self, comm: Any, data: Any) -> None:
        subscribe = isinstance(data, dict) and data.get("action") == "subscribe"
        try:
            reply = self._subscribe_reply() if subscribe else self.handle(data)
        except Exception:
            log.warning("Failed to handle a %s comm message", self.target_name, exc_info=True)
            reply = {"status": "error", "reason": "internal error in the kernel (see its log)"}
        if isinstance(data, dict) and "id" in data:
            reply["id"] = data["id"]
        try:
            comm.send(reply)
        except Exception:
            log.warning("Could not reply on a %s comm", self.target_name, exc_info=True)
            return
        if subscribe and reply.get("status") == "ok":
            self._subscribers[str(getattr(comm, "comm_id", id(comm)))] = comm
            callback = self.on_subscribe
            if callback is not None:
                try:
                    callback(data)
                except Exception:
                    log.warning("The %s subscribe callback failed", self.target_name, exc_info=True)

    def _subscribe_reply(self) -> dict[str, Any]:
        identity = self.identity() if self.identity is not None else {}
        state = self.state() if self.state is not None else None
        return {"status": "ok", "layout": self.layout, **identity, "state": state}

    def handle(self, data: Any) -> dict[str, Any]:
        """Answer one request (the ``data`` of a comm message) as the protocol says."""
        if not isinstance(data, dict):
            return _error("the request must be a JSON object")
        action = data.get("action")
        if action == "fetch":
            identity = self.identity() if self.identity is not None else {}
            return {"status": "ok", "layout": self.layout, **identity}
        if action == "save":
            if "layout" not in data:
                return _error("a save request needs a 'layout'")
            try:
                self.set_layout(data["layout"])
            except CaptureError as exc:
                return _error(exc.what)
            self._changed(self.layout)
            return {"status": "ok"}
        handler = self.actions.get(action) if isinstance(action, str) else None
        if handler is not None:
            try:
                return {"status": "ok", **handler(data)}
            except SessionError as exc:
                return _error(str(exc))
        expected = ", ".join(repr(a) for a in ("save", "fetch", "subscribe", *self.actions))
        if action is None:
            return _error(f"the request has no 'action' (expected one of {expected})")
        return _error(f"unknown action {action!r} (expected one of {expected})")

    def _changed(self, layout: Any) -> None:
        callback = self.on_change
        if callback is None:
            return
        try:
            callback(layout)
        except Exception:
            log.warning("The layout on_change callback failed", exc_info=True)


def _data(msg: Any) -> Any:
    content = msg.get("content") if isinstance(msg, dict) else None
    return content.get("data") if isinstance(content, dict) else None


def _error(reason: str) -> dict[str, Any]:
    return {"status": "error", "reason": reason}
