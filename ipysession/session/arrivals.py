"""Names still arriving, and the cell that waits for them.

Some names of the user namespace are on their way when a cell starts: a connection being made in
the background after a restart (:class:`~ipysession.connections.live.ConnectionArrivals`), a
large value being loaded (:class:`~ipysession.session.loading.BackgroundLoads`), a heavy import
still importing (:class:`~ipysession.session.imports_loading.BackgroundImports`).
:class:`Arrivals` is the one mechanism for all of them:

1. before each cell (the manager's ``pre_run_cell``), it asks each :class:`ArrivalSource` what is
   arriving. Nothing arriving: the cell goes on at once, its source not even parsed;
2. otherwise it reads which names the cell mentions (:func:`ipysession.capture.cellnames.
   cell_names`, on IPython's transformed source, so ``%time df = f(db)`` counts) and keeps the
   arrivals the cell reads or stores through. A cell that names none of them never waits;
3. it waits for each, up to its source's ``limit`` (``connection_wait`` for connections), showing
   ONE line in that cell's output that updates in place ("waiting for db: connecting, attempt
   2"): the cell asked for it by naming the name;
4. what arrived is in the namespace when the cell runs. What did not makes the cell fail, before
   any of its code runs, with the arrival's own error (``ConnectionNotReady`` for a connection:
   its state, last error and the command to run), raised by :class:`CellGate`, an IPython AST
   transformer that replaces that one cell's code with the ``raise``.

A magic may need an arrival its line never names: ``%sql SELECT 1`` runs on jupysql's current
connection, which may be one still connecting after a restart. An arrival with a
``named_by_magic(magic, line)`` method is chosen too when the cell uses a line or cell magic
(read from IPython's transformed source) for which that method says True.

A new kind of arrival needs only a source: an object with a ``limit`` and an ``arriving()``
method returning :class:`Arrival` objects (name, progress text, ``is_ready``, ``failed``,
``wait``, ``not_ready``). The sources now: connections on their way
(:class:`~ipysession.connections.live.ConnectionArrivals`), large values loading in the
background (:class:`~ipysession.session.loading.BackgroundLoads`) and imports restored in the
background (:class:`~ipysession.session.imports_loading.BackgroundImports`).

Names a cell reaches indirectly count too: a cell that calls a function defined in the
notebook waits for what that function's code reads, transitively over the notebook functions
and classes it names (:func:`ipysession.capture.references.names_reached`).

Sources are plain objects; nothing here knows what a connection is.

Lines starting with ``%session`` are left out of the analysis: ``%session reconnect db`` must not
wait for ``db``.
"""

from __future__ import annotations

import ast
import itertools
import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from ipysession.capture.cellnames import cell_names
from ipysession.capture.references import names_reached
from ipysession.errors import SessionError

__all__ = [
    "Arrival",
    "ArrivalSource",
    "Arrivals",
    "CellGate",
    "GateResult",
    "ProgressLine",
    "refusal",
]

log = logging.getLogger("ipysession")

# How often the line is refreshed while a cell waits.
_POLL = 0.25
# How deep magics inside magics are read (`%time %sql ...`).
_MAGIC_DEPTH = 3


class Arrival(Protocol):
    """One name on its way."""

    @property
    def name(self) -> str:
        """The variable a cell would mention."""
        ...

    def progress(self) -> str:
        """A few words on where it stands: "connecting, attempt 2"."""
        ...

    def is_ready(self) -> bool: ...

    def failed(self) -> bool:
        """True once it will never arrive: a waiting cell fails at once with ``not_ready``."""
        ...

    def wait(self, timeout: float) -> bool:
        """Block up to ``timeout`` seconds; True once ready (and in the namespace)."""
        ...

    def not_ready(self, waited: float) -> SessionError:
        """The error a cell that named it fails with when its wait ran out."""
        ...


class ArrivalSource(Protocol):
    """Where arrivals come from: connections, values loading in the background..."""

    @property
    def limit(self) -> float:
        """Seconds a cell waits for one of this source's arrivals."""
        ...

    def arriving(self) -> Sequence[Arrival]:
        """What is on its way now; cheap when nothing is."""
        ...


