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
"""

from __future__ import annotations

import re

from ipysession.model import REDACTED

__all__ = ["is_secret_name", "redact_source"]

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
