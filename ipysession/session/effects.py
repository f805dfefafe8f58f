"""Whether replaying a cell would do more than compute: :func:`cell_effects`.

A restore rebuilds values that could not be saved by running again the cells that made them
(:mod:`.replay`). A cell that only computes is safe to run again; one that writes files, talks to
the network, runs shell commands or a magic outside :data:`SAFE_MAGICS` is not, and is run only
with the user's consent. This module reads a cell's (transformed) source with :mod:`ast` and says
which of those it may do, with a short reason per finding, erring towards "may": a false alarm
costs a question, a miss could write a file twice.

What counts:

- **shell**: ``!cmd`` and ``x = !cmd`` (``get_ipython().system``/``getoutput``), ``%%bash`` and
  friends, ``os.system``, ``os.popen``, ``subprocess``;
- **files**: ``open(...)`` with a mode that writes (or a mode that is not a constant), and calls
  of methods that write, move or delete (``to_csv``, ``savefig``, ``write_text``, ``write``,
  ``mkdir``, ``remove``, ``shutil.*``...), and database writes (``execute``, ``commit``...);
- **network**: a name that resolves to a network module (``requests``, ``urllib``, ``socket``,
  ``httpx``...) and any ``http://``, ``https://`` or ``ftp://`` literal (``pd.read_csv(url)``);
- **magic**: a magic not in :data:`SAFE_MAGICS`; the Python inside a safe one (``%time x = f()``)
  is read as well.

Reading a file (``open(path)``, ``sqlite3.connect(path)``, ``fits.open(path)``) counts as
computing: it changes nothing outside the kernel.
"""

from __future__ import annotations

import ast
import enum
import re
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["SAFE_MAGICS", "CellEffects", "Effect", "cell_effects"]


class Effect(enum.Enum):
    """What a cell may do besides computing, in the words a summary uses."""

    FILES = "writes files"
    NETWORK = "uses the network"
    SHELL = "runs shell commands"
    MAGIC = "runs a magic"


#: Magics replayed without asking: they only time, format or capture the Python they wrap, or
#: set up display. Everything else (``%pip``, ``%cd``, ``%run``, ``%%writefile``...) asks first.
SAFE_MAGICS = frozenset(
    {
        "time",
        "timeit",
        "capture",
        "prun",
        "matplotlib",
        "precision",
        "xmode",
        "pprint",
        "config",
        "who",
        "whos",
        "who_ls",
        "pinfo",
        "pinfo2",
        "pdef",
        "pdoc",
        "psource",
        "load_ext",
        "reload_ext",
        "autoreload",
        "aimport",
    }
)

_SHELL_MAGICS = frozenset({"bash", "sh", "script", "system", "sx", "perl", "ruby"})
_SHELL_MODULES = frozenset({"subprocess", "pty", "pexpect", "sh", "plumbum"})
_SHELL_CALLS = frozenset({"system", "popen", "spawnl", "spawnv", "execv", "execl", "getoutput"})
_NETWORK_MODULES = frozenset(
    {
        "requests",
        "urllib",
        "urllib3",
        "http",
        "httpx",
        "aiohttp",
        "socket",
        "smtplib",
        "ftplib",
        "paramiko",
        "websocket",
        "websockets",
        "boto3",
        "botocore",
        "s3fs",
        "gcsfs",
        "xmlrpc",
        "telnetlib",
        "imaplib",
        "poplib",
    }
)
_FILE_MODULES = frozenset({"shutil", "tempfile"})
#: Method names that write, move or delete files (or rows of a database), whatever the object.
_WRITING_METHODS = frozenset(
    {
        "write",
        "writelines",
        "write_text",
        "write_bytes",
        "writeto",
        "to_csv",
        "to_parquet",
        "to_excel",
        "to_json",
        "to_pickle",
        "to_hdf",
        "to_feather",
        "to_sql",
        "to_netcdf",
        "to_zarr",
        "to_html",
        "to_latex",
        "to_stata",
        "to_orc",
        "savefig",
        "save",
        "savez",
        "savez_compressed",
        "savetxt",
        "tofile",
        "dump",
        "mkdir",
        "makedirs",
        "remove",
        "unlink",
        "rmdir",
        "removedirs",
        "rmtree",
        "touch",
        "chmod",
        "chown",
        "chdir",
        "symlink_to",
        "hardlink_to",
        "execute",
        "executemany",
        "executescript",
        "commit",
        "truncate",
    }
)
#: Called on ``os`` these change files too (on a DataFrame or a str, ``rename``/``replace`` do not).
_OS_WRITING = frozenset({"rename", "renames", "replace", "link", "symlink", "truncate", "utime"})
_URL = re.compile(r"\b(?:https?|ftp)://", re.IGNORECASE)
_MAGIC_CALLS = {"run_line_magic": 1, "run_cell_magic": 2}
_MAX_DEPTH = 3


