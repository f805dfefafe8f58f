"""The kernel side of the JupyterLab extension (labextension/), over the ``ipysession`` comm.

The extension subscribes when its kernel is ready, before any cell runs: the reply carries the
session's state for the status bar, and from then on the kernel pushes one ``state`` message
after each save (and each failed one) and a ``notice`` message for each notification (the
restore summary, key and file problems, connection changes) instead of text under a cell. The
panel's actions (snapshots, restore, checkpoint, the conflict dialog's answer, discard; the
details of its sections, reconnect and disconnect, merging or discarding a fork) are requests on
the same comm. docs/frontend-protocol.md describes every message.

Without a subscriber (another frontend, or JupyterLab without the extension) nothing changes:
notices wait for a ``%session`` cell and the restore summary for the first cell, as before.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections.abc import Callable
from typing import Any

from ipysession import presentation
from ipysession.capture.frontend import LayoutChannel
from ipysession.connections.records import mru_order
from ipysession.errors import SessionError, SessionNotFound
from ipysession.session.forks import fork_parent
from ipysession.session.manager import SessionManager
from ipysession.session.notices import NoticeKind, RaisedNotice
from ipysession.session.reports import Status

# What the messages say: `presentation` imports each view's module when a method first names it
# (PEP 562), not here: a kernel creates its LabLink when the extension loads, and with no
# session and no subscriber (or until one asks) it shows nothing, so its start should not pay
# for the views (tests/test_import_cost.py).

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
        take_pending: Callable[[], list[presentation.Deferred]],
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
                "replay": self._replay,
                "details": self._details,
                "reconnect": self._reconnect,
                "disconnect": self._disconnect,
                "merge": self._merge,
                "discard_fork": self._discard_fork,
            }
        )
        manager.watch_saves(self.saved)
        manager.notices.listener = self._notice
        manager.on_loads_settled = self._loads_settled

    def close(self) -> None:
        self.manager.watch_saves(None)
        self.manager.notices.listener = None
        self.manager.on_loads_settled = None

    # --- state --------------------------------------------------------------------------------

    def state(self) -> dict[str, Any]:
        """The state message, read now (main thread)."""
        manager = self.manager
        status = manager.status()
        with self._lock:
            self._status = status
        message = presentation.state_message(status)
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
        # Values the restore could rebuild only by running cells with side effects: the
        # extension asks once (a dialog) instead of leaving the user to find `%session replay`.
        message["replay"] = presentation.replay_consent_json(manager.replay_waiting())
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
        self.channel.push(presentation.state_message(status))

    def _push_state(self) -> None:
        self.channel.push(self.state())

    def _loads_settled(self) -> None:
        """Values restored in the background were bound (main thread): the status bar's
        "loading N of M" moves on, or ends."""
        if self.channel.subscribed:
            self._push_state()

    # --- notices ------------------------------------------------------------------------------

    def _notice(self, raised: RaisedNotice) -> bool:
        """A notice raised anywhere (any thread): a notification when the extension listens."""
        if not self.channel.subscribed:
            return False
        return self.channel.push(presentation.raised_message(raised)) > 0

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
            self.channel.push(presentation.notice_message(notice, deferred.kind))
        for raised in self.manager.notices.take():
            self.channel.push(presentation.raised_message(raised))

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
                presentation.notice_message(
                    presentation.Notice(
                        (
                            f"ipysession: this notebook was renamed; its session '{previous}' "
                            f"was not adopted: {exc}",
                        ),
                    ),
                    NoticeKind.RESTORE,
                )
            )
            return
        notice = presentation.restore_notice(report, manager.connections.states())
        lines = (
            f"ipysession: this notebook was renamed or moved; it took its session '{previous}' "
            f"with it (now '{manager.name}').",
            *notice.lines,
        )
        self.channel.push(
            presentation.notice_message(
                presentation.Notice(lines, notice.level), NoticeKind.RESTORE
            )
        )
        self._push_state()

    # --- the panel's actions ------------------------------------------------------------------

    def _snapshots(self, request: dict[str, Any]) -> dict[str, Any]:
        manager = self.manager
        name = manager.name
        store = manager.store
        rows = presentation.snapshot_rows(store.generations(name), store.checkpoints(name))
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
        notice = presentation.restore_notice(report, self.manager.connections.states())
        self.channel.push(presentation.notice_message(notice, NoticeKind.RESTORE))
        return {"summary": notice.text, "state": self.state()}

    def _checkpoint(self, request: dict[str, Any]) -> dict[str, Any]:
        label = request.get("label")
        if not isinstance(label, str):
            msg = "A checkpoint needs a 'label'"
            raise SessionError(msg, hint="Name the checkpoint")
        notice = presentation.save_notice(self.manager.save(checkpoint=label))
        self.channel.push(presentation.notice_message(notice, NoticeKind.SAVE))
        return {"summary": notice.text, "state": self.state()}

    def _conflict(self, request: dict[str, Any]) -> dict[str, Any]:
        choice = request.get("choice")
        report = self.manager.resolve_conflict(str(choice))
        if report is not None:
            notice = presentation.restore_notice(report, self.manager.connections.states())
            self.channel.push(presentation.notice_message(notice, NoticeKind.RESTORE))
        return {"state": self.state()}

    def _replay(self, request: dict[str, Any]) -> dict[str, Any]:
        """The replay dialog's yes: rebuild these names, running their cells' side effects (the
        user consented to exactly the cells the dialog listed)."""
        names = request.get("names")
        if not (isinstance(names, list) and names and all(isinstance(n, str) for n in names)):
            msg = "'names' must be a non-empty list of variable names"
            raise SessionError(msg, hint="Pick them from the replay dialog")
        manager = self.manager
        outcomes = manager.replay_values(names, consent=True)
        notice = presentation.replay_notice(outcomes, manager.name)
        self.channel.push(presentation.notice_message(notice, NoticeKind.RESTORE))
        return {"summary": notice.text, "state": self.state()}

    def _discard(self, request: dict[str, Any]) -> dict[str, Any]:
        path = self.manager.discard()
        return {"path": str(path) if path is not None else None}

    def _details(self, request: dict[str, Any]) -> dict[str, Any]:
        """The panel's sections beside the snapshots: not saved, connections, recent, forks."""
        manager = self.manager
        state = self.state()
        status = self._status
        connections = manager.connections
        states = connections.states()
        return {
            "state": state,
            "not_saved": presentation.not_saved_rows(status.skipped if status is not None else []),
            "connections": [
                self._connection(record.name, states)
                for record in mru_order(connections.snapshot())
            ],
            "recent": presentation.recent_json(connections.recent(), states),
            "forks": presentation.forks_json(
                manager.store.list(), self._fork_parents(), current=manager.name
            ),
        }

    def _connection(self, name: str, states: dict[str, str] | None = None) -> dict[str, Any]:
        connections = self.manager.connections
        states = connections.states() if states is None else states
        record = connections.snapshot()[name]
        return presentation.connection_json(
            record, states.get(name, "disconnected"), connections.status(name)
        )

    def _reconnect(self, request: dict[str, Any]) -> dict[str, Any]:
        name = _text(request, "name", "A connection's 'name'")
        self.manager.connections.reconnect([name])  # unknown: SessionNotFound, as the magic
        return {"connection": self._connection(name), "state": self.state()}

    def _disconnect(self, request: dict[str, Any]) -> dict[str, Any]:
        name = _text(request, "name", "A connection's 'name'")
        self.manager.connections.disconnect(name)
        return {"connection": self._connection(name), "state": self.state()}

    def _fork_parents(self) -> set[str]:
        manager = self.manager
        return {manager.name} | ({manager.fork_of} if manager.fork_of else set())

    def _fork(self, request: dict[str, Any]) -> str:
        fork = _text(request, "fork", "A fork's name ('fork')")
        if fork_parent(fork) not in self._fork_parents():
            msg = f"'{fork}' is not a fork of this notebook's session '{self.manager.name}'"
            raise SessionNotFound(msg, hint="Pick a fork from the panel's Forks section")
        return fork

    def _merge(self, request: dict[str, Any]) -> dict[str, Any]:
        """``%session merge``: a dry run unless ``dry_run`` is false (the panel previews first)."""
        fork = self._fork(request)
        dry_run = request.get("dry_run", True)
        if not isinstance(dry_run, bool):
            msg = "'dry_run' must be true or false"
            raise SessionError(msg, hint="Preview with true, then merge with false")
        parent, plan, generation = self.manager.merge_fork(fork, write=not dry_run)
        preview = presentation.merge_preview(fork, parent, plan, generation).as_json()
        return {"merge": preview, "summary": preview["summary"], "state": self.state()}

    def _discard_fork(self, request: dict[str, Any]) -> dict[str, Any]:
        """Deletes a saved fork of this session (refused while a live kernel saves to it)."""
        fork = self._fork(request)
        path = self.manager.delete(fork)
        return {"path": str(path), "summary": presentation.fork_discarded(fork, path)}


def _text(request: dict[str, Any], key: str, what: str) -> str:
    value = request.get(key)
    if not isinstance(value, str) or not value:
        msg = f"{what} is missing"
        raise SessionError(msg, hint="Pick one from the panel")
    return value
