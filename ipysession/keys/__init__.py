"""The key that seals every session file: where it comes from and what it does.

:mod:`.resolution` finds the key (passphrase, OS keyring, key file, in that order) and states the
rules; :mod:`.location` reads it where the marker says, :mod:`.first_use` creates the first one,
:mod:`.rotation` replaces it, :mod:`.cache` remembers keyring reads for the process;
:mod:`.crypto` is the only importer of ``cryptography`` (AES-256-GCM, scrypt, keyed content ids);
:mod:`.files` reads and writes the key file and its marker; :mod:`.keyring` is the only importer of
``keyring``, every call under a timeout. Plain Python: no IPython here.
"""

from __future__ import annotations

from ipysession.keys.location import BackendChoice, KeyResolution
from ipysession.keys.resolution import clear_key_cache, memory_key, resolve_key
from ipysession.keys.rotation import commit_rotation, rotate_key

__all__ = [
    "BackendChoice",
    "KeyResolution",
    "clear_key_cache",
    "commit_rotation",
    "memory_key",
    "resolve_key",
    "rotate_key",
]