@dataclass(frozen=True)
class CellEffects:
    """What a cell may do besides computing; empty ``effects`` means it only computes."""

    effects: frozenset[Effect] = frozenset()
    reasons: tuple[str, ...] = ()

    @property
    def pure(self) -> bool:
        return not self.effects

    def describe(self) -> str:
        """``"writes files (open(..., 'w'))"``: the first finding, as a summary shows it."""
        if not self.reasons:
            return "only computes"
        more = len(self.reasons) - 1
        return self.reasons[0] + (f" and {more} more" if more else "")


def cell_effects(code: str, module_of: Callable[[str], str | None] | None = None) -> CellEffects:
    """What replaying ``code`` (IPython's transformed source of a cell) may do besides computing.

    ``module_of(name)`` names the top-level module a name of the namespace comes from
    (``"requests"`` for ``requests``, for ``get`` bound by ``from requests import get``); without
    it only names that are themselves module names count. Code that does not parse is not
    replayed without asking.
    """
    finder = _Finder(module_of or (lambda _name: None), 0)
    if not finder.analyse(code):
        return CellEffects(frozenset({Effect.MAGIC}), ("its source does not parse as Python",))
    return CellEffects(frozenset(e for e, _ in finder.found), tuple(r for _, r in finder.found))


class _Finder(ast.NodeVisitor):
    def __init__(self, module_of: Callable[[str], str | None], depth: int) -> None:
        self._module_of = module_of
        self._depth = depth
        self.found: list[tuple[Effect, str]] = []
        # Names the cell itself imports: `import requests as r; r.get(...)`.
        self._imported: dict[str, str] = {}

    def analyse(self, code: str) -> bool:
        try:
            tree = ast.parse(code)
        except (SyntaxError, ValueError, RecursionError, MemoryError):
            return False
        self.visit(tree)
        return True

    def _add(self, effect: Effect, reason: str) -> None:
        if (effect, reason) not in self.found:
            self.found.append((effect, reason))

    def _module(self, name: str) -> str | None:
        if name in self._imported:
            return self._imported[name]
        module = self._module_of(name)
        return module.split(".")[0] if module else None

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            self._imported[alias.asname or alias.name.split(".")[0]] = alias.name.split(".")[0]
            self._module_name(alias.name.split(".")[0], f"import {alias.name}")

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        top = (node.module or "").split(".")[0]
        for alias in node.names:
            self._imported[alias.asname or alias.name] = top
        self._module_name(top, f"from {node.module} import ...")

    def _module_name(self, top: str, where: str) -> None:
        if top in _NETWORK_MODULES:
            self._add(Effect.NETWORK, f"{Effect.NETWORK.value} ({where})")
        elif top in _SHELL_MODULES:
            self._add(Effect.SHELL, f"{Effect.SHELL.value} ({where})")

    def visit_Name(self, node: ast.Name) -> None:
        top = self._module(node.id)
        if top is not None:
            self._module_name(top, node.id)
            if top in _FILE_MODULES:
                self._add(Effect.FILES, f"{Effect.FILES.value} ({node.id})")

    def visit_Constant(self, node: ast.Constant) -> None:
        if isinstance(node.value, str) and _URL.search(node.value):
            self._add(Effect.NETWORK, f"{Effect.NETWORK.value} (a URL)")

    def visit_Call(self, node: ast.Call) -> None:
        func = node.func
        if isinstance(func, ast.Name) and func.id == "open" and _open_writes(node):
            self._add(Effect.FILES, f"{Effect.FILES.value} (open(..., {_mode_text(node)}))")
        elif isinstance(func, ast.Attribute):
            self._attribute_call(node, func)
        self.generic_visit(node)

    def _attribute_call(self, node: ast.Call, func: ast.Attribute) -> None:
        if func.attr in _MAGIC_CALLS:
            self._magic(node, func.attr)
            return
        root = _root(func)
        if func.attr in ("system", "getoutput") and _is_get_ipython(func.value):
            self._add(Effect.SHELL, f"{Effect.SHELL.value} (!command)")
        elif func.attr in _SHELL_CALLS and root is not None and self._module(root) == "os":
            self._add(Effect.SHELL, f"{Effect.SHELL.value} (os.{func.attr})")
        elif func.attr in _OS_WRITING and root is not None and self._module(root) == "os":
            self._add(Effect.FILES, f"{Effect.FILES.value} (os.{func.attr})")
        elif func.attr == "open" and (_open_writes(node, 1) or _mode_first(node)):
            first = node.args[0] if _mode_first(node) else None
            mode = repr(first.value) if isinstance(first, ast.Constant) else _mode_text(node, 1)
            self._add(Effect.FILES, f"{Effect.FILES.value} (.open(..., {mode}))")
        elif func.attr in _WRITING_METHODS:
            self._add(Effect.FILES, f"{Effect.FILES.value} (.{func.attr}(...))")

    def _magic(self, node: ast.Call, kind: str) -> None:
        args = node.args
        if not args or not isinstance(args[0], ast.Constant) or not isinstance(args[0].value, str):
            self._add(Effect.MAGIC, f"{Effect.MAGIC.value} (one named at run time)")
            return
        name = args[0].value
        prefix = "%%" if kind == "run_cell_magic" else "%"
        if name in _SHELL_MAGICS:
            self._add(Effect.SHELL, f"{Effect.SHELL.value} ({prefix}{name})")
            return
        if name not in SAFE_MAGICS:
            self._add(Effect.MAGIC, f"{Effect.MAGIC.value} ({prefix}{name})")
            return
        position = _MAGIC_CALLS[kind]
        body = args[position] if len(args) > position else None
        if (
            self._depth < _MAX_DEPTH
            and isinstance(body, ast.Constant)
            and isinstance(body.value, str)
        ):
            inner = _Finder(self._module_of, self._depth + 1)
            inner._imported = dict(self._imported)
            # A safe magic's argument that is not Python (`%matplotlib inline`) adds nothing.
            if inner.analyse(body.value):
                for effect, reason in inner.found:
                    self._add(effect, reason)


