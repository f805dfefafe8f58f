"""The ``dask`` backend: a Dask cluster's scheduler, bound as a ``distributed.Client``.

Spec
----
The scheduler's address (``tcp://10.0.0.5:8786``, ``tls://scheduler:8786``, ``127.0.0.1:8786``;
a bare ``host:port`` means ``tcp://``), or a mapping ``{"address": ..., "kwargs": {...}}``.

Options
-------
``kwargs``
    keyword arguments for ``distributed.Client`` (JSON values: ``{"name": "analysis"}``), shown
    and stored in the clear. ``timeout``, ``asynchronous`` and ``security`` are set by the backend.
``tls_ca_file``, ``tls_client_cert``, ``tls_client_key``
    paths for a ``tls://`` scheduler (a ``distributed.security.Security`` is built from them at
    every connect). They are paths, not secrets: the key file stays where it is.

No separate secrets are accepted: a plain Dask scheduler has no password.

Behaviour
---------
``connect`` creates the ``Client`` on a worker thread within the timeout (a client that arrives
later is closed); it becomes the default client, so ``df.compute()`` uses it, as after
``Client(address)`` in a cell. ``is_alive`` asks the scheduler itself for its identity, within
the timeout: a ``Client`` whose scheduler is dead says so here, where the ``factory`` backend
could only assume it alive. ``close`` closes the client, never the cluster.

What is never saved
-------------------
Futures and persisted collections point at results held by the workers of one cluster; they are
skipped at save time with a reason (see :mod:`ipysession.capture.remote`): publish a dataset
(``client.publish_dataset(name=df)``) and fetch it again with ``client.get_dataset("name")``.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ipysession.connections.backends.base import call_with_timeout, check_options, redact_text
from ipysession.errors import ConnectFailed, InvalidSpec

__all__ = ["DaskBackend"]

log = logging.getLogger("ipysession")

_ADDRESS_RE = re.compile(r"^(?:(tcp|tls|ws|wss|inproc|ucx)://)?[A-Za-z0-9._\-\[\]:]+$")
_TLS_FIELDS = ("tls_ca_file", "tls_client_cert", "tls_client_key")
_SET_BY_BACKEND = frozenset({"timeout", "asynchronous", "security", "address"})
_INSTALL_HINT = "Install Dask's scheduler client with: pip install 'dask[distributed]'"


def _address(text: str) -> str:
    text = text.strip()
    if not _ADDRESS_RE.match(text) or text.endswith("://"):
        msg = f"Not a Dask scheduler address: {text!r}"
        raise InvalidSpec(msg, hint="For example: %session connect cluster dask tcp://host:8786")
    return text if "://" in text else f"tcp://{text}"


def _kwargs(values: Any) -> dict[str, Any]:
    if not isinstance(values, Mapping):
        msg = "The dask kwargs must be a mapping of distributed.Client keyword to value"
        raise InvalidSpec(msg)
    clash = sorted(set(values) & _SET_BY_BACKEND)
    if clash:
        msg = f"The dask backend sets {', '.join(clash)} itself"
        raise InvalidSpec(msg, hint="Leave them out of --kwarg")
    try:
        json.dumps(dict(values))
    except (TypeError, ValueError):
        msg = "The dask kwargs must be JSON values (numbers, strings, lists, mappings)"
        raise InvalidSpec(msg) from None
    return dict(values)


class DaskBackend:
    """A Dask cluster, reached through its scheduler, as a ``distributed.Client``."""

    kind = "dask"
    requires = ("distributed",)

    def split_spec(
        self, spec: str | Mapping[str, Any] | None, options: Mapping[str, Any]
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        check_options(self.kind, options, ("kwargs", *_TLS_FIELDS))
        if options.get("secrets"):
            msg = "The dask backend takes no secrets: a Dask scheduler has no password"
            raise InvalidSpec(msg, hint="For TLS give tls_ca_file, tls_client_cert, tls_client_key")
        kwargs: dict[str, Any] = {}
        if isinstance(spec, Mapping):
            unknown = sorted(set(spec) - {"address", "kwargs"})
            if unknown:
                msg = f"Unknown field(s) in the dask spec: {', '.join(unknown)}"
                raise InvalidSpec(msg, hint="It takes 'address' and 'kwargs'")
            kwargs.update(_kwargs(spec.get("kwargs") or {}))
            spec = spec.get("address")
        if not isinstance(spec, str) or not spec.strip():
            msg = "The dask backend needs the scheduler's address"
            raise InvalidSpec(
                msg, hint="For example: %session connect cluster dask tcp://host:8786"
            )
        kwargs.update(_kwargs(options.get("kwargs") or {}))
        params: dict[str, Any] = {"address": _address(spec), "kwargs": kwargs}
        for field in _TLS_FIELDS:
            value = options.get(field)
            if value:
                if not isinstance(value, str):
                    msg = f"The dask option {field} must be a file path"
                    raise InvalidSpec(msg)
                params[field] = str(Path(value).expanduser())
        return params, {}

    def describe(self, params: Mapping[str, Any], secrets: Mapping[str, Any]) -> str:
        return redact_text(f"dask scheduler {params.get('address', '?')}", secrets)

    def connect(
        self, params: Mapping[str, Any], secrets: Mapping[str, Any], *, timeout: float
    ) -> Any:
        target = self.describe(params, secrets)
        address = str(params.get("address", ""))
        kwargs = dict(params.get("kwargs") or {})

        def build() -> Any:
            import distributed  # its functions are untyped: reached through Any

            lib: Any = distributed
            security = None
            if any(params.get(f) for f in _TLS_FIELDS):
                tls = {f: params[f] for f in _TLS_FIELDS if params.get(f)}
                security = lib.security.Security(require_encryption=True, **tls)
            return lib.Client(address, timeout=f"{max(timeout, 0.1)}s", security=security, **kwargs)

        try:
            client = call_with_timeout(
                build, timeout + 1.0, name="ipysession-dask-connect", on_late=self.close
            )
        except ImportError:
            msg = "The dask backend needs distributed, which is not installed"
            raise ConnectFailed(msg, target=target, hint=_INSTALL_HINT) from None
        except Exception as exc:  # noqa: BLE001 - reported redacted, never chained
            text = redact_text(f"{type(exc).__name__}: {exc}", secrets)
            msg = f"Could not reach the Dask scheduler ({text})"
            raise ConnectFailed(
                msg, target=target, hint="Is the scheduler running, and is the address right?"
            ) from None
        log.debug("Connected to %s", target)
        return client

    def is_alive(self, obj: Any, *, timeout: float) -> bool:
        if getattr(obj, "status", None) != "running":
            return False
        scheduler = getattr(obj, "scheduler", None)
        sync = getattr(obj, "sync", None)
        if scheduler is None or not callable(sync):
            return False
        try:
            # The scheduler answers for itself: not the client's cached view of it.
            identity = call_with_timeout(
                lambda: sync(scheduler.identity, callback_timeout=timeout),
                timeout + 0.5,
                name="ipysession-dask-ping",
            )
        except Exception as exc:  # noqa: BLE001 - a failed check means not alive
            log.debug("The Dask scheduler did not answer (%s)", type(exc).__name__)
            return False
        return isinstance(identity, Mapping) and identity.get("type") == "Scheduler"

    def close(self, obj: Any) -> None:
        close = getattr(obj, "close", None)
        if not callable(close) or getattr(obj, "status", None) == "closed":
            return
        try:
            close(timeout=5)
        except Exception as exc:  # noqa: BLE001 - close() never raises
            log.debug("Closing a Dask client failed (%s)", type(exc).__name__)
