"""Secrets in free text: which names hold secrets, and a cell's source with its secrets blanked.

A connection's record knows its own secrets and redacts them exactly (see
:func:`ipysession.connections.backends.redact_text`). This module covers what no record knows: a
line such as ``%sql postgresql://me:PASSWORD@db/sales``, a ``%session connect`` whose target was
down (so no record was kept), or ``%env TOKEN=...``. Every history line is passed through
:func:`redact_source` before it is kept, whatever magic or library the line was for:

- the password of any URL with credentials (``scheme://user:PASSWORD@host``);
- the value of a URL query parameter whose name holds a secret (``?sslkey=...&token=...``);
- the value set by ``%env NAME=VALUE``, ``%env NAME VALUE`` and ``%set_env NAME=VALUE`` (the
  user guide promises that environment values are never shown).

What it cannot know is a secret in plain code (``pw = "hunter2"``): keep those out of cells with
``getpass`` or an environment variable (docs/security.md).

:class:`SecretFilter` applies the same to log records, and blanks every secret a provider knows
(the connections' secrets, whatever their form): the log file's filter.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable
from urllib.parse import quote, quote_plus

from ipysession.model import REDACTED

__all__ = ["SecretFilter", "is_secret_name", "redact_source"]

# Compared case-insensitively with "_" and "-" removed.
_SECRET_NAMES = frozenset(
    {"password", "passwd", "pwd", "pass", "token", "key", "secret", "apikey", "accesstoken",
     "authtoken", "refreshtoken", "clientsecret", "sslkey", "sslpassword", "credentials",
     "sig", "signature", "privatekey", "sastoken"}
)  # fmt: skip
_SECRET_PARTS = ("password", "passwd", "secret", "token", "key", "credential")

# scheme://user:PASSWORD@ -- the password runs to the last "@" before the host's first "/",
# so a password holding an unquoted "@" is blanked whole.
_URL_PASSWORD = re.compile(
    r"(?P<head>\b[A-Za-z][A-Za-z0-9+.\-]*://[^\s:/?#@'\"]*:)(?P<password>[^\s'\"/]+)(?=@)"
)
_QUERY_PARAMETER = re.compile(r"(?P<head>[?&;](?P<name>[A-Za-z0-9_.\-]+)=)(?P<value>[^&#;\s'\"]*)")
# %env NAME=VALUE, %env NAME VALUE, %set_env NAME=VALUE (also written without the "%").
_ENV_ASSIGNMENT = re.compile(
    r"(?P<head>^[ \t]*%{0,2}(?:env|set_env)[ \t]+[A-Za-z_][A-Za-z0-9_]*(?:[ \t]*=[ \t]*|[ \t]+))"
    r"(?P<value>\S.*)$",
    re.MULTILINE,
)


def is_secret_name(name: str) -> bool:
    """Whether a parameter called ``name`` (``sslkey``, ``api-key``, ``X_Token``) holds a secret."""
    folded = name.lower().replace("_", "").replace("-", "")
    return folded in _SECRET_NAMES or any(part in folded for part in _SECRET_PARTS)


def redact_source(source: str) -> str:
    """``source`` with URL passwords, secret query parameters and ``%env`` values blanked."""
    source = _ENV_ASSIGNMENT.sub(lambda m: m["head"] + REDACTED, source)
    source = _URL_PASSWORD.sub(lambda m: m["head"] + REDACTED, source)
    return _QUERY_PARAMETER.sub(
        lambda m: m["head"] + REDACTED if is_secret_name(m["name"]) and m["value"] else m[0],
        source,
    )


def _forms(secret: str) -> set[str]:
    return {secret, quote(secret, safe=""), quote_plus(secret), repr(secret)[1:-1]} - {""}


class SecretFilter(logging.Filter):
    """Blanks secrets in a log record before any handler formats it.

    ``secrets()`` returns the secret strings known now (it is called for every record, so a
    connection made after the filter was installed is covered). The record's message is
    rendered once, redacted, and its arguments dropped; a traceback is rendered and redacted
    too. URL passwords and secret query parameters are blanked whether or not they are known.
    """

    def __init__(self, secrets: Callable[[], Iterable[str]]) -> None:
        super().__init__("ipysession")
        self._secrets = secrets

    def redact(self, text: str) -> str:
        try:
            # The forms a secret takes once a driver has put it in a URL or a repr, too.
            known = sorted(
                {form for s in self._secrets() if s for form in _forms(s)}, key=len, reverse=True
            )
        except Exception:  # noqa: BLE001 - a broken provider must not silence the log
            known = []
        for secret in known:
            if secret != REDACTED:
                text = text.replace(secret, REDACTED)
        return redact_source(text)

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a bad format string: keep what there is
            message = str(record.msg)
        record.msg, record.args = self.redact(message), None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self.redact(record.exc_text)
            record.exc_info = None  # only the redacted text is formatted from here on
        if record.stack_info:
            record.stack_info = self.redact(record.stack_info)
        return True
