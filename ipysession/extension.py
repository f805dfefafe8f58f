"""Loading and unloading ipysession in an IPython shell or Jupyter kernel.

``%load_ext ipysession`` (or ``c.InteractiveShellApp.extensions = ["ipysession"]``):

1. creates the :class:`~ipysession.session.manager.SessionManager` (configured from the shell's
config) and starts its autosave writer (whose thread runs from the first write, or from the
moment a restore takes the session's lease: its heartbeat keeps the lease fresh),
2. restores the saved session of the same name, if ``autorestore`` says so,
3. registers the ``pre_run_cell``/``post_run_cell`` hooks, the ``%session`` magic, the
   ``ipysession`` comm target (in kernels), the manager with ``%config``, and a final save at
   exit.

``%unload_ext ipysession`` undoes all of it after a final save, so ``%reload_ext ipysession``
never doubles a hook. Nothing here lets a session problem escape into the user's cell or kill the
kernel: errors are logged and shown once.

Where messages go. ipysession never writes into the output of a cell that did not ask for it:

- The restore summary: in a kernel, output produced while the extension loads at startup belongs
  to no cell and frontends do not show it, so the summary (with any notice raised while restoring)
  is shown under the first cell that runs; in a terminal it is printed at once. It stays available
  from ``%session status``.
- Notices raised later (a key file created, a save that failed, a connection that changed state,
  a lease taken over): in a kernel they are shown only under a ``%session`` cell, the cell that
  asked; otherwise they go to ``%session status`` (its "Notices" section) and the log. In a
  terminal they are printed after the cell's own output, before the next prompt.
- With the JupyterLab extension subscribed on the ``ipysession`` comm (:mod:`ipysession.lab`),
  both go to it instead, as notifications: the summary as soon as it subscribes (before any cell
  runs), each later notice as it is raised.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import re
import sys
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ipysession import logfile, presentation
from ipysession.capture.frontend import LayoutChannel
from ipysession.errors import SessionError
from ipysession.magics import SessionMagics
from ipysession.session.manager import SessionManager
from ipysession.session.notices import NoticeKind
from ipysession.session.reports import RestoreReport

# What shows messages (display, and the views of `presentation`, which imports each module when
# a name of it is first used) and the JupyterLab link are imported where they are first needed,
# not here: a kernel with no saved session and nothing to say loads the extension without them
# (tests/test_import_cost.py).
if TYPE_CHECKING:
    from ipysession import display
    from ipysession.lab import LabLink

__all__ = ["get_manager", "load_ipython_extension", "unload_ipython_extension"]

log = logging.getLogger("ipysession")

_ATTR = "_ipysession_extension"

#: Seconds a background worker waits for the kernel's event loop to exist (the value then
#: arrives at the next cell instead).
_KERNEL_LOOP_WAIT = 60.0


class _Extension:
    """Everything one loaded instance registered, so that unloading can remove exactly that."""

    def __init__(self, shell: Any) -> None:
        self.shell = shell
        self.manager = SessionManager(shell=shell, parent=shell)
        self.manager.kernel_id = _kernel_id()
        self.magics = SessionMagics(shell, self.manager)
        self.layout = LayoutChannel()
        # What waits for the first cell (or for the JupyterLab extension to subscribe).
        self.pending: list[presentation.Deferred] = []
        self.lab: LabLink | None = None
        self.in_kernel = hasattr(shell, "kernel")
        # Whether the cell now running is a %session command: only such a cell shows notices.
        self.cell_asks = False
        self.closed = False
        self.log_handler: logging.Handler | None = None

    def load(self) -> None:
        manager = self.manager
        # First, so that what restoring logs is in the file; secrets known later are blanked too
        # (the filter asks the connections for them at every record).
        self.log_handler = logfile.install(manager.log_level, manager.connections.secret_strings)
        # Before the restore: a restore that takes the lease starts the writer's thread then,
        # before any value loads in the background (started later, it waited for the GIL behind
        # the loading threads: up to 40 ms of the kernel's start, with a 100 MB value).
        manager.start()
        self._restore_at_start()
        self.shell.events.register("pre_run_cell", self.pre_run_cell)
        self.shell.events.register("post_run_cell", self.post_run_cell)
        # A cell that names a name still arriving waits for it in its own output; one that
        # waited in vain is refused by the gate before any of its code runs.
        manager.arrivals.progress = self._waiting_line
        self.shell.ast_transformers.append(manager.arrivals.gate)
        self.shell.register_magics(self.magics)
        # `%config SessionManager.max_variable_bytes = ...` (what a skipped value's reason
        # suggests) changes only configurables the shell lists; unlisted, it did nothing.
        configurables = getattr(self.shell, "configurables", None)
        if isinstance(configurables, list) and manager not in configurables:
            configurables.append(manager)
        if self.layout.register(self.shell):
            from ipysession.lab import LabLink  # in a kernel only (see the imports above)

            self.lab = LabLink(manager, self.layout, self._take_pending)
            self.layout.on_change = self._layout_changed
            self.layout.identity = lambda: {
                "session": manager.name,
                "session_id": manager.workspace.session_id(manager.name),
            }
            if manager.layout is not None:
                try:
                    self.layout.set_layout(manager.layout)
                except SessionError as exc:
                    self._say(
                        _notice(
                            f"ipysession: layout not restored: {exc}",
                            level=presentation.Level.INFO,
                        ),
                        NoticeKind.OTHER,
                    )
        atexit.register(self.close)

    def _restore_at_start(self) -> None:
        manager = self.manager
        try:
            if manager.autorestore == "never":
                return
            if not manager.has_saved_session():
                # Said only when there is something to do about it: a renamed or moved notebook
                # whose session is still under its old path.
                orphans = manager.orphans() if manager.has_any_session() else []
                if orphans:
                    report = RestoreReport(session=manager.name, found=False, orphans=orphans)
                    self._say(_restore_view(report))
                return
            if manager.autorestore == "notify":
                self._say(
                    _notice(
                        f"ipysession: a saved session '{manager.name}' exists. Run "
                        "`%session restore` to bring it back, or `%session show` to see it.",
                        level=presentation.Level.INFO,
                    )
                )
                return
            # Large values arrive in the background; in a kernel its event loop binds each
            # between cells as soon as it is read (in a terminal: at the next cell).
            kernel = getattr(self.shell, "kernel", None)
            if kernel is not None:
                manager.loads.wake = lambda: _call_on_kernel_loop(kernel, manager.settle_loads)
                manager.loads.when_ready = lambda begin: _when_kernel_ready(kernel, begin)
            report = manager.restore(background=True)
            # Rendered when shown, so connections that came up meanwhile show as connected.
            self._say(lambda: _restore_view(report, manager.connections.states()))
        except SessionError as exc:
            # One message: what went wrong, and what the manager does about it (say, saving
            # this kernel's work as a fork so that files it cannot read stay untouched).
            lines = [
                f"ipysession could not restore the session: {exc}",
                *(raised.text for raised in manager.notices.take()),
            ]
            self._say(_notice(*lines, level=presentation.Level.ERROR))
        except Exception as exc:
            log.exception("ipysession restore failed")
            self._say(
                _notice(
                    f"ipysession could not restore the session ({type(exc).__name__}: {exc}). "
                    f"Your kernel is fine; see the log for details ({logfile.log_path()}).",
                    level=presentation.Level.ERROR,
                )
            )
        for raised in manager.notices.take():
            self._say(_notice(raised.text, level=presentation.Level.WARNING), raised.kind)

    def _say(
        self,
        message: presentation.Said | Callable[[], presentation.Said],
        kind: NoticeKind = NoticeKind.RESTORE,
    ) -> None:
        render = message if callable(message) else (lambda: message)
        if self.in_kernel:
            self.pending.append(presentation.Deferred(render, kind))
        else:
            _show(render())

    def _waiting_line(self) -> display.WaitingLine:
        from ipysession import display  # a cell waits for a value: see the imports above

        return display.WaitingLine(in_place=self.in_kernel)

    def _take_pending(self) -> list[presentation.Deferred]:
        pending, self.pending = self.pending, []
        return pending

    def _layout_changed(self, layout: Any) -> None:
        self.manager.set_layout(layout)

    def pre_run_cell(self, info: Any) -> None:
        self.cell_asks = _asks_for_session(getattr(info, "raw_cell", None))
        self.manager.pre_run_cell(info)

    def post_run_cell(self, result: Any) -> None:
        self.manager.post_run_cell(result)
        try:
            pending, self.pending = self.pending, []
            for deferred in pending:
                _show(deferred.render())
            notices = self.manager.notices.take()
            if notices and (not self.in_kernel or self.cell_asks):
                from ipysession import display  # something to show: see the imports above

                for notice in notices:
                    display.show(display.text_message(notice.text, level="warning"))
        except Exception:
            log.exception("ipysession could not show its messages")

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        for event, callback in (
            ("pre_run_cell", self.pre_run_cell),
            ("post_run_cell", self.post_run_cell),
        ):
            with contextlib.suppress(ValueError):
                self.shell.events.unregister(event, callback)
        with contextlib.suppress(ValueError):
            self.shell.ast_transformers.remove(self.manager.arrivals.gate)
        _unregister_magics(self.shell, self.magics)
        configurables = getattr(self.shell, "configurables", None)
        if isinstance(configurables, list):
            with contextlib.suppress(ValueError):
                configurables.remove(self.manager)
        if self.lab is not None:
            self.lab.close()
        self.layout.close()
        try:
            self.manager.close()
        except Exception:
            log.exception("ipysession final save failed")
        logfile.uninstall(self.log_handler)
        self.log_handler = None
        atexit.unregister(self.close)


def _call_on_kernel_loop(kernel: Any, callback: Callable[[], None]) -> None:
    """Run ``callback`` on the kernel's main thread, between messages (from any thread).

    ipykernel sets ``kernel.io_loop`` (tornado, whose ``add_callback`` is thread-safe) when it
    starts, after the extensions load: a worker done before then waits for it, a while.
    """
    deadline = time.monotonic() + _KERNEL_LOOP_WAIT
    loop = getattr(kernel, "io_loop", None)
    while loop is None and time.monotonic() < deadline:
        time.sleep(0.05)
        loop = getattr(kernel, "io_loop", None)
    if loop is not None:
        loop.add_callback(callback)


def _when_kernel_ready(kernel: Any, callback: Callable[[], None]) -> None:
    """Run ``callback`` on the kernel's main thread once its event loop runs, without waiting.

    While the extension loads at kernel start the loop does not exist yet: a thread that only
    sleeps until it does hands the callback over (it reads nothing, so it takes no time from
    the kernel's start).
    """
    loop = getattr(kernel, "io_loop", None)
    if loop is not None:
        loop.add_callback(callback)
        return
    threading.Thread(
        target=_call_on_kernel_loop,
        args=(kernel, callback),
        name="ipysession-ready",
        daemon=True,
    ).start()


def _show(said: presentation.Said) -> None:
    from ipysession import display  # something to show: see the imports above

    if isinstance(said, presentation.SummaryView):
        display.show(display.render_summary(said))
    else:
        display.show(display.render_notice(said))


def _notice(*lines: str, level: presentation.Level) -> presentation.Notice:
    return presentation.Notice(tuple(lines), level)


def _restore_view(
    report: RestoreReport, states: Mapping[str, str] | None = None
) -> presentation.Said:
    return presentation.restore_view(report, states)


def _unregister_magics(shell: Any, magics: SessionMagics) -> None:
    manager = shell.magics_manager
    for kind, registered in magics.magics.items():
        for name, method in registered.items():
            # Only remove what this instance registered, not a magic someone else put there since.
            if manager.magics[kind].get(name) == method:
                manager.magics[kind].pop(name, None)
    manager.registry.pop(type(magics).__name__, None)


def _asks_for_session(source: object) -> bool:
    """Whether a cell runs ``%session`` (on any line): that cell asked to hear from ipysession."""
    if not isinstance(source, str):
        return False
    return any(line.lstrip().startswith("%session") for line in source.splitlines())


def _kernel_id() -> str:
    """The id of the kernel we run in (from its connection file name), or "" outside kernels."""
    app_module = sys.modules.get("ipykernel.kernelapp")
    if app_module is None:
        return ""
    app_cls = app_module.IPKernelApp
    if not app_cls.initialized():
        return ""
    connection_file = str(getattr(app_cls.instance(), "connection_file", "") or "")
    match = re.match(r"kernel-(.+)\.json$", Path(connection_file).name)
    return match.group(1) if match else ""


def load_ipython_extension(shell: Any) -> None:
    if getattr(shell, _ATTR, None) is not None:
        return  # already loaded: never register hooks twice
    extension = _Extension(shell)
    setattr(shell, _ATTR, extension)
    try:
        extension.load()
    except Exception:
        log.exception("ipysession failed to load")
        extension.close()
        setattr(shell, _ATTR, None)
        raise


def unload_ipython_extension(shell: Any) -> None:
    extension = getattr(shell, _ATTR, None)
    if extension is None:
        return
    extension.close()
    setattr(shell, _ATTR, None)


def get_manager(shell: Any) -> SessionManager | None:
    """The SessionManager of the ipysession instance loaded in ``shell``, if any."""
    extension = getattr(shell, _ATTR, None)
    return extension.manager if extension is not None else None
