"""ipysession.capture.namespace: what is saved, how, what changed, and how it comes back.

Notebook definitions are simulated by exec'ing cells in a dict whose ``__name__`` is ``"__main__"``:
functions and classes then carry ``__module__ == "__main__"`` as they do in a kernel, plain pickle
cannot refer to them, and cloudpickle saves them by value.
"""

from __future__ import annotations

import collections
import io
import json
import os
import pickle
import socket
import subprocess
import sys
import threading
import types
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from ipysession.capture.namespace import (
    DEFAULT_LIMITS,
    RECAPTURE_BELOW,
    CaptureLimits,
    ChangeSet,
    ChangeTracker,
    capture_value,
    cell_names,
    estimate_size,
    fingerprint,
    import_matches,
    imports_in_source,
    is_persistable_name,
    merge_imports,
    restore_imports,
    restore_value,
    type_name,
)
from ipysession.capture.pickling import digest_parts
from ipysession.errors import CaptureError
from ipysession.model import ImportRecord, VariableRecord
from tests.builders import KEY
from tests.workload import CALLABLES, IMPORTS, PICKLABLE, REFERENCE_CELLS

MiB = 1024 * 1024


def run_cells(cells: Iterable[str], ns: dict[str, Any] | None = None) -> dict[str, Any]:
    ns = {"__name__": "__main__"} if ns is None else ns
    for source in cells:
        exec(compile(source, "<cell>", "exec"), ns)
    return ns


def cell(
    tracker: ChangeTracker,
    ns: dict[str, Any],
    source: str,
    *,
    transformed: str | None = None,
    run: str | None = None,
) -> ChangeSet:
    """Run one cell the way the extension sees it: pre_cell, execute, post_cell."""
    tracker.pre_cell(ns)
    exec(compile(run if run is not None else source, "<cell>", "exec"), ns)
    return tracker.post_cell(ns, source, transformed)


def persistable(ns: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in ns.items() if is_persistable_name(k)}


def saved(record: VariableRecord | ImportRecord) -> VariableRecord:
    assert isinstance(record, VariableRecord), record
    assert record.skipped is None, record.skipped
    assert record.data is not None
    return record


def round_trip(value: Any, name: str = "v", ns: dict[str, Any] | None = None) -> Any:
    record = saved(capture_value(name, value))
    assert record.data is not None
    return restore_value(record, record.data, buffers=buffers_of(record), namespace=ns)


# --- which names --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        "In",
        "Out",
        "_",
        "__",
        "___",
        "_i",
        "_ii",
        "_iii",
        "_i7",
        "_i123",
        "_7",
        "_42",
        "_oh",
        "_dh",
        "_ih",
        "_exit_code",
        "exit",
        "quit",
        "get_ipython",
        "__builtin__",
        "__builtins__",
        "__name__",
        "__doc__",
        "__vsc_ipynb_file__",
        "",
    ],
)
def test_ipython_names_are_never_saved(name: str) -> None:
    assert not is_persistable_name(name)


@pytest.mark.parametrize("name", ["df", "x", "_private", "_i_am_mine", "_7a", "In2", "a__b"])
def test_user_names_are_saved(name: str) -> None:
    assert is_persistable_name(name)


def test_exclude_patterns_are_case_sensitive_fnmatch() -> None:
    patterns = ["secret_*", "tmp?"]
    assert not is_persistable_name("secret_key", patterns)
    assert not is_persistable_name("tmp1", patterns)
    assert is_persistable_name("tmp12", patterns)
    assert is_persistable_name("Secret_key", patterns)


def test_hidden_names_are_not_saved() -> None:
    hidden = {"np": object(), "helper": object()}
    assert not is_persistable_name("np", (), hidden)
    assert is_persistable_name("np", (), {})


# --- the reference workload ---------------------------------------------------------------------