class ProgressLine(Protocol):
    """One line in the output of the cell that waits, updated in place."""

    def update(self, text: str) -> None: ...

    def done(self, text: str) -> None: ...


@dataclass(frozen=True)
class GateResult:
    """What :meth:`Arrivals.before_cell` did: the names it waited for, those that came, and
    the error the cell fails with (None: it runs)."""

    waited: tuple[str, ...] = ()
    arrived: tuple[str, ...] = ()
    refused: SessionError | None = None


class Arrivals:
    """The arrival sources of one shell, and the cell gate that acts on their verdicts."""

    def __init__(
        self,
        sources: Iterable[ArrivalSource] = (),
        *,
        progress: Callable[[], ProgressLine] | None = None,
        namespace: Callable[[], Mapping[str, Any]] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.sources: list[ArrivalSource] = list(sources)
        #: Makes the line a waiting cell shows (set by the extension; None: nothing shown).
        self.progress = progress
        self.gate = CellGate()
        #: The user namespace, where the notebook functions a cell calls are looked up (None:
        #: only the names the cell itself mentions count).
        self.namespace = namespace
        self._clock = clock

    def add(self, source: ArrivalSource) -> None:
        self.sources.append(source)

    def pending(self) -> list[tuple[Arrival, float]]:
        """Every arrival on its way now, with its source's limit."""
        found: list[tuple[Arrival, float]] = []
        for source in self.sources:
            try:
                found.extend((arrival, source.limit) for arrival in source.arriving())
            except Exception:
                log.warning("An arrival source failed; its names are not waited for", exc_info=True)
        return found

    def before_cell(self, source: str, transformed: str | None = None) -> GateResult:
        """Wait for what this cell names and is still arriving; arm the gate if it cannot run."""
        self.gate.clear()
        pending = self.pending()
        if not pending:
            return GateResult()
        named: frozenset[str] = _named(source, transformed)
        magics = _magics(source, transformed)
        waited: tuple[str, ...] = ()
        arrived: tuple[str, ...] = ()
        while True:
            if self.namespace is not None:
                # A cell that calls a notebook function whose code reads an arriving global
                # waits for it too (capture.references.names_reached: the rule, what it
                # covers). Asked again after each wait: a function that just arrived may read
                # more names still arriving.
                named = frozenset(names_reached(named, self.namespace()))
            chosen = [
                (a, limit) for a, limit in pending if a.name in named or _wanted_by(a, magics)
            ]
            if not chosen:
                return GateResult(waited, arrived)
            result = self._wait(chosen)
            waited += result.waited
            arrived += result.arrived
            if result.refused is not None:
                self.gate.refuse(result.refused)
                return GateResult(waited, arrived, result.refused)
            if self.namespace is None:
                return GateResult(waited, arrived)
            done = set(waited)
            pending = [(a, limit) for a, limit in self.pending() if a.name not in done]

    def _wait(self, chosen: list[tuple[Arrival, float]]) -> GateResult:
        start = self._clock()
        line = self.progress() if self.progress is not None else None
        arrived: list[str] = []
        refused: SessionError | None = None
        try:
            for arrival, limit in chosen:
                deadline = start + limit
                while not arrival.is_ready() and not arrival.failed():
                    remaining = deadline - self._clock()
                    if remaining <= 0:
                        break
                    if line is not None:
                        line.update(_waiting_text(chosen, arrived))
                    if arrival.wait(min(_POLL, remaining)):
                        break
                if arrival.is_ready():
                    arrived.append(arrival.name)
                elif refused is None:
                    refused = arrival.not_ready(self._clock() - start)
        except KeyboardInterrupt:
            # The user interrupted the wait: the cell does not run, and says why.
            late = [a for a, _ in chosen if a.name not in arrived and not a.is_ready()]
            if late and refused is None:
                refused = late[0].not_ready(self._clock() - start)
        waited = tuple(a.name for a, _ in chosen)
        if line is not None:
            elapsed = self._clock() - start
            missing = [n for n in waited if n not in arrived]
            text = (
                f"{', '.join(waited)}: ready after {elapsed:.1f} s"
                if not missing
                else f"{', '.join(missing)}: not ready after {elapsed:.1f} s"
            )
            line.done(text)
        return GateResult(waited, tuple(arrived), refused)


def _waiting_text(chosen: list[tuple[Arrival, float]], arrived: list[str]) -> str:
    parts = [f"{a.name}: {a.progress()}" for a, _ in chosen if a.name not in arrived]
    return "waiting for " + "; ".join(parts)


def _named(source: str, transformed: str | None) -> frozenset[str]:
    """The names a cell reads or stores through (binding one alone needs no value)."""
    lines = source.splitlines()
    kept = [line for line in lines if not line.lstrip().startswith("%session")]
    if len(kept) != len(lines):
        # The transformed form holds the %session lines as calls: read the rest as written.
        source, transformed = "\n".join(kept), None
    names = cell_names(source, transformed)
    return names.read | names.mutated


def _magics(source: str, transformed: str | None, depth: int = 0) -> list[tuple[str, str]]:
    """``(magic, line)`` of every line and cell magic the cell calls, ``%session`` aside, and
    of the magics inside those (``%time %sql ...``, a ``%%time`` cell of ``%sql`` lines)."""
    if "%" not in source or depth > _MAGIC_DEPTH:
        return []
    if transformed is None:
        try:
            from IPython.core.inputtransformer2 import TransformerManager

            transformed = TransformerManager().transform_cell(source)  # type: ignore[no-untyped-call]
        except Exception:  # noqa: BLE001 - a cell IPython cannot transform runs no magic
            return []
    try:
        tree = ast.parse(transformed)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return []
    found = []
    for node in ast.walk(tree):
        if not (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in ("run_line_magic", "run_cell_magic")
            and len(node.args) >= 2
        ):
            continue
        texts = [arg.value if isinstance(arg, ast.Constant) else "" for arg in node.args[:3]]
        magic, line, *body = (text if isinstance(text, str) else "" for text in texts)
        if not magic or magic == "session":
            continue
        found.append((magic, line))
        for inner in (line, *body):
            found.extend(_magics(inner, None, depth + 1))
    return found


def _wanted_by(arrival: Arrival, magics: list[tuple[str, str]]) -> bool:
    """Whether one of the cell's magics needs ``arrival`` (its optional ``named_by_magic``)."""
    named_by_magic = getattr(arrival, "named_by_magic", None)
    if named_by_magic is None or not magics:
        return False
    try:
        return any(named_by_magic(magic, line) for magic, line in magics)
    except Exception:
        log.warning("An arrival could not tell whether a magic needs it", exc_info=True)
        return False


# Refusals waiting to be raised by the cell they belong to, by token: the cell's code is replaced
# by `raise refusal(token)`, which takes the error out again (an error object cannot be put into
# an AST, and the user namespace is not ours to put it in).
_REFUSALS: dict[int, SessionError] = {}
_TOKENS = itertools.count(1)


def refusal(token: int) -> SessionError:
    """The error armed under ``token`` (called from the code :class:`CellGate` writes)."""
    error = _REFUSALS.pop(token, None)
    if error is None:  # raised twice (%rerun of the cell's code): say something true
        return SessionError("This cell was refused earlier because a name it uses was not ready")
    return error


class CellGate:
    """An IPython AST transformer (``shell.ast_transformers``) that makes one cell fail.

    Armed by :meth:`Arrivals.before_cell`; the next cell's code is replaced by a ``raise`` of the
    armed error, so none of it runs and the traceback points at the cell. Unarmed it returns the
    tree untouched. Disarmed after one use, and after every cell (a cell that did not parse
    never reaches the transformers).
    """

    def __init__(self) -> None:
        self._token: int | None = None

    @property
    def armed(self) -> bool:
        return self._token is not None

    def refuse(self, error: SessionError) -> None:
        self.clear()
        token = next(_TOKENS)
        _REFUSALS[token] = error
        self._token = token

    def clear(self) -> None:
        token, self._token = self._token, None
        if token is not None:
            _REFUSALS.pop(token, None)

    def visit(self, node: Any) -> Any:
        token, self._token = self._token, None
        if token is None or not isinstance(node, ast.Module):
            if token is not None:
                self._token = token
            return node
        raised = ast.parse(
            f"raise __import__('ipysession.session.arrivals', fromlist=['refusal'])"
            f".refusal({token}) from None"
        ).body
        return ast.Module(body=raised, type_ignores=[])
