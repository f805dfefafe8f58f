"""What a cell does at module scope, read from its source with :mod:`ast`.

:func:`cell_names` sorts the names a cell mentions into three sets (:class:`CellNames`):

- *bound*: assignment, augmented assignment, ``del``, import, ``def``, ``class``, ``for``,
  ``with``, walrus, ``except ... as``, ``match`` captures, ``global``;
- *mutated*: stored through, as the root of a subscript or attribute target (``df['x'] = 1``,
  ``a.b = 2``, ``arr[3] += 1``, ``del d[k]``);
- *read*: every other mention (``df.head()``, ``print(x)``, ``lst.append(1)``), which a call may
  still have mutated.

``opaque`` says that the source cannot tell what the cell bound: it did not parse, it imports
``*`` at module scope, or it mentions ``exec``, ``eval``, ``globals``, ``vars``, ``locals``,
``__import__`` or ``get_ipython`` (every magic, once transformed), any of which may bind or
delete names the source never shows.

Inside a function, lambda or class body a name binds nothing at module scope unless it is declared
``global``, and a store through a name counts as a read: it happens only if the function is called.

A cell that does not parse (a magic the caller did not transform, a syntax error) counts every
identifier in its text as read. Pass IPython's transformed source too: magics then parse
(``get_ipython().run_line_magic('time', 'x = f()')``), and the Python inside
``run_line_magic``/``run_cell_magic`` arguments is analysed as well (``%time x = f()`` binds
``x``).

:func:`imports_in_source` reads the import statements of a cell exactly as written:
``from os import path as p`` gives ``ImportRecord("p", "os", "path")``, which capture prefers to an
import guessed from the value (:func:`~ipysession.capture.namespace.import_matches`).
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterable
from dataclasses import dataclass

from ipysession.model import ImportRecord

__all__ = ["DYNAMIC_NAMES", "CellNames", "cell_names", "imports_in_source"]

_MAGIC_DEPTH = 3


@dataclass(frozen=True)
class CellNames:
    """The names a cell binds, stores through, and otherwise mentions, at module scope.

    ``parsed`` is False when neither the source nor its transformed form parsed: then every
    identifier in the text is in ``read``. ``opaque`` is True when the cell may have bound or
    deleted names it does not show (see the module's docstring).
    """

    bound: frozenset[str] = frozenset()
    mutated: frozenset[str] = frozenset()
    read: frozenset[str] = frozenset()
    parsed: bool = True
    opaque: bool = False


#: Names whose use may bind or delete any module-level name, unseen by the source.
DYNAMIC_NAMES = frozenset(
    {"exec", "eval", "globals", "vars", "locals", "__import__", "get_ipython"}
)


_IDENTIFIER = re.compile(r"[^\W\d]\w*")
_MAGIC_CALLS = {"run_line_magic": 1, "run_cell_magic": 2}


def cell_names(source: str, transformed: str | None = None) -> CellNames:
    """What a cell may have changed, from its source (and IPython's transformed source)."""
    for text in (transformed, source):
        if text is None:
            continue
        collector = _Collector(0)
        if collector.analyse(text):
            return collector.result()
    words = set(_IDENTIFIER.findall(source))
    if transformed is not None:
        words.update(_IDENTIFIER.findall(transformed))
    return CellNames(read=frozenset(words), parsed=False, opaque=True)


def _parse(source: str) -> ast.Module | None:
    try:
        return ast.parse(source)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None


def _root_name(node: ast.expr) -> str | None:
    while isinstance(node, (ast.Attribute, ast.Subscript, ast.Starred)):
        node = node.value
    return node.id if isinstance(node, ast.Name) else None


class _Collector(ast.NodeVisitor):
    def __init__(self, magic_depth: int) -> None:
        self.bound: set[str] = set()
        self.mutated: set[str] = set()
        self.read: set[str] = set()
        self._magic_depth = magic_depth
        # One set of `global` names per enclosing function or class body; empty at module scope.
        self._scopes: list[set[str]] = []
        self._in_comprehension_target = False
        self.star_import = False

    def analyse(self, source: str) -> bool:
        tree = _parse(source)
        if tree is None:
            return False
        self.visit(tree)
        return True

    def result(self) -> CellNames:
        return CellNames(
            bound=frozenset(self.bound),
            mutated=frozenset(self.mutated - self.bound),
            read=frozenset(self.read - self.bound - self.mutated),
            opaque=self.star_import or not DYNAMIC_NAMES.isdisjoint(self.read),
        )

    def _bind(self, name: str) -> None:
        if not self._scopes or name in self._scopes[-1]:
            self.bound.add(name)

    # bindings

    def visit_Name(self, node: ast.Name) -> None:
        if isinstance(node.ctx, (ast.Store, ast.Del)):
            if not self._in_comprehension_target:
                self._bind(node.id)
        else:
            self.read.add(node.id)

    def _store_through(self, node: ast.Attribute | ast.Subscript) -> None:
        if isinstance(node.ctx, (ast.Store, ast.Del)):
            root = _root_name(node)
            if root is not None:
                # In a function body the store happens only if it is called: a possible change.
                (self.read if self._scopes else self.mutated).add(root)
        self.generic_visit(node)

    def visit_Attribute(self, node: ast.Attribute) -> None:
        self._store_through(node)

    def visit_Subscript(self, node: ast.Subscript) -> None:
        self._store_through(node)

    def visit_NamedExpr(self, node: ast.NamedExpr) -> None:
        # A walrus binds in the enclosing scope, even inside a comprehension.
        if isinstance(node.target, ast.Name):
            self._bind(node.target.id)
        self.visit(node.value)

    def visit_comprehension(self, node: ast.comprehension) -> None:
        self._in_comprehension_target = True
        self.visit(node.target)
        self._in_comprehension_target = False
        self.visit(node.iter)
        for condition in node.ifs:
            self.visit(condition)

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            self._bind(alias.asname or alias.name.split(".")[0])

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        for alias in node.names:
            if alias.name != "*":
                self._bind(alias.asname or alias.name)
            elif not self._scopes:
                self.star_import = True

    def visit_Global(self, node: ast.Global) -> None:
        if self._scopes:
            self._scopes[-1].update(node.names)
        else:
            self.bound.update(node.names)

    def visit_ExceptHandler(self, node: ast.ExceptHandler) -> None:
        if node.name:
            self._bind(node.name)
        self.generic_visit(node)

    def visit_MatchAs(self, node: ast.MatchAs) -> None:
        if node.name:
            self._bind(node.name)
        self.generic_visit(node)

    def visit_MatchStar(self, node: ast.MatchStar) -> None:
        if node.name:
            self._bind(node.name)

    def visit_MatchMapping(self, node: ast.MatchMapping) -> None:
        if node.rest:
            self._bind(node.rest)
        self.generic_visit(node)

    # scopes

    def _visit_body(self, body: list[ast.stmt]) -> None:
        self._scopes.append(set())
        for statement in body:
            self.visit(statement)
        self._scopes.pop()

    def _visit_function(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        self._bind(node.name)
        for decorator in node.decorator_list:
            self.visit(decorator)
        self.visit(node.args)
        if node.returns is not None:
            self.visit(node.returns)
        self._visit_body(node.body)

    def visit_FunctionDef(self, node: ast.FunctionDef) -> None:
        self._visit_function(node)

    def visit_AsyncFunctionDef(self, node: ast.AsyncFunctionDef) -> None:
        self._visit_function(node)

    def visit_arg(self, node: ast.arg) -> None:
        if node.annotation is not None:
            self.visit(node.annotation)

    def visit_Lambda(self, node: ast.Lambda) -> None:
        self.visit(node.args)
        self._scopes.append(set())
        self.visit(node.body)
        self._scopes.pop()

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        self._bind(node.name)
        for expr in [*node.decorator_list, *node.bases, *(k.value for k in node.keywords)]:
            self.visit(expr)
        self._visit_body(node.body)

    # magics, as IPython transforms them: get_ipython().run_line_magic('time', 'x = f()')

    def visit_Call(self, node: ast.Call) -> None:
        self.generic_visit(node)
        func = node.func
        if not isinstance(func, ast.Attribute) or func.attr not in _MAGIC_CALLS:
            return
        position = _MAGIC_CALLS[func.attr]
        if len(node.args) <= position or self._magic_depth >= _MAGIC_DEPTH:
            return
        body = node.args[position]
        if not isinstance(body, ast.Constant) or not isinstance(body.value, str):
            return
        inner = _Collector(self._magic_depth + 1)
        inner._scopes = [set(s) for s in self._scopes]
        if inner.analyse(body.value):
            self.bound.update(inner.bound)
            self.mutated.update(inner.mutated)
            self.read.update(inner.read)
            self.star_import |= inner.star_import
        else:
            self.read.update(_IDENTIFIER.findall(body.value))


def imports_in_source(source: str) -> list[ImportRecord]:
    """The imports a cell makes at module scope, in order, exactly as written.

    Imports inside ``if``/``try``/``with``/loops count; those in function and class bodies, star
    imports and relative imports do not. ``import a.b`` gives ``ImportRecord("a", "a.b")``, so
    several records may bind the same name (``import a.b; import a.c``): keep them all. Python in
    ``run_line_magic``/``run_cell_magic`` arguments of a transformed cell is read as well; check a
    record with :func:`import_matches` before trusting it (``capture_value`` does).
    """
    tree = _parse(source)
    if tree is None:
        return []
    records: list[ImportRecord] = []
    _collect_imports(tree.body, records, 0)
    return records


def _collect_imports(
    statements: Iterable[ast.stmt], records: list[ImportRecord], depth: int
) -> None:
    for statement in statements:
        if isinstance(statement, ast.Import):
            for alias in statement.names:
                name = alias.asname or alias.name.split(".")[0]
                records.append(ImportRecord(name=name, module=alias.name))
        elif isinstance(statement, ast.ImportFrom):
            if statement.level or statement.module is None:
                continue
            for alias in statement.names:
                if alias.name == "*":
                    continue
                records.append(
                    ImportRecord(
                        name=alias.asname or alias.name,
                        module=statement.module,
                        attribute=alias.name,
                    )
                )
        elif isinstance(statement, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            continue
        elif isinstance(statement, ast.Expr) and depth < _MAGIC_DEPTH:
            body = _magic_body(statement.value)
            inner = _parse(body) if body is not None else None
            if inner is not None:
                _collect_imports(inner.body, records, depth + 1)
        else:
            for attr in ("body", "orelse", "finalbody"):
                _collect_imports(getattr(statement, attr, ()), records, depth)
            for handler in getattr(statement, "handlers", ()):
                _collect_imports(handler.body, records, depth)
            for case in getattr(statement, "cases", ()):
                _collect_imports(case.body, records, depth)


def _magic_body(node: ast.expr) -> str | None:
    if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Attribute):
        return None
    position = _MAGIC_CALLS.get(node.func.attr)
    if position is None or len(node.args) <= position:
        return None
    body = node.args[position]
    if isinstance(body, ast.Constant) and isinstance(body.value, str):
        return body.value
    return None