def _root(node: ast.expr) -> str | None:
    while isinstance(node, (ast.Attribute, ast.Subscript, ast.Call)):
        node = node.func if isinstance(node, ast.Call) else node.value
    return node.id if isinstance(node, ast.Name) else None


def _is_get_ipython(node: ast.expr) -> bool:
    return (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id == "get_ipython"
    )


def _mode(node: ast.Call, mode_at: int) -> ast.expr | None:
    for keyword in node.keywords:
        if keyword.arg == "mode":
            return keyword.value
    return node.args[mode_at] if len(node.args) > mode_at else None


def _open_writes(node: ast.Call, mode_at: int = 1) -> bool:
    mode = _mode(node, mode_at)
    if mode is None:
        return False  # "r": reading changes nothing
    if isinstance(mode, ast.Constant) and isinstance(mode.value, str):
        return any(flag in mode.value for flag in "wax+")
    return True  # a mode computed at run time may write


def _mode_first(node: ast.Call) -> bool:
    """``Path.open("w")``: the mode comes first."""
    first = node.args[0] if node.args else None
    return (
        isinstance(first, ast.Constant)
        and isinstance(first.value, str)
        and _MODE.fullmatch(first.value) is not None
        and any(flag in first.value for flag in "wax+")
    )


_MODE = re.compile(r"[rwaxbt+]{1,4}")


def _mode_text(node: ast.Call, mode_at: int = 1) -> str:
    mode = _mode(node, mode_at)
    if isinstance(mode, ast.Constant) and isinstance(mode.value, str):
        return repr(mode.value)
    return "mode"
