"""The file-system edge of the store: write failures worded as what happened and what to do."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from ipysession.errors import StoreWriteError
from ipysession.store.files import write_error


@pytest.mark.parametrize(
    ("code", "fix"),
    [
        (errno.ENOSPC, "Free space on the disk that holds"),
        (errno.EACCES, "Check permissions of"),
        (errno.EROFS, "Check permissions of"),
        (errno.EFBIG, "file size limit"),
        (errno.EISDIR, "in the way"),
        (errno.ENOLCK, "File locks do not work"),
        (errno.ENOENT, "disappeared"),
        (errno.EIO, "ipysession doctor"),
    ],
)
def test_every_write_error_names_the_file_and_the_fix(code: int, fix: str) -> None:
    target = Path("/some/dir/gen-00000002.ipys")
    error = write_error(OSError(code, os.strerror(code)), target, "write generation 2")
    assert isinstance(error, StoreWriteError)
    assert isinstance(error, OSError)
    assert error.errno == code
    assert error.path == target
    message = str(error)
    assert fix in message
    assert os.strerror(code) in message
    assert "previous generation is untouched" in message
    assert str(target) in message