@pytest.fixture
def workload(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.chdir(tmp_path)
    ns = run_cells(REFERENCE_CELLS)
    yield ns
    ns["fh"].close()


def capture_all(ns: dict[str, Any]) -> dict[str, VariableRecord | ImportRecord]:
    exact = {rec.name: rec for source in REFERENCE_CELLS for rec in imports_in_source(source)}
    return {
        name: capture_value(name, value, imports=exact) for name, value in persistable(ns).items()
    }


def test_reference_workload_is_classified(workload: dict[str, Any]) -> None:
    records = capture_all(workload)
    for name in IMPORTS:
        assert records[name] == ImportRecord(name, workload[name].__name__)
    for name in [*CALLABLES, "pt"]:
        assert saved(records[name]).encoding == "cloudpickle", name
    for name in PICKLABLE:
        if name != "pt":
            assert saved(records[name]).encoding == "pickle", name
    assert saved(records["fh"]).encoding == "file"
    gen = records["gen"]
    assert isinstance(gen, VariableRecord)
    assert gen.skipped == (
        "generator objects cannot be saved (TypeError: cannot pickle 'generator' object)"
    )
    assert gen.type_name == "builtins.generator"
    df = saved(records["df"])
    assert df.type_name == "pandas.DataFrame" or df.type_name.startswith("pandas.")
    assert df.size == len(df.data or b"") + sum(b.size for b in df.buffers)
    assert df.buffers, "a frame's float columns go out of band"
    assert df.fingerprint == fingerprint(workload["df"])
    # Everything but the generator is kept, and the whole workload is small.
    total = sum(r.size for r in records.values() if isinstance(r, VariableRecord))
    assert total < 2 * MiB


def test_reference_workload_round_trips(workload: dict[str, Any]) -> None:
    records = capture_all(workload)
    fresh: dict[str, Any] = {"__name__": "__main__"}
    imports = [r for r in records.values() if isinstance(r, ImportRecord)]
    assert [reason for _, reason in restore_imports(imports, fresh)] == [None] * len(imports)
    for name, record in records.items():
        if isinstance(record, VariableRecord) and record.saved:
            assert record.data is not None
            fresh[name] = restore_value(
                record, record.data, buffers=buffers_of(record), namespace=fresh
            )

    for name in IMPORTS:
        assert fresh[name] is workload[name]
    assert np.array_equal(fresh["arr"], workload["arr"])
    assert fresh["arr"].dtype == workload["arr"].dtype
    pd.testing.assert_frame_equal(fresh["df"], workload["df"])
    for name in ("mapping", "ints", "counts", "text", *[f"n{i}" for i in range(30)]):
        assert fresh[name] == workload[name], name
    assert type(fresh["counts"]) is collections.Counter
    assert fresh["pt"] == workload["pt"]
    assert isinstance(fresh["pt"], fresh["Point"])
    assert fresh["pt"].norm() == 5.0
    assert fresh["scale"](fresh["pt"], 2) == fresh["Point"](6, 8)
    assert fresh["square"](9) == 81
    assert "gen" not in fresh

    handle = fresh["fh"]
    try:
        assert handle.name == str(Path("data.txt").resolve())
        assert handle.mode == "r+"  # "w+" is never reopened with truncation
        assert handle.tell() == 5
        assert handle.read() == "one\nline two\n"
        handle.write("line three\n")
        handle.flush()
        assert Path("data.txt").read_text() == "line one\nline two\nline three\n"
    finally:
        handle.close()


NOTEBOOK_EXTRA = """
from dataclasses import dataclass

FACTOR = 3

def times_factor(v):
    return v * FACTOR

@dataclass
class Pair:
    a: int
    b: str

pair = Pair(1, "one")

class Counter2:
    total = 0
    def __init__(self):
        self.seen = []
    def add(self, v):
        self.seen.append(v * FACTOR)
        return len(self.seen)
    @staticmethod
    def factor():
        return FACTOR
    @property
    def scaled(self):
        return [v * FACTOR for v in self.seen]

c2 = Counter2()
c2.add(1)
"""

RESTORE_SCRIPT = r"""
import json, sys
from ipysession.capture.namespace import restore_imports, restore_value
from ipysession.model import ImportRecord, VariableRecord

doc = json.load(open(sys.argv[1]))
ns = {"__name__": "__main__"}
failed = [r for r, why in restore_imports(
    [ImportRecord.from_dict(d, "imports") for d in doc["imports"]], ns) if why]
for name, d in doc["variables"].items():
    record = VariableRecord.from_dict(name, d, name)
    if record.saved:
        buffers = [bytearray(b.data) for b in record.buffers]
        ns[name] = restore_value(record, record.data, buffers=buffers, namespace=ns)
Point, pt = ns["Point"], ns["pt"]
out = {
    "failed_imports": len(failed),
    "pt_is_point": type(pt) is Point,
    "scaled_is_point": type(ns["scale"](pt, 2)) is Point,
    "scaled": [ns["scale"](pt, 2).x, ns["scale"](pt, 2).y],
    "square": ns["square"](7),
    "arr_sum": float(ns["arr"].sum()),
    "df_shape": list(ns["df"].shape),
    "df_c_last": ns["df"]["c"].iloc[-1],
    "counts_e": ns["counts"]["e"],
    "pair_repr": repr(ns["pair"]),
    "pair_is_pair": type(ns["pair"]) is ns["Pair"],
    "pair_eq": ns["pair"] == ns["Pair"](1, "one"),
    "fh": [ns["fh"].tell(), ns["fh"].mode, ns["fh"].read()],
    "c2_add": ns["c2"].add(2),
}
ns["FACTOR"] = 10
out["times_factor_live"] = ns["times_factor"](2)
out["method_live"] = ns["c2"].scaled
out["static_live"] = ns["Counter2"].factor()
print(json.dumps(out))
"""


def test_notebook_definitions_restore_in_a_new_process(
    workload: dict[str, Any], tmp_path: Path
) -> None:
    run_cells([NOTEBOOK_EXTRA], workload)
    records = capture_all(workload)
    doc = {
        "imports": [r.to_dict() for r in records.values() if isinstance(r, ImportRecord)],
        "variables": {
            name: r.to_dict() for name, r in records.items() if isinstance(r, VariableRecord)
        },
    }
    path = tmp_path / "records.json"
    path.write_text(json.dumps(doc))
    script = tmp_path / "restore.py"
    script.write_text(RESTORE_SCRIPT)
    proc = subprocess.run(
        [sys.executable, str(script), str(path)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["failed_imports"] == 0
    # cloudpickle keeps one class per saved class in the new process: instances match classes.
    assert out["pt_is_point"]
    assert out["scaled_is_point"]
    assert out["scaled"] == [6, 8]
    assert out["square"] == 49
    assert out["arr_sum"] == pytest.approx(float(workload["arr"].sum()))
    assert out["df_shape"] == [10_000, 3]
    assert out["df_c_last"] == "row9999"
    assert out["counts_e"] == workload["counts"]["e"]
    assert out["pair_repr"] == "Pair(a=1, b='one')"
    assert out["pair_is_pair"]
    assert out["pair_eq"]
    assert out["fh"] == [5, "r+", "one\nline two\n"]
    assert out["c2_add"] == 2
    # Restored notebook functions and methods read the live namespace, as before the restart.
    assert out["times_factor_live"] == 20
    assert out["method_live"] == [30, 60]  # stale globals would give [9, 18]
    assert out["static_live"] == 10


def test_without_namespace_restored_functions_keep_their_own_globals() -> None:
    ns = run_cells(["LIMIT = 5\ndef over(v):\n    return v > LIMIT\n"])
    record = saved(capture_value("over", ns["over"]))
    assert record.data is not None
    fresh: dict[str, Any] = {"__name__": "__main__", "LIMIT": 100}
    detached = restore_value(record, record.data, buffers=buffers_of(record))
    bound = restore_value(record, record.data, buffers=buffers_of(record), namespace=fresh)
    assert detached(50) is True  # reads the LIMIT it was saved with
    assert bound(50) is False  # reads the namespace's LIMIT
    assert bound.__globals__ is fresh
    assert bound.__name__ == "over"
    assert bound.__qualname__ == "over"


def test_restored_function_keeps_defaults_closure_and_attributes() -> None:
    ns = run_cells(
        [
            "def make(k):\n"
            "    def inner(v, w=2, *, z=3):\n"
            "        return v * k + w + z\n"
            "    return inner\n"
            "f = make(10)\n"
            "f.tag = 'mine'\n"
        ]
    )
    fresh: dict[str, Any] = {"__name__": "__main__"}
    restored = round_trip(ns["f"], "f", fresh)
    assert restored(1) == 15
    assert restored(1, 0, z=0) == 10
    assert restored.tag == "mine"


# --- imports ------------------------------------------------------------------------------------


def test_imports_in_source_records_exact_statements() -> None:
    source = """
import os
import os.path
import xml.dom.minidom as md
import numpy as np, json
from os import path as p
from collections import Counter, OrderedDict as OD
from os import *
from . import sibling
if True:
    import string
try:
    import ujson as fastjson
except ImportError:
    import json as fastjson
def f():
    import shutil
class K:
    import glob
"""
    records = imports_in_source(source)
    assert records == [
        ImportRecord("os", "os"),
        ImportRecord("os", "os.path"),
        ImportRecord("md", "xml.dom.minidom"),
        ImportRecord("np", "numpy"),
        ImportRecord("json", "json"),
        ImportRecord("p", "os", "path"),
        ImportRecord("Counter", "collections", "Counter"),
        ImportRecord("OD", "collections", "OrderedDict"),
        ImportRecord("string", "string"),
        ImportRecord("fastjson", "ujson"),
        ImportRecord("fastjson", "json"),
    ]
    assert [r.statement() for r in records[:3]] == [
        "import os",
        "import os.path",
        "import xml.dom.minidom as md",
    ]


def test_imports_in_source_reads_magic_bodies_and_survives_bad_source() -> None:
    transformed = "get_ipython().run_cell_magic('time', '', 'import json as j\\n')\n"
    assert imports_in_source(transformed) == [ImportRecord("j", "json")]
    assert imports_in_source("%time import json") == []
    assert imports_in_source("def (:") == []


def test_capture_prefers_the_exact_import_while_it_still_holds() -> None:
    ns = run_cells(["from os import path as p\nimport collections.abc\n"])
    exact = {r.name: r for r in imports_in_source("from os import path as p")}
    assert capture_value("p", ns["p"], imports=exact) == ImportRecord("p", "os", "path")
    # Without the source, the module is still an import, by its own name.
    assert capture_value("p", ns["p"]) == ImportRecord("p", ns["p"].__name__)
    # `import collections.abc` binds `collections`; the exact record re-imports the submodule.
    exact = {r.name: r for r in imports_in_source("import collections.abc")}
    assert capture_value("collections", ns["collections"], imports=exact) == ImportRecord(
        "collections", "collections.abc"
    )
    # A name rebound since its import is not mistaken for the import.
    ns["p"] = [1, 2]
    exact = {"p": ImportRecord("p", "os", "path")}
    assert saved(capture_value("p", ns["p"], imports=exact)).encoding == "pickle"


def test_objects_from_installed_modules_are_imports() -> None:
    from json import dumps as to_json

    assert capture_value("to_json", to_json) == ImportRecord("to_json", "json", "dumps")
    assert capture_value("C", collections.Counter) == ImportRecord("C", "collections", "Counter")
    assert capture_value("add", np.add) == ImportRecord("add", "numpy", "add")
    assert capture_value("mylen", len) == ImportRecord("mylen", "builtins", "len")
    # A nested class cannot be written as `from m import A.B`: it is pickled by reference.
    record = saved(capture_value("od_keys", collections.OrderedDict.fromkeys))
    assert record.encoding == "pickle"
    # An instance is a value even though its class has a module.
    assert saved(capture_value("c", collections.Counter("ab"))).encoding == "pickle"


def test_import_matches() -> None:
    import os.path

    assert import_matches(ImportRecord("p", "os", "path"), os.path)
    assert import_matches(ImportRecord("os", "os.path"), os)
    assert import_matches(ImportRecord("osp", "os.path"), os.path)
    assert not import_matches(ImportRecord("p", "os", "path"), os)
    assert not import_matches(ImportRecord("x", "not_imported_anywhere_xyz"), os)


def test_the_main_module_is_not_saved() -> None:
    record = capture_value("main", sys.modules["__main__"])
    assert isinstance(record, VariableRecord)
    assert record.skipped == "the __main__ module is the namespace itself and is not saved"


def test_a_module_built_at_run_time_is_skipped_with_its_reason() -> None:
    record = capture_value("dyn", types.ModuleType("dyn_module_xyz"))
    assert isinstance(record, VariableRecord)
    assert record.skipped is not None
    assert "dyn_module_xyz" in record.skipped
    assert "cannot be imported again" in record.skipped


def test_restore_imports_reports_each_failure_and_goes_on() -> None:
    records = [
        ImportRecord("nope", "no_such_module_xyz"),
        ImportRecord("p", "os", "path"),
        ImportRecord("ghost", "os", "no_such_name_xyz"),
        ImportRecord("os", "os.path"),
        ImportRecord("mime", "email", "mime"),
        ImportRecord("np", "numpy"),
        ImportRecord("rel", ".sibling"),
    ]
    ns: dict[str, Any] = {}
    results = dict((r.name, why) for r, why in restore_imports(records, ns))
    assert results["nope"] == "No module named 'no_such_module_xyz'"
    assert results["ghost"] == "cannot import name 'no_such_name_xyz' from 'os'"
    assert results["rel"] is not None
    assert "relative import" in results["rel"]
    for ok in ("p", "os", "mime", "np"):
        assert results[ok] is None, ok
    import email.mime
    import os

    assert ns["p"] is os.path
    assert ns["os"] is os
    assert ns["mime"] is email.mime
    assert ns["np"] is np
    assert "nope" not in ns
    assert "ghost" not in ns


def test_restore_imports_reports_a_module_that_fails_while_importing(tmp_path: Path) -> None:
    (tmp_path / "broken_mod_xyz.py").write_text("raise RuntimeError('boom at import')\n")
    sys.path.insert(0, str(tmp_path))
    try:
        results = restore_imports(
            [ImportRecord("b", "broken_mod_xyz"), ImportRecord("j", "json")], {}
        )
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("broken_mod_xyz", None)
    assert results[0][1] == "RuntimeError: boom at import"
    assert results[1][1] is None


# --- values that cannot be saved ----------------------------------------------------------------


def test_unsaveable_values_are_skipped_with_type_and_error() -> None:
    lock = threading.Lock()
    record = capture_value("lock", lock)
    assert isinstance(record, VariableRecord)
    assert record.skipped == (
        "_thread.lock objects cannot be saved (TypeError: cannot pickle '_thread.lock' object)"
    )
    assert record.type_name == "_thread.lock"
    assert record.size == 0
    assert record.data is None

    with socket.socket() as sock:
        record = capture_value("sock", sock)
    assert isinstance(record, VariableRecord)
    assert record.skipped is not None
    assert record.skipped.startswith("socket.socket objects cannot be saved (TypeError:")


def test_notebook_instance_holding_a_lock_is_skipped() -> None:
    ns = run_cells(
        [
            "import threading\n"
            "class Holder:\n"
            "    def __init__(self):\n"
            "        self.lock = threading.Lock()\n"
            "h = Holder()\n"
        ]
    )
    record = capture_value("h", ns["h"])
    assert isinstance(record, VariableRecord)
    assert record.type_name == "__main__.Holder"
    assert record.skipped is not None
    assert record.skipped.startswith("__main__.Holder objects cannot be saved (TypeError:")
    assert "lock" in record.skipped


def test_capture_never_raises_for_a_hostile_value() -> None:
    class Hostile:
        def __reduce_ex__(self, protocol: Any) -> Any:
            raise RuntimeError("no " * 200)

        def __sizeof__(self) -> int:
            raise RuntimeError("no size either")

    record = capture_value("h", Hostile())
    assert isinstance(record, VariableRecord)
    assert record.skipped is not None
    assert "RuntimeError: no no" in record.skipped
    assert len(record.skipped) < 400  # a long error is cut, not pasted whole

    deep: list[Any] = []
    node = deep
    for _ in range(50_000):
        node.append([])
        node = node[0]
    record = capture_value("deep", deep)
    assert isinstance(record, VariableRecord)
    assert record.skipped is not None
    assert record.skipped.startswith("list objects cannot be saved (")
    assert "recursion" in record.skipped.lower()


def test_restore_of_a_skipped_record_raises_capture_error() -> None:
    record = VariableRecord("gen", "builtins.generator", 0, skipped="generator objects ...")
    with pytest.raises(CaptureError, match="was not saved: generator objects"):
        restore_value(record, b"")


def test_restore_reports_unknown_encoding_and_broken_data() -> None:
    record = VariableRecord("x", "builtins.int", 1, encoding="zstd-pickle", data=b"x")
    with pytest.raises(CaptureError, match="encoding 'zstd-pickle'") as info:
        restore_value(record, b"x")
    assert info.value.hint is not None
    assert "newer ipysession" in info.value.hint

    record = VariableRecord("x", "builtins.int", 3, encoding="pickle", data=b"not")
    with pytest.raises(CaptureError, match=r"Variable 'x' \(builtins.int\) could not be restored"):
        restore_value(record, b"not a pickle")

    missing = b"cno_such_module_xyz\nThing\n."
    record = VariableRecord("t", "no_such_module_xyz.Thing", len(missing), "pickle", missing)
    with pytest.raises(CaptureError, match="No module named 'no_such_module_xyz'") as info:
        restore_value(record, missing)
    assert info.value.hint == "Install the package it needs"


# --- budgets ------------------------------------------------------------------------------------


def test_default_limits_keep_a_50_mb_dataframe() -> None:
    frame = pd.DataFrame(np.arange(50 * MiB // 8, dtype=np.float64).reshape(-1, 8))
    assert frame.memory_usage(deep=True).sum() >= 50 * MiB
    record = saved(capture_value("big", frame, limits=DEFAULT_LIMITS))
    assert record.size >= 50 * MiB
    assert record.data is not None
    pd.testing.assert_frame_equal(
        restore_value(record, record.data, buffers=buffers_of(record)), frame
    )


def test_over_budget_by_estimate_is_refused_before_pickling() -> None:
    limits = CaptureLimits(max_variable_bytes=1 * MiB)
    record = capture_value("arr", np.zeros(2 * MiB // 8), limits=limits)
    assert isinstance(record, VariableRecord)
    assert record.skipped == (
        "numpy.ndarray of about 2.0 MiB (estimated) is over the per-variable limit of 1.0 MiB; "
        "`%config SessionManager.max_variable_bytes = 3 * 1024**2` (3.0 MiB) saves it"
    )
    assert record.type_name == "numpy.ndarray"


def test_over_budget_by_real_size_is_refused_after_pickling() -> None:
    # deep=False counts 8 bytes per string: the estimate is small, the pickle is not.
    frame = pd.DataFrame({"s": pd.Series(["x" * 2000 + str(i) for i in range(1000)], dtype=object)})
    assert estimate_size(frame) < 1 * MiB
    record = capture_value("frame", frame, limits=CaptureLimits(max_variable_bytes=1 * MiB))
    assert isinstance(record, VariableRecord)
    assert record.skipped is not None
    assert "estimated" not in record.skipped
    assert "over the per-variable limit of 1.0 MiB" in record.skipped
    assert "SessionManager.max_variable_bytes" in record.skipped


def test_session_budget_counts_what_is_already_used() -> None:
    limits = CaptureLimits(max_variable_bytes=10 * MiB, max_session_bytes=3 * MiB)
    arr = np.zeros(MiB // 8)
    assert saved(capture_value("a", arr, limits=limits, session_used=1 * MiB))
    record = capture_value("a", arr, limits=limits, session_used=int(2.5 * MiB))
    assert isinstance(record, VariableRecord)
    assert record.skipped is not None
    assert "would take the session over its limit of 3.0 MiB (2.5 MiB already used" in (
        record.skipped
    )
    assert "SessionManager.max_session_bytes" in record.skipped


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, None])
def test_capture_limits_must_be_positive_integers(bad: Any) -> None:
    with pytest.raises(ValueError, match="max_variable_bytes must be a positive number"):
        CaptureLimits(max_variable_bytes=bad)
    with pytest.raises(ValueError, match="max_session_bytes"):
        CaptureLimits(max_session_bytes=bad)


def test_default_limits() -> None:
    assert DEFAULT_LIMITS.max_variable_bytes == 256 * MiB
    assert DEFAULT_LIMITS.max_session_bytes == 1024 * MiB


def test_estimate_size() -> None:
    arr = np.zeros(1000)
    assert estimate_size(arr) == 8000
    frame = pd.DataFrame({"a": np.zeros(1000), "b": np.zeros(1000, dtype=np.int32)})
    assert estimate_size(frame) == frame.memory_usage(deep=False).sum()
    assert estimate_size(frame["a"]) == frame["a"].memory_usage(deep=False)
    assert estimate_size("x" * 10_000) >= 10_000
    ints = list(range(10_000))
    assert 200_000 < estimate_size(ints) < 600_000
    arrays = [np.zeros(100_000) for _ in range(10)]
    assert 8_000_000 <= estimate_size(arrays) < 9_000_000
    nested = {"frames": {i: np.zeros(10_000) for i in range(20)}}
    assert 1_600_000 <= estimate_size(nested) < 2_000_000
    assert estimate_size(pd.Index(np.arange(1000))) == 8000
    assert estimate_size({np.float64(i) for i in range(1000)}) > 1000 * 24
    # The same array shared by every slot is counted once per distinct object in the sample.
    shared = [arr] * 1000
    assert estimate_size(shared) < 1000 * 8000


# --- open files ---------------------------------------------------------------------------------


def restore_file(handle: Any) -> Any:
    record = saved(capture_value("fh", handle))
    assert record.encoding == "file"
    assert record.data is not None
    return restore_value(record, record.data)


def test_file_written_with_w_reopens_without_truncation(tmp_path: Path) -> None:
    path = tmp_path / "out.txt"
    with open(path, "w", encoding="utf-8") as handle:
        handle.write("first part|")  # not flushed yet: capture flushes before taking the position
        restored = restore_file(handle)
    with restored:
        assert restored.mode == "r+"
        assert restored.tell() == len("first part|")
        restored.write("second")
    assert path.read_text(encoding="utf-8") == "first part|second"


def test_file_in_append_mode_stays_append(tmp_path: Path) -> None:
    path = tmp_path / "log.txt"
    path.write_text("a\n")
    with open(path, "a") as handle:
        handle.write("b\n")
        restored = restore_file(handle)
    with restored:
        assert restored.mode == "a"
        restored.write("c\n")
    assert path.read_text() == "a\nb\nc\n"


def test_text_reader_resumes_at_its_line(tmp_path: Path) -> None:
    path = tmp_path / "lines.txt"
    path.write_text("".join(f"line {i} é\n" for i in range(100)), encoding="utf-8")
    with open(path, encoding="utf-8") as handle:
        for _ in range(10):
            handle.readline()
        restored = restore_file(handle)
        rest = handle.read()
    with restored:
        assert restored.mode == "r"
        assert restored.encoding == "utf-8"
        assert restored.read() == rest


@pytest.mark.parametrize(("mode", "buffering"), [("rb", -1), ("rb", 0), ("r+b", -1), ("wb", -1)])
def test_binary_files_keep_position_and_buffering(
    tmp_path: Path, mode: str, buffering: int
) -> None:
    path = tmp_path / "data.bin"
    path.write_bytes(bytes(range(256)))
    with open(path, mode, buffering=buffering) as handle:
        if "w" in mode:
            handle.write(bytes(range(100)))
        else:
            handle.seek(100)
        restored = restore_file(handle)
    with restored:
        assert restored.tell() == 100
        assert isinstance(restored, io.FileIO) == (buffering == 0)
        if "w" in mode:
            assert restored.mode == "rb+"
            assert path.read_bytes() == bytes(range(100))
        else:
            assert restored.read(4) == bytes([100, 101, 102, 103])


def test_file_restore_failures_are_clear(tmp_path: Path) -> None:
    path = tmp_path / "gone.txt"
    path.write_text("0123456789")
    with open(path) as handle:
        handle.seek(8)
        record = saved(capture_value("fh", handle))
    assert record.data is not None
    path.write_text("0123")
    with pytest.raises(CaptureError, match="shorter than the saved position 8") as info:
        restore_value(record, record.data)
    assert info.value.path == path
    path.unlink()
    with pytest.raises(CaptureError, match="the file no longer exists") as info:
        restore_value(record, record.data)
    assert info.value.path == path


def test_files_that_cannot_be_reopened_are_skipped(tmp_path: Path) -> None:
    path = tmp_path / "f.txt"
    path.write_text("x")
    closed = open(path)  # noqa: SIM115 - closed on purpose, right away
    closed.close()
    record = capture_value("closed", closed)
    assert isinstance(record, VariableRecord)
    assert record.skipped == "closed file objects are not saved"

    read_fd, write_fd = os.pipe()
    with open(read_fd, "rb") as reader, open(write_fd, "wb") as writer:
        for end in (reader, writer):
            record = capture_value("pipe", end)
            assert isinstance(record, VariableRecord)
            assert record.skipped is not None
            assert "file descriptor" in record.skipped

    with open(path) as handle:
        path.unlink()
        record = capture_value("deleted", handle)
    assert isinstance(record, VariableRecord)
    assert record.skipped is not None
    assert "deleted or moved" in record.skipped


def test_text_wrapper_over_memory_is_skipped() -> None:
    wrapper = io.TextIOWrapper(io.BytesIO(b"abc"), encoding="utf-8")
    record = capture_value("w", wrapper)
    assert isinstance(record, VariableRecord)
    assert (
        record.skipped == "_io.TextIOWrapper objects not backed by a file on disk cannot be saved"
    )


def test_damaged_file_description_is_a_capture_error() -> None:
    record = VariableRecord("fh", "_io.TextIOWrapper", 2, encoding="file", data=b"{}")
    with pytest.raises(CaptureError, match="damaged file description"):
        restore_value(record, b"{}")


def test_in_memory_files_are_ordinary_values() -> None:
    buffer = io.StringIO("hello")
    buffer.seek(2)
    restored = round_trip(buffer)
    assert restored.getvalue() == "hello"
    assert restored.tell() == 2


# --- fingerprints -------------------------------------------------------------------------------


def test_fingerprint_is_stable_and_cheap_to_compare() -> None:
    arr = np.arange(1_000_000, dtype=np.float64)
    assert fingerprint(arr) == fingerprint(arr)
    assert fingerprint(arr) != fingerprint(arr.astype(np.float32))
    assert fingerprint(arr) != fingerprint(arr.reshape(1000, 1000))
    copy = arr.copy()
    assert fingerprint(copy) == fingerprint(arr)  # content, not identity, at the top level


@pytest.mark.parametrize(
    "make",
    [
        lambda: np.arange(100.0),  # small: hashed whole
        lambda: np.arange(1_000_000.0),  # large: sampled
        lambda: np.asfortranarray(np.arange(1_000_000.0).reshape(1000, 1000)),
        lambda: np.arange(2_000_000.0)[::2],  # not contiguous
        lambda: np.array(pd.date_range("2020", periods=200_000, freq="s")),
    ],
)
def test_fingerprint_sees_a_change_at_a_sampled_place(make: Any) -> None:
    arr = make()
    before = fingerprint(arr)
    arr.flat[0] = arr.flat[1]
    assert fingerprint(arr) != before
    before = fingerprint(arr)
    arr.flat[-1] = arr.flat[0]
    assert fingerprint(arr) != before


def test_fingerprint_of_object_arrays_follows_elements() -> None:
    arr = np.array(["a", "b", "c"], dtype=object)
    before = fingerprint(arr)
    arr[1] = "z"
    assert fingerprint(arr) != before


def test_fingerprint_of_pandas_objects() -> None:
    frame = pd.DataFrame(
        {
            "i": np.arange(50_000),
            "f": np.linspace(0, 1, 50_000),
            "s": [f"s{i}" for i in range(50_000)],
            "cat": pd.Categorical(["x", "y"] * 25_000),
            "nullable": pd.array([1, None] * 25_000, dtype="Int64"),
            "t": pd.date_range("2020", periods=50_000, freq="min"),
        }
    )
    before = fingerprint(frame)
    assert before is not None
    assert fingerprint(frame) == before
    frame.loc[0, "f"] = 99.0
    assert fingerprint(frame) != before
    before = fingerprint(frame)
    frame.loc[0, "s"] = "changed"
    assert fingerprint(frame) != before
    before = fingerprint(frame)
    frame.loc[0, "nullable"] = None
    assert fingerprint(frame) != before
    before = fingerprint(frame)
    frame["new"] = 1
    assert fingerprint(frame) != before
    before = fingerprint(frame)
    frame.index = frame.index + 1
    assert fingerprint(frame) != before

    series = frame["f"].copy()
    before = fingerprint(series)
    series.iloc[-1] = -1.0
    assert fingerprint(series) != before
    multi = frame.set_index(["cat", "i"])
    assert fingerprint(multi) == fingerprint(multi)
    assert fingerprint(multi.index) != fingerprint(frame.set_index(["i", "cat"]).index)


def test_fingerprint_of_containers_and_objects() -> None:
    nested: list[Any] = [[1, 2], {"a": 1}, "text"]
    before = fingerprint(nested)
    nested[0].append(3)
    assert fingerprint(nested) != before

    mapping = {f"k{i}": i for i in range(10_000)}
    before = fingerprint(mapping)
    mapping["newest"] = 1
    assert fingerprint(mapping) != before
    before = fingerprint(mapping)
    mapping["k0"] = -1
    assert fingerprint(mapping) != before

    ns = run_cells(
        [
            "class Model:\n"
            "    def __init__(self):\n"
            "        self.weights = [0.0] * 10\n"
            "        self.name = 'm'\n"
            "class Slotted:\n"
            "    __slots__ = ('a', 'b')\n"
            "m = Model()\n"
            "s = Slotted()\n"
            "s.a = 1\n"
        ]
    )
    before = fingerprint(ns["m"])
    ns["m"].weights[3] = 1.0
    assert fingerprint(ns["m"]) != before
    before = fingerprint(ns["s"])
    ns["s"].b = 2
    assert fingerprint(ns["s"]) != before

    data = bytearray(b"x" * 1_000_000)
    before = fingerprint(data)
    data[0] = 0
    assert fingerprint(data) != before
    assert fingerprint("a" * 5000) != fingerprint("a" * 4999 + "b")


def test_fingerprint_of_functions_and_classes() -> None:
    ns = run_cells(["def f(v=1):\n    return v\nclass K:\n    x = 1\n"])
    before = fingerprint(ns["f"])
    assert fingerprint(ns["f"]) == before
    ns["f"].__defaults__ = (2,)
    assert fingerprint(ns["f"]) != before
    before = fingerprint(ns["K"])
    ns["K"].x = 2
    assert fingerprint(ns["K"]) != before


def test_fingerprint_of_edge_values() -> None:
    assert fingerprint(np.zeros(0)) != fingerprint(np.zeros((0, 3)))
    assert fingerprint(json) == fingerprint(json)
    assert fingerprint(json) != fingerprint(pickle)
    items = set(range(100))
    before = fingerprint(items)
    items.discard(0)
    items.add(1000)
    assert fingerprint(items) != before
    assert fingerprint(frozenset({1, 2})) != fingerprint(frozenset({1, 3}))
    assert fingerprint(None) == fingerprint(None)
    assert fingerprint(pd.Index(["a", "b"])) != fingerprint(pd.Index(["a", "c"]))
    assert fingerprint(pd.RangeIndex(5)) != fingerprint(pd.RangeIndex(6))


def test_type_name() -> None:
    assert type_name(pd.DataFrame) == f"{pd.DataFrame.__module__}.DataFrame"
    assert type_name(collections.OrderedDict) == "collections.OrderedDict"


# --- what a cell touches ------------------------------------------------------------------------


def test_cell_names_bindings_and_stores_through() -> None:
    names = cell_names(
        """
x = 1
y += 2
z: int = 3
a, (b, *c) = 1, (2, 3)
df['x'] = 1
obj.attr.deeper = 2
arr[3] += 1
del gone, d['k']
for i in range(3):
    pass
with open('f') as fh:
    pass
if (w := 5):
    pass
try:
    pass
except Exception as err:
    pass
import numpy as np, os.path
from json import dumps as to_json
def f():
    return 1
async def g():
    return 2
class K:
    pass
global declared
print(len(reader), reader.method())
"""
    )
    assert names.parsed
    assert names.bound == {
        *"xyzabc",
        "gone",
        "i",
        "fh",
        "w",
        "err",
        "np",
        "os",
        "to_json",
        "f",
        "g",
        "K",
        "declared",
    }
    assert names.mutated == {"df", "obj", "arr", "d"}
    assert {"reader", "print", "len", "range", "open"} <= names.read
    assert not names.read & names.bound


def test_cell_names_scoping() -> None:
    names = cell_names(
        """
def f(data=default):
    local = data
    big['k'] = 1
    global g
    g = 2
    for j in range(2):
        pass
class C:
    attr = value
    def m(self):
        return helper
squares = [n * n for n in source if n > limit]
@decorate
def h(a: Ann = 1) -> Ret:
    pass
class D(Base, metaclass=Meta):
    pass
found = [(last := n) for n in other]
fn = lambda q: q + captured
"""
    )
    assert names.bound == {"f", "g", "C", "squares", "last", "found", "fn", "h", "D"}
    assert "local" not in names.bound | names.mutated
    assert "j" not in names.bound
    assert "n" not in names.bound
    assert "attr" not in names.bound
    assert names.mutated == set()
    # A store through a name inside a function is a possible change (if the function runs).
    assert {"big", "default", "value", "helper", "source", "other", "captured"} <= names.read
    assert {"limit", "decorate", "Ann", "Ret", "Base", "Meta"} <= names.read


def test_cell_names_match_statement() -> None:
    names = cell_names(
        """
match command:
    case [first, *rest]:
        pass
    case {"k": val, **others}:
        pass
    case Point(x=px) as whole:
        pass
"""
    )
    assert {"first", "rest", "val", "others", "px", "whole"} <= names.bound
    assert "command" in names.read


def test_imports_inside_match_cases_count() -> None:
    source = (
        "match mode:\n"
        "    case 'fast':\n"
        "        import json as codec\n"
        "    case _:\n"
        "        import pickle as codec\n"
    )
    assert imports_in_source(source) == [
        ImportRecord("codec", "json"),
        ImportRecord("codec", "pickle"),
    ]


def test_cell_names_of_magics() -> None:
    names = cell_names("%time y = f(x)", "get_ipython().run_line_magic('time', 'y = f(x)')\n")
    assert names.parsed
    assert "y" in names.bound
    assert {"f", "x"} <= names.read
    cell_magic = "get_ipython().run_cell_magic('capture', 'out', \"d['k'] = 1\\nprint(e)\\n\")\n"
    names = cell_names("%%capture out\nd['k'] = 1\nprint(e)\n", cell_magic)
    assert "d" in names.mutated
    assert "e" in names.read
    names = cell_names(
        "%%bash\necho $HOME\n", "get_ipython().run_cell_magic('bash', '', 'echo $HOME\\n')\n"
    )
    assert names.parsed
    assert "echo" in names.read  # a non-Python body: its words count as read


def test_cell_names_fall_back_to_words_when_nothing_parses() -> None:
    names = cell_names("!ls $folder && echo {df.shape}")
    assert not names.parsed
    assert names.bound == frozenset()
    assert {"ls", "folder", "echo", "df", "shape"} <= names.read
    names = cell_names("x = (", "also broken (")
    assert not names.parsed
    assert {"x", "also", "broken"} <= names.read


# --- change tracking ----------------------------------------------------------------------------


@pytest.fixture
def tracked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The reference namespace plus a large DataFrame and a large list, all taken as saved."""
    monkeypatch.chdir(tmp_path)
    ns = run_cells(REFERENCE_CELLS)
    run_cells(
        [
            "big_df = pd.DataFrame({'a': np.arange(200_000), 'b': np.linspace(0, 1, 200_000)})\n"
            "big_list = list(range(100_000))\n"
            "small = [1, 2, 3]\n"
        ],
        ns,
    )
    tracker = ChangeTracker()
    tracker.sync(ns)
    yield tracker, ns
    ns["fh"].close()


def test_first_post_cell_reports_every_persistable_name(workload: dict[str, Any]) -> None:
    tracker = ChangeTracker()
    workload["_i1"] = "x = 1"
    workload["Out"] = {}
    changes = cell(tracker, workload, "x = 1")
    assert changes.changed == set(persistable(workload))
    assert changes.deleted == set()
    assert "_i1" not in changes.changed
    assert "__builtins__" not in changes.changed


def test_read_only_cell_on_a_big_dataframe_reports_nothing(tracked: Any) -> None:
    tracker, ns = tracked
    assert estimate_size(ns["big_df"]) > RECAPTURE_BELOW
    for source in (
        "big_df.head()",
        "big_df.describe()",
        "print(big_df.shape)",
        "big_df['a'].sum()",
    ):
        changes = cell(tracker, ns, source)
        assert changes.changed == set(), source
        assert not changes


def test_store_through_a_dataframe_reports_it(tracked: Any) -> None:
    tracker, ns = tracked
    assert cell(tracker, ns, "big_df['x'] = 1").changed == {"big_df"}
    assert cell(tracker, ns, "big_df.loc[5, 'a'] = -1").changed == {"big_df"}
    assert cell(tracker, ns, "big_df.head()").changed == set()


def test_in_place_method_on_a_read_dataframe_is_caught_by_its_fingerprint(tracked: Any) -> None:
    tracker, ns = tracked
    changes = cell(tracker, ns, "big_df.pop('b')")
    assert changes.changed == {"big_df"}
    assert changes.recheck == set()
    assert cell(tracker, ns, "big_df.head()").changed == set()


def test_small_list_append_is_rechecked(tracked: Any) -> None:
    tracker, ns = tracked
    changes = cell(tracker, ns, "small.append(4)")
    assert changes.changed == {"small"}
    assert changes.recheck == {"small"}


def test_big_list_append_is_caught_by_its_fingerprint(tracked: Any) -> None:
    tracker, ns = tracked
    assert estimate_size(ns["big_list"]) > RECAPTURE_BELOW
    changes = cell(tracker, ns, "big_list.append(4)")
    assert changes.changed == {"big_list"}
    assert changes.recheck == set()
    assert cell(tracker, ns, "len(big_list)").changed == set()


def test_rebinding_new_and_deleted_names(tracked: Any) -> None:
    tracker, ns = tracked
    assert cell(tracker, ns, "text = 'other'").changed == {"text"}
    assert cell(tracker, ns, "fresh = 1\nalso = [2]").changed == {"fresh", "also"}
    changes = cell(tracker, ns, "del fresh, ints")
    assert changes.deleted == {"fresh", "ints"}
    assert changes.changed == set()
    # A rebinding the source does not show is found by its id: by the cell when the source is
    # opaque (exec, globals()), by the next full pass otherwise (see the tests below).
    changes = cell(tracker, ns, "globals()['arr'] = np.zeros(3)")
    assert changes.changed == {"arr"}
    assert "fresh" not in tracker.tracked


def test_immutable_and_module_reads_cost_nothing(tracked: Any) -> None:
    tracker, ns = tracked
    changes = cell(tracker, ns, "print(text, n1, n2, np.pi, json.dumps(1), collections)")
    assert changes.changed == set()


def test_immutable_containers_are_not_rechecked(tracked: Any) -> None:
    tracker, ns = tracked
    ns["point3"] = (1, "a", 2.0)
    ns["tags"] = frozenset({"x", "y"})
    ns["holder"] = ([1],)
    cell(tracker, ns, "pass")
    changes = cell(tracker, ns, "print(point3, tags, holder)")
    assert changes.changed == {"holder"}  # a tuple holding a list may have changed inside
    assert changes.recheck == {"holder"}


def test_notebook_definitions_are_fingerprinted_not_repickled(tracked: Any) -> None:
    tracker, ns = tracked
    assert cell(tracker, ns, "scale(pt, 2)\nsquare(3)\nPoint(1, 2)").changed == {"pt"}
    assert cell(tracker, ns, "scale.cache = {}").changed == {"scale"}
    assert cell(tracker, ns, "Point.origin = Point(0, 0)").changed == {"Point"}
    assert cell(tracker, ns, "Point.__name__").changed == set()


def test_store_through_an_alias_changes_the_original(tracked: Any) -> None:
    tracker, ns = tracked
    changes = cell(tracker, ns, "alias = mapping")
    assert changes.changed - changes.recheck == {"alias"}
    assert changes.recheck == {"mapping"}  # read, and small: re-captured and compared
    changes = cell(tracker, ns, "alias['new'] = 1")
    assert changes.changed == {"alias", "mapping"}


def test_magics_through_the_transformed_source(tracked: Any) -> None:
    tracker, ns = tracked
    changes = cell(
        tracker,
        ns,
        "%time ints = list(range(3))",
        transformed="get_ipython().run_line_magic('time', 'ints = list(range(3))')\n",
        run="ints = list(range(3))",
    )
    assert changes.changed == {"ints"}
    changes = cell(
        tracker,
        ns,
        "%%capture\nbig_df['y'] = 2\n",
        transformed="get_ipython().run_cell_magic('capture', '', \"big_df['y'] = 2\\n\")\n",
        run="big_df['y'] = 2",
    )
    assert changes.changed == {"big_df"}


def test_unparseable_cell_checks_every_word(tracked: Any) -> None:
    tracker, ns = tracked
    changes = cell(tracker, ns, "!echo {small} {big_df}", run="small.append(9)")
    assert changes.changed == {"small"}
    assert changes.recheck == {"small"}


def test_excluded_and_hidden_names(tracked: Any) -> None:
    tracker, ns = tracked
    tracker.exclude = ["big_*"]
    changes = cell(tracker, ns, "pass")
    assert changes.deleted == {"big_df", "big_list"}
    assert cell(tracker, ns, "big_new = 1").changed == set()
    tracker.exclude = []
    assert cell(tracker, ns, "pass").changed == {"big_df", "big_list", "big_new"}

    hidden = {"startup_helper"}
    tracker = ChangeTracker(hidden=hidden)
    ns2 = {"startup_helper": 1, "mine": 2}
    assert cell(tracker, ns2, "pass").changed == {"mine"}


def test_sampled_change_is_missed_by_post_cell_and_caught_by_deep_full_pass() -> None:
    ns = run_cells(["import numpy as np\nbig = np.zeros(1_000_000)\n"])  # 8 MB
    tracker = ChangeTracker()
    tracker.sync(ns)
    # 64 slices of 1 KiB spread over 8 MB: the middle of a gap between two slices is unsampled.
    step = (8_000_000 - 1024) / 63
    unsampled = int(10.5 * step) // 8
    changes = cell(tracker, ns, f"np.put(big, [{unsampled}], 1.0)")
    assert changes.changed == set()  # the documented trade-off of a bounded fingerprint
    assert tracker.full_pass(ns).changed == set()
    deep = tracker.full_pass(ns, deep=True)
    assert deep.changed == {"big", "np"}  # every variable, imports included
    assert deep.recheck == {"big", "np"}
    # A change at a sampled place (the first slice) is seen at once.
    assert cell(tracker, ns, "np.put(big, [0], 1.0)").changed == {"big"}


def test_full_pass_catches_changes_made_outside_the_cell_text(tracked: Any) -> None:
    tracker, ns = tracked
    cell(tracker, ns, "def grow():\n    big_list.append(1)\n    big_df.loc[0, 'a'] = -5\n")
    changes = cell(tracker, ns, "grow()")
    assert changes.changed == set()
    full = tracker.full_pass(ns)
    assert {"big_list", "big_df"} <= full.changed
    assert not {"big_list", "big_df"} & full.recheck
    # Small values are simply re-captured by a full pass.
    assert {"small", "mapping", "pt"} <= full.recheck
    # Immutables and imports are not.
    assert not {"text", "n1", "np"} & full.changed
    assert tracker.full_pass(ns).changed == full.recheck - {"big_list", "big_df"}


def test_full_pass_finds_new_and_deleted_names(tracked: Any) -> None:
    tracker, ns = tracked
    ns["pushed"] = 1
    del ns["small"]
    full = tracker.full_pass(ns)
    assert "pushed" in full.changed
    assert full.deleted == {"small"}


def test_note_captured_stops_rechecking_unsaveable_and_imported_values(tracked: Any) -> None:
    tracker, ns = tracked
    ns["gen2"] = (i for i in range(3))
    assert cell(tracker, ns, "pass").changed == {"gen2"}
    assert cell(tracker, ns, "next(gen2)").changed == {"gen2"}
    tracker.note_captured("gen2", capture_value("gen2", ns["gen2"]))
    assert cell(tracker, ns, "next(gen2)").changed == set()
    assert "gen2" not in tracker.full_pass(ns).changed
    assert cell(tracker, ns, "gen2 = (i for i in range(3))").changed == {"gen2"}

    run_cells(["from collections import OrderedDict as OD\n"], ns)
    assert cell(tracker, ns, "pass").changed == {"OD"}
    tracker.note_captured("OD", capture_value("OD", ns["OD"]))
    assert cell(tracker, ns, "OD.fromkeys('ab')").changed == set()
    tracker.note_captured("not-tracked", ImportRecord("x", "x"))  # ignored


def test_forget_and_reset(tracked: Any) -> None:
    tracker, ns = tracked
    tracker.forget("small")
    assert "small" not in tracker.tracked
    assert cell(tracker, ns, "pass").changed == {"small"}
    tracker.reset()
    assert cell(tracker, ns, "pass").changed == set(persistable(ns))


def test_sync_selected_names(tracked: Any) -> None:
    tracker, ns = tracked
    tracker.reset()
    tracker.sync(ns, ["big_df", "not_there", "_i3"])
    assert tracker.tracked == {"big_df"}
    assert tracker.stored_fingerprint("big_df") == fingerprint(ns["big_df"])
    assert tracker.stored_fingerprint("small") is None


def test_change_set_truthiness() -> None:
    assert not ChangeSet()
    assert ChangeSet(changed={"x"})
    assert ChangeSet(deleted={"x"})


def test_post_cell_without_pre_cell_still_works() -> None:
    tracker = ChangeTracker()
    ns: dict[str, Any] = {"a": [1]}
    assert tracker.post_cell(ns, "a").changed == {"a"}
    ns["a"].append(2)
    assert tracker.post_cell(ns, "a").recheck == {"a"}


def test_digest_parts_hashes_exactly_the_parts_capture_stores(workload: dict[str, Any]) -> None:
    """The stream's and each out-of-band buffer's hash must be those of the stored bytes, or an
    unchanged value would look changed (a wasted write) and, worse, a changed one could look
    unchanged."""
    workload["fortran"] = np.asfortranarray(np.arange(60_000.0).reshape(300, 200))
    workload["frame"] = pd.DataFrame({"a": np.arange(50_000.0), "b": ["x"] * 50_000})
    encodings = []
    with_buffers = 0
    for name, value in persistable(workload).items():
        # One after the other: pickling an instance can cache __slotnames__ on its class, which
        # changes the class's own pickle (the check then re-captures it: the safe direction).
        record = capture_value(name, value)
        if not isinstance(record, VariableRecord) or record.encoding not in PICKLE_ENCODINGS:
            continue
        assert record.data is not None
        parts = digest_parts(value, record.encoding, KEY.content_hasher)
        assert parts is not None, name
        stream_id, buffer_ids = parts
        assert stream_id == KEY.content_id(record.data), name
        assert buffer_ids == [KEY.content_id(b.data or b"") for b in record.buffers], name
        with_buffers += bool(record.buffers)
        encodings.append(record.encoding)
    assert len(encodings) >= 10
    assert with_buffers >= 2  # the Fortran array and the frame's float column at least
    assert set(encodings) == set(PICKLE_ENCODINGS)


PICKLE_ENCODINGS = ("pickle", "cloudpickle")


def buffers_of(record: VariableRecord) -> list[bytearray]:
    """A record's out-of-band buffers as restore gets them: writable memory."""
    return [bytearray(b.data or b"") for b in record.buffers]


def test_digest_parts_says_no_for_what_it_cannot_serialize() -> None:
    assert digest_parts((n for n in range(3)), "pickle", KEY.content_hasher) is None
    assert digest_parts(threading.Lock(), "cloudpickle", KEY.content_hasher) is None
    assert digest_parts(1, "file", KEY.content_hasher) is None  # not a pickle encoding


def test_merge_imports_keeps_every_submodule_a_package_name_needs() -> None:
    stats, optimize = ImportRecord("scipy", "scipy.stats"), ImportRecord("scipy", "scipy.optimize")
    plain = ImportRecord("scipy", "scipy")
    assert merge_imports((), [stats]) == (stats,)
    assert merge_imports((stats,), [optimize]) == (stats, optimize)
    assert merge_imports((stats, optimize), [stats]) == (optimize, stats)  # once, latest last
    assert merge_imports((stats,), [plain]) == (stats, plain)
    # Any other kind of import replaces what the name held.
    as_alias = ImportRecord("scipy", "numpy")
    assert merge_imports((stats, optimize), [as_alias]) == (as_alias,)
    assert merge_imports((as_alias,), [stats]) == (stats,)
    from_import = ImportRecord("path", "os", "path")
    assert merge_imports((ImportRecord("path", "os.path"),), [from_import]) == (from_import,)
