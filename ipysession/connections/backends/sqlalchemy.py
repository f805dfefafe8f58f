"""The ``sqlalchemy`` backend: any SQLAlchemy URL, bound as an ``Engine`` (``ipysession[sql]``).

Spec
----
A URL string (``postgresql://me:pw@db.example/sales?sslmode=require``,
``sqlite:///data.db``, ...) or a mapping ``{"url": ..., "engine_kwargs": {...}}``.

The password and every query parameter whose name looks secret (``password``, ``passwd``,
``pwd``, ``token``, ``key``, ``secret``, ``api_key``, ``access_token``, ``sslkey``,
``credentials``, ``sig``, ... -- compared case-insensitively, ``-``/``_`` ignored, and any name
containing ``password``, ``secret``, ``token``, ``key`` or ``credential``) go to ``secrets``;
``params["url"]`` is the URL without them, and may be shown.

Options
-------
``secrets``
    ``{"password": ...}`` sets the URL's password (``--secret-env password=PGPASSWORD`` keeps it
    out of the cell); any other field is added as a secret query parameter.
``engine_kwargs``
    keyword arguments for ``create_engine`` (JSON values: ``{"pool_size": 5}``).

Behaviour
---------
``connect`` creates the engine with ``pool_pre_ping=True`` (idle database connections die; the
pre-ping replaces them) and runs ``SELECT 1`` within the timeout. SQLAlchemy hides the password
in ``repr(engine)`` but not query parameters, so after the engine is created its ``url``
attribute is replaced by one whose secret query values read ``***``: the engine keeps the real
values it computed its connect arguments from, but ``create_engine(engine.url)`` will not carry
those parameters over. ``is_alive`` runs ``SELECT 1``; ``close`` is ``engine.dispose()``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any

from ipysession.connections.backends.base import call_with_timeout, check_options, redact_text
from ipysession.errors import ConnectFailed, InvalidSpec
from ipysession.model import REDACTED

__all__ = ["SQLAlchemyBackend", "is_secret_query_name"]

log = logging.getLogger("ipysession")

_SECRET_NAMES = frozenset(
    {"password", "passwd", "pwd", "pass", "token", "key", "secret", "apikey", "accesstoken",
     "authtoken", "refreshtoken", "clientsecret", "sslkey", "sslpassword", "credentials",
     "sig", "signature", "privatekey", "sastoken"}
)  # fmt: skip
_SECRET_PARTS = ("password", "passwd", "secret", "token", "key", "credential")
_INSTALL_HINT = "Install SQLAlchemy with: pip install 'ipysession[sql]'"


def is_secret_query_name(name: str) -> bool:
    """Whether a URL query parameter named ``name`` holds a secret."""
    folded = name.lower().replace("_", "").replace("-", "")
    return folded in _SECRET_NAMES or any(part in folded for part in _SECRET_PARTS)


def _make_url(text: str) -> Any:
    try:
        from sqlalchemy.engine import make_url
    except ImportError:
        msg = "The sqlalchemy backend needs SQLAlchemy, which is not installed"
        raise InvalidSpec(msg, hint=_INSTALL_HINT) from None
    try:
        return make_url(text)
    except Exception:  # noqa: BLE001 - its message would repeat the URL, password included
        scheme = text.split(":", 1)[0] if ":" in text else ""
        msg = "Not a valid SQLAlchemy URL" + (f" (scheme {scheme!r})" if scheme else "")
        raise InvalidSpec(
            msg, hint="Expected dialect[+driver]://user:password@host[:port]/database"
        ) from None


def _render(url: Any) -> str:
    return str(url.render_as_string(hide_password=False))


class SQLAlchemyBackend:
    """Any database SQLAlchemy can reach, as an ``Engine`` created with a pre-ping."""

    kind = "sqlalchemy"
    requires = ("sqlalchemy",)

    def split_spec(
        self, spec: str | Mapping[str, Any] | None, options: Mapping[str, Any]
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        check_options(self.kind, options, ("engine_kwargs",))
        engine_kwargs: Any = options.get("engine_kwargs") or {}
        if isinstance(spec, Mapping):
            unknown = sorted(set(spec) - {"url", "engine_kwargs"})
            if unknown:
                msg = f"Unknown field(s) in the sqlalchemy spec: {', '.join(unknown)}"
                raise InvalidSpec(msg, hint="It takes 'url' and 'engine_kwargs'")
            engine_kwargs = {**(spec.get("engine_kwargs") or {}), **engine_kwargs}
            spec = spec.get("url")
        if not isinstance(spec, str) or not spec.strip():
            msg = "The sqlalchemy backend needs a database URL"
            raise InvalidSpec(
                msg, hint="For example: %session connect db sqlalchemy sqlite:///data.db"
            )
        if not isinstance(engine_kwargs, Mapping):
            msg = "engine_kwargs must be a mapping of create_engine keyword arguments"
            raise InvalidSpec(msg)
        url = _make_url(spec.strip())
        secrets: dict[str, Any] = {}
        if url.password:
            secrets["password"] = str(url.password)
        query: dict[str, Any] = {}
        public: dict[str, Any] = {}
        for name, value in url.query.items():
            target = query if is_secret_query_name(name) else public
            target[name] = list(value) if isinstance(value, tuple) else value
        for name, value in (options.get("secrets") or {}).items():
            if name == "password":
                secrets["password"] = str(value)
            else:
                query[str(name)] = value
                public.pop(name, None)
        if query:
            secrets["query"] = query
        # URL.set(password=None) means "leave it": replace the field itself.
        params: dict[str, Any] = {"url": _render(url.set(query=public)._replace(password=None))}
        if engine_kwargs:
            try:
                json.dumps(dict(engine_kwargs))
            except (TypeError, ValueError):
                msg = "engine_kwargs must hold JSON values (numbers, strings, lists, mappings)"
                raise InvalidSpec(msg) from None
            params["engine_kwargs"] = dict(engine_kwargs)
        return params, secrets

    def describe(self, params: Mapping[str, Any], secrets: Mapping[str, Any]) -> str:
        text = str(params.get("url", ""))
        try:
            url = _make_url(text)
            if secrets.get("password"):
                url = url.set(password=REDACTED)
            shown = url.render_as_string(hide_password=True)
            masked = [f"{name}={REDACTED}" for name in (secrets.get("query") or {})]
            if masked:
                shown += ("&" if "?" in shown else "?") + "&".join(masked)
            text = str(shown)
        except Exception:  # noqa: BLE001 - describe() never raises
            log.debug("Describing a sqlalchemy URL failed")
        return redact_text(text, secrets)

    def _url(self, params: Mapping[str, Any], secrets: Mapping[str, Any]) -> Any:
        url = _make_url(str(params.get("url", "")))
        if secrets.get("password"):
            url = url.set(password=str(secrets["password"]))
        query = secrets.get("query") or {}
        if query:
            url = url.update_query_dict(
                {k: tuple(v) if isinstance(v, list) else str(v) for k, v in query.items()}
            )
        return url

    def connect(
        self, params: Mapping[str, Any], secrets: Mapping[str, Any], *, timeout: float
    ) -> Any:
        target = self.describe(params, secrets)
        try:
            from sqlalchemy import create_engine
        except ImportError:
            msg = "The sqlalchemy backend needs SQLAlchemy, which is not installed"
            raise ConnectFailed(msg, target=target, hint=_INSTALL_HINT) from None
        try:
            url = self._url(params, secrets)
            kwargs = dict(params.get("engine_kwargs") or {})
            kwargs["pool_pre_ping"] = True
            engine = create_engine(url, **kwargs)
        except InvalidSpec as exc:
            raise ConnectFailed(redact_text(exc.what, secrets), target=target) from None
        except Exception as exc:  # noqa: BLE001 - reported redacted, never chained
            text = redact_text(f"{type(exc).__name__}: {exc}", secrets)
            hint = "Install the database driver it names" if isinstance(exc, ImportError) else None
            msg = f"Could not create the engine ({text})"
            raise ConnectFailed(msg, target=target, hint=hint) from None
        if secrets.get("query"):
            engine.url = url.update_query_dict(dict.fromkeys(secrets["query"], REDACTED))
        try:
            call_with_timeout(
                lambda: _select_one(engine),
                timeout,
                name="ipysession-sqlalchemy-connect",
                on_late=lambda _: engine.dispose(),
            )
        except Exception as exc:  # noqa: BLE001 - reported redacted, never chained
            self.close(engine)
            text = redact_text(f"{type(exc).__name__}: {exc}", secrets)
            msg = f"The database did not answer SELECT 1 ({text})"
            raise ConnectFailed(msg, target=target) from None
        log.debug("Connected to %s", target)
        return engine

    def is_alive(self, obj: Any, *, timeout: float) -> bool:
        try:
            return bool(
                call_with_timeout(
                    lambda: _select_one(obj), timeout, name="ipysession-sqlalchemy-ping"
                )
            )
        except Exception as exc:  # noqa: BLE001 - a failed check means not alive
            log.debug("SELECT 1 failed (%s)", type(exc).__name__)
            return False

    def close(self, obj: Any) -> None:
        dispose = getattr(obj, "dispose", None)
        if not callable(dispose):
            return
        try:
            dispose()
        except Exception as exc:  # noqa: BLE001 - close() never raises
            log.debug("Disposing of an engine failed (%s)", type(exc).__name__)


def _select_one(engine: Any) -> bool:
    from sqlalchemy import text

    with engine.connect() as conn:
        conn.execute(text("SELECT 1")).scalar()
    return True
