"""The connection backend protocol, the backend registry, and the helpers every backend shares.

A *backend* turns a user's connection spec into a live object and back::

    backend = get_backend("sqlalchemy")
    params, secrets = backend.split_spec("postgresql://me:pw@db/sales", {})
    # params  == {"url": "postgresql://me@db/sales", ...}   shown, stored in the clear part
    # secrets == {"password": "pw"}                          only ever stored encrypted
    engine = backend.connect(params, secrets, timeout=5.0)   # a real sqlalchemy Engine
    backend.is_alive(engine, timeout=2.0)                    # True
    backend.describe(params, secrets)                        # 'postgresql://me:***@db/sales'
    backend.close(engine)                                    # safe twice

Options
-------
``split_spec(spec, options)`` receives, besides the spec the user typed, a mapping of options the
magic layer built from its flags. Every backend understands:

``"secrets"``
    ``{field: value}`` of secret values the user did not type into a cell: the magic layer resolves
    ``--secret-env FIELD=ENVVAR`` and ``--secret-prompt FIELD`` (getpass) into this mapping. Each
    backend documents which fields it accepts (a database ``password``, a factory keyword, ...).

and each backend documents its own further keys. Unknown keys raise :class:`InvalidSpec`, so a
typo is reported instead of silently ignored.

Third-party backends
--------------------
A backend is any object with the members of :class:`Backend`. Register it in your package's
``pyproject.toml``::

    [project.entry-points."ipysession.backends"]
    redis = "mypackage.ipysession_backend:RedisBackend"

The entry point may name a class (instantiated without arguments), a zero-argument factory, or an
instance. The built-in kinds (``jupyter``, ``jupyter_server``, ``sqlalchemy``, ``dask``,
``factory``) cannot be overridden.
A backend may set ``requires = ("module", ...)``: if one of them cannot be imported the kind is
reported as not available instead of failing later. Run ``tests/contract/backend_suite.py``
against your backend: every backend, ours included, must pass it.

Secrets
-------
Secret values never appear in a message ipysession shows or logs: build every exception message
and log line that may contain text from a driver through :func:`redact_text` (driver errors
often embed the URL, password included). Raise :class:`~ipysession.errors.ConnectFailed`
``from None`` so the original exception, whose text may hold a secret, is not chained into
tracebacks.
"""

from __future__ import annotations

import enum
import logging
import threading
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Protocol, TypeVar, runtime_checkable
from urllib.parse import quote, quote_plus

from ipysession.errors import BackendNotFound, ConnectionSetupError
from ipysession.model import REDACTED

__all__ = [
    "ENTRY_POINT_GROUP",
    "Backend",
    "Liveness",
    "available_backends",
    "call_with_timeout",
    "check_options",
    "get_backend",
    "liveness",
    "redact_text",
]

log = logging.getLogger("ipysession")

ENTRY_POINT_GROUP = "ipysession.backends"

_T = TypeVar("_T")


