"""The ``factory`` backend: what ``module:callable(**kwargs)`` returns (Dask, Spark, Redis, ...).

Spec
----
``"package.module:callable"`` (the callable may be a dotted attribute path, such as
``"redis:Redis.from_url"``), or a mapping ``{"callable": ..., "kwargs": {...}}``.

Options
-------
``kwargs``
    keyword arguments, not secret (``{"host": "cache", "port": 6379}``), JSON values only: they
    are stored with the session and shown by ``%session connections``.
``secrets``
    keyword arguments that are secret (``{"password": ...}``). The magic layer fills this from
    ``--secret-env password=REDIS_PASSWORD`` or ``--secret-prompt password``, so they are never
    typed into a cell. They are stored encrypted and shown as ``***``. A name may not be both
    a kwarg and a secret.

Behaviour
---------
``connect`` imports the module and calls ``callable(**kwargs, **secrets)`` on a worker thread,
within the timeout (an object that arrives later is closed). The object is returned as is.
``is_alive`` follows a convention: ``obj.is_alive()`` if it has one (its truth value), else
``obj.ping()`` (alive unless it raises or returns ``False``), else the object is assumed alive
(so the heartbeat never tears it down), and ``%session ping`` says "unknown", not "answers"
(``checks_liveness`` is ``False``).
``close`` calls ``obj.close()`` if it has one, and swallows (and logs) what it raises, so it is
safe twice.
"""

from __future__ import annotations

import importlib
import json
import logging
import re
from collections.abc import Mapping
from typing import Any

from ipysession.connections.backends.base import call_with_timeout, check_options, redact_text
from ipysession.errors import ConnectFailed, InvalidSpec
from ipysession.model import REDACTED

__all__ = ["FactoryBackend"]

log = logging.getLogger("ipysession")

_DOTTED = r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*"
_CALLABLE_RE = re.compile(rf"^{_DOTTED}:{_DOTTED}$")
_IDENTIFIER_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_SHOWN_VALUE = 60


def _check_arguments(what: str, values: Any) -> dict[str, Any]:
    if not isinstance(values, Mapping):
        msg = f"The factory {what} must be a mapping of keyword to value"
        raise InvalidSpec(msg)
    out: dict[str, Any] = {}
    for name, value in values.items():
        if not isinstance(name, str) or not _IDENTIFIER_RE.match(name):
            msg = f"The factory {what} has a name that is not a Python identifier"
            raise InvalidSpec(msg)
        try:
            json.dumps(value)
        except (TypeError, ValueError):
            msg = f"The factory {what} {name!r} is not a JSON value (string, number, list, mapping)"
            raise InvalidSpec(msg, hint="Only JSON values can be stored with the session") from None
        out[name] = value
    return out


def _resolve(path: str) -> Any:
    module_name, _, attr_path = path.partition(":")
    obj: Any = importlib.import_module(module_name)
    for attr in attr_path.split("."):
        obj = getattr(obj, attr)
    if not callable(obj):
        msg = f"{path} is not callable"
        raise TypeError(msg)
    return obj


class FactoryBackend:
    """Any object built by calling ``module:callable`` with keyword arguments."""

    kind = "factory"

    def split_spec(
        self, spec: str | Mapping[str, Any] | None, options: Mapping[str, Any]
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        check_options(self.kind, options, ("kwargs",))
        kwargs: dict[str, Any] = {}
        if isinstance(spec, Mapping):
            unknown = sorted(set(spec) - {"callable", "kwargs"})
            if unknown:
                msg = f"Unknown field(s) in the factory spec: {', '.join(unknown)}"
                raise InvalidSpec(msg, hint="It takes 'callable' and 'kwargs'")
            kwargs.update(_check_arguments("kwargs", spec.get("kwargs") or {}))
            spec = spec.get("callable")
        if not isinstance(spec, str) or not _CALLABLE_RE.match(spec.strip()):
            msg = "The factory backend needs 'module:callable'"
            raise InvalidSpec(msg, hint="For example: %session connect cache factory redis:Redis")
        kwargs.update(_check_arguments("kwargs", options.get("kwargs") or {}))
        secrets = _check_arguments("secret", options.get("secrets") or {})
        both = sorted(set(kwargs) & set(secrets))
        if both:
            msg = f"{', '.join(both)} given both as a kwarg and as a secret"
            raise InvalidSpec(msg, hint="Give each keyword once")
        return {"callable": spec.strip(), "kwargs": kwargs}, secrets

    def describe(self, params: Mapping[str, Any], secrets: Mapping[str, Any]) -> str:
        shown = []
        for name, value in (params.get("kwargs") or {}).items():
            text = repr(value)
            if len(text) > _SHOWN_VALUE:
                text = text[: _SHOWN_VALUE - 3] + "..."
            shown.append(f"{name}={text}")
        shown.extend(f"{name}={REDACTED}" for name in secrets)
        return redact_text(f"{params.get('callable', '?')}({', '.join(shown)})", secrets)

    def connect(
        self, params: Mapping[str, Any], secrets: Mapping[str, Any], *, timeout: float
    ) -> Any:
        target = self.describe(params, secrets)
        path = str(params.get("callable", ""))
        kwargs = {**(params.get("kwargs") or {}), **secrets}

        def build() -> Any:
            return _resolve(path)(**kwargs)

        try:
            obj = call_with_timeout(
                build, timeout, name="ipysession-factory-connect", on_late=self.close
            )
        except TimeoutError:
            msg = f"{path} did not return within {timeout:g} s"
            raise ConnectFailed(msg, target=target) from None
        except (ImportError, AttributeError) as exc:
            text = redact_text(f"{type(exc).__name__}: {exc}", secrets)
            msg = f"Could not find {path} ({text})"
            raise ConnectFailed(msg, target=target, hint="Is its package installed?") from None
        except Exception as exc:  # noqa: BLE001 - the user's callable raises anything
            text = redact_text(f"{type(exc).__name__}: {exc}", secrets)
            msg = f"{path} raised {text}"
            raise ConnectFailed(msg, target=target) from None
        log.debug("Connected to %s", target)
        return obj

    def is_alive(self, obj: Any, *, timeout: float) -> bool:
        check = getattr(obj, "is_alive", None)
        if isinstance(check, bool):
            return check
        if callable(check):
            try:
                return bool(call_with_timeout(check, timeout, name="ipysession-factory-ping"))
            except Exception as exc:  # noqa: BLE001 - a failed check means not alive
                log.debug("is_alive() failed (%s)", type(exc).__name__)
                return False
        ping = getattr(obj, "ping", None)
        if callable(ping):
            try:
                return call_with_timeout(ping, timeout, name="ipysession-factory-ping") is not False
            except Exception as exc:  # noqa: BLE001 - a failed check means not alive
                log.debug("ping() failed (%s)", type(exc).__name__)
                return False
        return True

    def checks_liveness(self, obj: Any) -> bool:
        """Whether :meth:`is_alive` asks ``obj`` (it has ``is_alive`` or ``ping``) or assumes."""
        return hasattr(obj, "is_alive") or callable(getattr(obj, "ping", None))

    def close(self, obj: Any) -> None:
        close = getattr(obj, "close", None)
        if not callable(close):
            return
        try:
            close()
        except Exception as exc:  # noqa: BLE001 - close() never raises
            log.debug("close() failed (%s)", type(exc).__name__)
