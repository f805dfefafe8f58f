"""The kernel side of the JupyterLab extension (labextension/), over the ``ipysession`` comm.

The extension subscribes when its kernel is ready, before any cell runs: the reply carries the
session's state for the status bar, and from then on the kernel pushes one ``state`` message
after each save (and each failed one) and a ``notice`` message for each notification (the
restore summary, key and file problems, connection changes) instead of text under a cell. The
panel's actions (snapshots, restore, checkpoint, the conflict dialog's answer, discard) are
requests on the same comm. docs/frontend-protocol.md describes every message.

Without a subscriber (another frontend, or JupyterLab without the extension) nothing changes:
notices wait for a ``%session`` cell and the restore summary for the first cell, as before.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections.abc import Callable
from typing import Any

from ipysession.capture.frontend import LayoutChannel
from ipysession.errors import SessionError
from ipysession.presentation import restore_notice, save_notice, snapshot_rows
from ipysession.presentation.base import Notice
from ipysession.presentation.frontend import (
    Deferred,
    notice_message,
    raised_message,
    state_message,
)
from ipysession.session.manager import SessionManager
from ipysession.session.notices import NoticeKind, RaisedNotice
from ipysession.session.reports import Status

__all__ = ["LabLink"]

log = logging.getLogger("ipysession")


class LabLink:
    """Connects a :class:`SessionManager` to the subscribed JupyterLab extension.

    ``take_pending``: hands over (and forgets) what the extension kept to show under the first
    cell (the restore summary and the notices of the start), so the first subscriber shows it as
    notifications instead.
    """

    def __init__(
        self,
        manager: SessionManager,
        channel: LayoutChannel,
        take_pending: Callable[[], list[Deferred]],
    ) -> None:
        self.manager = manager
        self.channel = channel
        self._take_pending = take_pending
        self._lock = threading.Lock()
        # The last status read on the main thread: the writer thread only updates what a save
        # changes, since reading the records from it would race the cell that changes them.
        self._status: Status | None = None
        channel.state = self.state
        channel.on_subscribe = self._subscribed
        channel.actions.update(
            {
                "state": lambda _request: {"state": self.state()},
                "snapshots": self._snapshots,
                "restore": self._restore,
                "checkpoint": self._checkpoint,
                "conflict": self._conflict,
                "discard": self._discard,
            }
        )
        manager.watch_saves(self.saved)
        manager.notices.listener = self._notice

    def close(self) -> None:
        self.manager.watch_saves(None)
        self.manager.notices.listener = None

    # --- state --------------------------------------------------------------------------------

    def state(self) -> dict[str, Any]:
        """The state message, read now (main thread)."""
        manager = self.manager
        status = manager.status()
        with self._lock:
            self._status = status
        message = state_message(status)
        original = manager.sharing.conflict_original()
        # The conflict dialog's question: another kernel held the session when this one opened
        # it; what was done (``taken``) and what is configured (the dialog's default button).
        message["conflict"] = (
            None
            if original is None
            else {
                "session": original,
                "holder": status.lease_holder.describe() if status.lease_holder else None,
                "taken": "readonly" if manager.read_only else "fork",
                "configured": manager.on_conflict,
            }
        )
        return message

    def saved(self) -> None:
        """After a save or a failed one (writer thread): one state message to the subscribers."""
        if not self.channel.subscribed:
            return
        with self._lock:
            status = self._status
        if status is None:
            return
        manager = self.manager
        status = dataclasses.replace(
            status,
            last_save=manager.last_save,
            last_generation=manager.last_generation,
            last_error=manager.last_error,
            # Called while the write is still counted as in flight: this one is done.
            pending=False,
            read_only=manager.read_only,
            fork_of=manager.fork_of,
            autosave=manager.autosave,
        )
        with self._lock:
            self._status = status
        self.channel.push(state_message(status))

    def _push_state(self) -> None:
        self.channel.push(self.state())

    # --- notices ------------------------------------------------------------------------------

    def _notice(self, raised: RaisedNotice) -> bool:
        """A notice raised anywhere (any thread): a notification when the extension listens."""
        if not self.channel.subscribed:
            return False
        return self.channel.push(raised_message(raised)) > 0

    def _subscribed(self, request: dict[str, Any]) -> None:
        """After a subscribe reply: adopt the notebook's session after a rename, then send what
        waited for the first cell."""
        self._adopt_renamed(request)
        for deferred in self._take_pending():
            try:
                notice = deferred.notice()
            except Exception:
                log.exception("ipysession could not build a start message")
                continue
            self.channel.push(notice_message(notice, deferred.kind))
        for raised in self.manager.notices.take():
            self.channel.push(raised_message(raised))

    def _adopt_renamed(self, request: dict[str, Any]) -> None:
        """The notebook's metadata names the session it had: when the notebook was renamed or
        moved (that session's notebook is gone) and this name has no session of its own, the
        kernel adopts it, as ``%session adopt`` would, and says so."""
        wanted_id = request.get("session_id")
        previous = request.get("session")
        manager = self.manager
        if not isinstance(wanted_id, str) or not isinstance(previous, str):
            return
        if previous == manager.name or previous not in manager.orphans(limit=1000):
            return
        try:
            if manager.store.read(previous).session.id != wanted_id:
                return  # another notebook's session that happens to have had this name
            report = manager.adopt(previous)
        except SessionError as exc:
            self.channel.push(
                notice_message(
                    Notice(
                        (
                            f"ipysession: this notebook was renamed; its session '{previous}' "
                            f"was not adopted: {exc}",
                        ),
                    ),
                    NoticeKind.RESTORE,
                )
            )
            return
        notice = restore_notice(report, manager.connections.states())
        lines = (
            f"ipysession: this notebook was renamed or moved; it took its session '{previous}' "
            f"with it (now '{manager.name}').",
            *notice.lines,
        )
        self.channel.push(notice_message(Notice(lines, notice.level), NoticeKind.RESTORE))
        self._push_state()

    # --- the panel's actions ------------------------------------------------------------------

    def _snapshots(self, request: dict[str, Any]) -> dict[str, Any]:
        manager = self.manager
        name = manager.name
        store = manager.store
        rows = snapshot_rows(store.generations(name), store.checkpoints(name))
        return {"session": name, "snapshots": [row.as_json() for row in rows]}

    def _restore(self, request: dict[str, Any]) -> dict[str, Any]:
        generation = request.get("generation")
        checkpoint = request.get("checkpoint")
        variables = request.get("variables")
        if generation is not None and not isinstance(generation, int):
            msg = "'generation' must be a number"
            raise SessionError(msg, hint="Pick one from the panel")
        if checkpoint is not None and not isinstance(checkpoint, str):
            msg = "'checkpoint' must be a label"
            raise SessionError(msg, hint="Pick one from the panel")
        if variables is not None and not (
            isinstance(variables, list) and all(isinstance(v, str) for v in variables)
        ):
            msg = "'variables' must be a list of names"
            raise SessionError(msg, hint="Name variables")
        report = self.manager.restore(
            generation=generation, checkpoint=checkpoint, variables=variables
        )
        notice = restore_notice(report, self.manager.connections.states())
        self.channel.push(notice_message(notice, NoticeKind.RESTORE))
        return {"summary": notice.text, "state": self.state()}

    def _checkpoint(self, request: dict[str, Any]) -> dict[str, Any]:
        label = request.get("label")
        if not isinstance(label, str):
            msg = "A checkpoint needs a 'label'"
            raise SessionError(msg, hint="Name the checkpoint")
        notice = save_notice(self.manager.save(checkpoint=label))
        self.channel.push(notice_message(notice, NoticeKind.SAVE))
        return {"summary": notice.text, "state": self.state()}

    def _conflict(self, request: dict[str, Any]) -> dict[str, Any]:
        choice = request.get("choice")
        report = self.manager.resolve_conflict(str(choice))
        if report is not None:
            notice = restore_notice(report, self.manager.connections.states())
            self.channel.push(notice_message(notice, NoticeKind.RESTORE))
        return {"state": self.state()}

    def _discard(self, request: dict[str, Any]) -> dict[str, Any]:
        path = self.manager.discard()
        return {"path": str(path) if path is not None else None}