@runtime_checkable
class Backend(Protocol):
    """What a connection backend implements. Backends hold no per-connection state.

    ``split_spec`` and ``describe`` are pure and fast (no network); ``connect``, ``is_alive`` and
    ``close`` may be called from any thread, concurrently for different objects.
    """

    kind: str

    def split_spec(
        self, spec: str | Mapping[str, Any] | None, options: Mapping[str, Any]
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """Split a user's spec into ``(params, secrets)``, both JSON-serializable.

        ``params`` may be shown; ``secrets`` are only ever stored encrypted. Together they are
        everything ``connect`` needs, later and in another process. Raises
        :class:`~ipysession.errors.InvalidSpec` with a message that contains no secret.
        """
        ...

    def connect(
        self, params: Mapping[str, Any], secrets: Mapping[str, Any], *, timeout: float
    ) -> Any:
        """Open the connection and return the live object users already know (not a wrapper).

        Returns within about ``timeout`` seconds, or raises
        :class:`~ipysession.errors.ConnectFailed` (secrets redacted, ``from None``).
        """
        ...

    def is_alive(self, obj: Any, *, timeout: float) -> bool:
        """Whether ``obj`` (from ``connect``) answers within ``timeout`` seconds. Never raises."""
        ...

    def close(self, obj: Any) -> None:
        """Release ``obj``. Safe to call twice; never raises."""
        ...

    def describe(self, params: Mapping[str, Any], secrets: Mapping[str, Any]) -> str:
        """A one-line description of the target, secrets shown as ``***``. Never raises."""
        ...


class Liveness(enum.Enum):
    """What ``%session ping`` found: the target answered, did not, or cannot be asked."""

    ANSWERS = "answers"
    NO_ANSWER = "no answer"
    UNKNOWN = "unknown"


def liveness(backend: Backend, obj: Any, *, alive: bool) -> Liveness:
    """What an ``is_alive`` result ``alive`` means for ``obj``.

    A backend may define ``checks_liveness(obj) -> bool``: ``False`` says its ``is_alive`` only
    assumed ``obj`` alive (a factory object with no ``is_alive()`` or ``ping()``), which is
    "unknown", not "answers". Backends without the method really ask their target.
    """
    if not alive:
        return Liveness.NO_ANSWER
    checks = getattr(backend, "checks_liveness", None)
    if callable(checks):
        try:
            if not checks(obj):
                return Liveness.UNKNOWN
        except Exception as exc:  # noqa: BLE001 - a plugin's check raises anything
            log.debug("checks_liveness() failed (%s)", type(exc).__name__)
            return Liveness.UNKNOWN
    return Liveness.ANSWERS


# --- redaction ----------------------------------------------------------------------------------


def _secret_strings(secrets: object, out: set[str]) -> None:
    if secrets is None or isinstance(secrets, bool):
        return
    if isinstance(secrets, Mapping):
        for value in secrets.values():
            _secret_strings(value, out)
    elif isinstance(secrets, (list, tuple, set, frozenset)):
        for value in secrets:
            _secret_strings(value, out)
    elif isinstance(secrets, (bytes, bytearray)):
        _secret_strings(bytes(secrets).decode("utf-8", "replace"), out)
    else:
        text = str(secrets)
        if not text:
            return
        # The forms a secret takes once a driver has put it in a URL or a repr.
        out.update({text, quote(text, safe=""), quote_plus(text), repr(text)[1:-1]})


def redact_text(text: str, secrets: Mapping[str, Any] | Iterable[Any] | None) -> str:
    """``text`` with every secret value replaced by ``***``.

    ``secrets`` is a record's secrets mapping (its values, nested mappings and lists included, are
    the secrets; keys are not) or any iterable of secret values. URL-quoted and ``repr`` forms of
    each value are replaced too, longest first, so no fragment of a longer secret survives.
    """
    found: set[str] = set()
    if isinstance(secrets, Mapping):
        _secret_strings(secrets, found)
    elif secrets is not None:
        for value in secrets:
            _secret_strings(value, found)
    for value in sorted(found, key=len, reverse=True):
        if value and value != REDACTED:
            text = text.replace(value, REDACTED)
    return text


# --- helpers for backends -----------------------------------------------------------------------


def check_options(kind: str, options: Mapping[str, Any], allowed: Iterable[str]) -> None:
    """Raise :class:`InvalidSpec` if ``options`` has a key the backend does not understand."""
    from ipysession.errors import InvalidSpec

    known = {"secrets", *allowed}
    unknown = sorted(set(options) - known)
    if unknown:
        msg = f"The {kind} backend does not understand the option(s) {', '.join(unknown)}"
        raise InvalidSpec(msg, hint=f"It accepts: {', '.join(sorted(known))}")
    secrets = options.get("secrets")
    if secrets is not None and not isinstance(secrets, Mapping):
        msg = f"The {kind} backend expects options['secrets'] to be a mapping of field to value"
        raise InvalidSpec(msg)


class _Call:
    """The shared state of one :func:`call_with_timeout` call."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.done = threading.Event()
        self.abandoned = False
        self.value: Any = None
        self.error: BaseException | None = None


def call_with_timeout(
    fn: Callable[[], _T],
    timeout: float,
    *,
    name: str = "ipysession-call",
    on_late: Callable[[_T], None] | None = None,
) -> _T:
    """Run ``fn()`` on a daemon thread and return its result within ``timeout`` seconds.

    Raises :class:`TimeoutError` when ``fn`` has not finished in time, or re-raises what ``fn``
    raised. A call that times out keeps running in the background (Python cannot interrupt a
    blocked driver); if it later returns a value, ``on_late(value)`` is called with it on that
    thread, so a connection that arrives too late can be closed instead of leaking.
    """
    call = _Call()

    def run() -> None:
        try:
            value = fn()
        except BaseException as exc:  # noqa: BLE001 - handed to the caller, or logged when late
            with call.lock:
                call.error = exc
                late = call.abandoned
                call.done.set()
            if late:
                log.debug("%s finished after its timeout with %s", name, type(exc).__name__)
            return
        with call.lock:
            call.value = value
            late = call.abandoned
            call.done.set()
        if late and on_late is not None:
            try:
                on_late(value)
            except Exception:
                log.warning("Cleaning up the late result of %s failed", name, exc_info=True)

    thread = threading.Thread(target=run, name=name, daemon=True)
    thread.start()
    call.done.wait(max(0.0, timeout))
    with call.lock:
        if not call.done.is_set():
            call.abandoned = True
            msg = f"no answer within {timeout:g} s"
            raise TimeoutError(msg)
    if call.error is not None:
        raise call.error
    return call.value  # type: ignore[no-any-return]


# --- registry -----------------------------------------------------------------------------------

_BUILTINS: dict[str, str] = {
    "dask": "ipysession.connections.backends.dask:DaskBackend",
    "factory": "ipysession.connections.backends.factory:FactoryBackend",
    "jupyter": "ipysession.connections.backends.jupyter:JupyterBackend",
    "jupyter_server": "ipysession.connections.backends.jupyter_server:JupyterServerBackend",
    "sqlalchemy": "ipysession.connections.backends.sqlalchemy:SQLAlchemyBackend",
}

_registry_lock = threading.Lock()
_instances: dict[str, Backend] = {}


def _entry_points() -> dict[str, Any]:
    """Entry points of the ``ipysession.backends`` group, by name (read on every call: cheap)."""
    from importlib.metadata import entry_points

    return {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}


def _load_builtin(path: str) -> object:
    import importlib

    module_name, _, attr = path.partition(":")
    return getattr(importlib.import_module(module_name), attr)


def _instantiate(kind: str, target: object) -> Backend:
    obj: object = target
    if isinstance(target, type) or not isinstance(target, Backend):
        if not callable(target):
            msg = f"The backend registered as {kind!r} is not a backend"
            raise BackendNotFound(msg, hint="Its entry point must name a class or an instance")
        obj = target()
    if not isinstance(obj, Backend):
        msg = f"The backend registered as {kind!r} does not implement the Backend protocol"
        raise BackendNotFound(
            msg, hint="It needs kind, split_spec, connect, is_alive, close and describe"
        )
    return obj


def _missing_requirements(backend: object) -> list[str]:
    from importlib.util import find_spec

    missing = []
    for module in getattr(backend, "requires", ()):
        try:
            found = find_spec(module) is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            missing.append(module)
    return missing


def _requirement_hint(kind: str, missing: list[str]) -> str:
    if kind == "sqlalchemy":
        return "Install it with: pip install 'ipysession[sql]'"
    if kind == "dask":
        return "Install it with: pip install 'ipysession[dask]'"
    if kind == "jupyter_server":
        return "Install it with: pip install 'ipysession[gateway]'"
    return f"Install {', '.join(missing)}"


def get_backend(kind: str) -> Backend:
    """The backend registered under ``kind``: a built-in, or an ``ipysession.backends`` plugin.

    Raises :class:`~ipysession.errors.BackendNotFound` naming the backends that are installed,
    or saying what to install when the backend needs a missing library.
    """
    with _registry_lock:
        cached = _instances.get(kind)
    if cached is not None:
        return cached
    try:
        if kind in _BUILTINS:
            backend = _instantiate(kind, _load_builtin(_BUILTINS[kind]))
        else:
            eps = _entry_points()
            if kind not in eps:
                msg = f"No connection backend named {kind!r}"
                hint = (
                    f"Installed backends: {', '.join(available_backends()) or 'none'}. "
                    f"Third-party backends register under the entry-point group "
                    f"'{ENTRY_POINT_GROUP}'"
                )
                raise BackendNotFound(msg, hint=hint)
            backend = _instantiate(kind, eps[kind].load())
    except ConnectionSetupError:
        raise
    except Exception as exc:  # noqa: BLE001 - a plugin's import can raise anything
        msg = f"The connection backend {kind!r} failed to load ({type(exc).__name__}: {exc})"
        raise BackendNotFound(msg, hint="Reinstall the package that provides it") from None
    missing = _missing_requirements(backend)
    if missing:
        msg = f"The {kind} backend needs {', '.join(missing)}, which is not installed"
        raise BackendNotFound(msg, hint=_requirement_hint(kind, missing))
    with _registry_lock:
        return _instances.setdefault(kind, backend)


def available_backends() -> list[str]:
    """Sorted kinds that :func:`get_backend` can load now (their libraries installed)."""
    kinds = set(_BUILTINS)
    try:
        kinds.update(_entry_points())
    except Exception:
        log.debug("Reading the %s entry points failed", ENTRY_POINT_GROUP, exc_info=True)
    usable = []
    for kind in sorted(kinds):
        try:
            if kind in _BUILTINS:
                target = _load_builtin(_BUILTINS[kind])
                if _missing_requirements(target):
                    continue
            else:
                get_backend(kind)
        except Exception as exc:  # noqa: BLE001 - a broken plugin is just not available
            log.debug("Backend %s is not available (%s)", kind, type(exc).__name__)
            continue
        usable.append(kind)
    return usable
