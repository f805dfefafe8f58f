"""What the benchmarked kernels run: the reference, small, large, autosave-scaling and (when asked)
gigabyte workloads.

A workload is a list of notebook cells (the same cells go into the ``.ipynb`` Kishu needs and are
re-run by the ``rerun`` tool), the names whose restoration is checked, the "small cell" whose added
cost is measured, and any data files the cells open. Every value is deterministic (seeded random
generators) so a re-run gives equal fingerprints.

How the reference workload counts its 46 names (the table of issue 6 counts the same way):

=========================================  =====
imports ``np``, ``pd``, ``json``, ``collections``      4
class ``Point``, instance ``point``, function ``scale``, lambda ``square``   4
``arr`` (floats), ``df`` (DataFrame), ``table`` (dict), ``numbers`` (list),
``counts`` (Counter), ``text`` (500-char str)   6
30 small ints ``n00`` ... ``n29``                30
generator ``squares``, open file ``handle``      2
=========================================  =====
"""

from __future__ import annotations

from dataclasses import dataclass, field

REFERENCE_DATA_FILE = "reference-data.txt"


@dataclass(frozen=True)
class Sizes:
    """Every size a workload uses; ``--smoke`` shrinks them all."""

    array_floats: int = 100_000
    frame_rows: int = 10_000
    dict_entries: int = 2_000
    list_ints: int = 10_000
    large_frame_mb: float = 100.0
    large_variables: int = 200
    scaling_mb: tuple[float, ...] = (1.0, 10.0, 100.0)
    #: The gigabyte workload's data, run only when asked (``--gigabyte-mb``, ``--workloads``).
    gigabyte_mb: float = 1024.0
    small_cells: int = 20
    warmup_cells: int = 3

    @classmethod
    def smoke(cls) -> Sizes:
        return cls(
            array_floats=1_000,
            frame_rows=100,
            dict_entries=50,
            list_ints=100,
            large_frame_mb=2.0,
            large_variables=20,
            scaling_mb=(0.1, 0.5, 2.0),
            gigabyte_mb=8.0,
            small_cells=5,
            warmup_cells=1,
        )


@dataclass(frozen=True)
class Workload:
    """Cells to run, names to check after a restore, and the cell whose cost is measured."""

    name: str
    description: str
    cells: list[str]
    names: list[str]
    small_cell: str
    files: dict[str, str] = field(default_factory=dict)
    restore: bool = True
    data_mb: float | None = None
    group: str = ""
    #: Only these tools run it (``None``: every tool that runs the group).
    tools: tuple[str, ...] | None = None
    #: After the restore, one cell names these: launch to its reply is when they are all bound
    #: (``launch_to_bound_s``), whether the tool bound them before the kernel was ready or not.
    bound_names: tuple[str, ...] = ()


def reference(sizes: Sizes) -> Workload:
    ints = "\n".join(f"n{i:02d} = {i}" for i in range(30))
    cells = [
        "import numpy as np, pandas as pd, json, collections",
        (
            "class Point:\n"
            "    def __init__(self, x, y):\n"
            "        self.x, self.y = x, y\n"
            "\n"
            "    def norm(self):\n"
            "        return (self.x ** 2 + self.y ** 2) ** 0.5\n"
            "\n"
            "\n"
            "point = Point(3.0, 4.0)\n"
            "\n"
            "\n"
            "def scale(values, factor=2.0):\n"
            "    return [v * factor for v in values]\n"
            "\n"
            "\n"
            "square = lambda v: v * v"
        ),
        (
            f"arr = np.random.default_rng(6).random({sizes.array_floats})\n"
            "df = pd.DataFrame({\n"
            f"    'id': np.arange({sizes.frame_rows}),\n"
            f"    'value': np.random.default_rng(7).random({sizes.frame_rows}),\n"
            f"    'label': [f'row{{i}}' for i in range({sizes.frame_rows})],\n"
            "})"
        ),
        (
            f"table = {{f'key{{i}}': i * 0.5 for i in range({sizes.dict_entries})}}\n"
            f"numbers = list(range({sizes.list_ints}))\n"
            "counts = collections.Counter(f'w{i % 97}' for i in range(5000))\n"
            "text = ('ipysession keeps the workspace ' * 20)[:500]"
        ),
        ints,
        "squares = (i * i for i in range(1000))\nnext(squares)",
        f"handle = open({REFERENCE_DATA_FILE!r})\nhandle.readline()",
        "print(json.dumps({'points': point.norm(), 'rows': len(df), 'first': square(3)}))",
    ]
    names = [
        "np",
        "pd",
        "json",
        "collections",
        "Point",
        "point",
        "scale",
        "square",
        "arr",
        "df",
        "table",
        "numbers",
        "counts",
        "text",
        *(f"n{i:02d}" for i in range(30)),
        "squares",
        "handle",
    ]
    return Workload(
        name="reference",
        description=(
            "imports, a class and its instance, a function, a lambda, "
            f"{sizes.array_floats:,}-float array, {sizes.frame_rows:,}-row DataFrame, "
            f"{sizes.dict_entries:,}-entry dict, {sizes.list_ints:,}-int list, Counter, "
            "500-char str, 30 ints, a generator, an open file"
        ),
        cells=cells,
        names=names,
        small_cell="n00 += 1",
        files={REFERENCE_DATA_FILE: "first line\nsecond line\nthird line\n"},
        group="reference",
    )


def small(sizes: Sizes) -> Workload:
    cells = ["a = 1", "b = 2", "c = a + b", "print(c)", "d = c * 10", "a, b"]
    return Workload(
        name="small",
        description="a few ints and a short history",
        cells=cells,
        names=["a", "b", "c", "d"],
        small_cell="a += 1",
        group="small",
    )


def large(sizes: Sizes) -> Workload:
    rows = int(sizes.large_frame_mb * 1_000_000 / 80)  # 10 float64 columns
    variables = []
    for i in range(sizes.large_variables):
        kind = i % 4
        if kind == 0:
            variables.append(f"v{i:03d} = {i}")
        elif kind == 1:
            variables.append(f"v{i:03d} = 'value {i}' * 4")
        elif kind == 2:
            variables.append(f"v{i:03d} = list(range({i}))")
        else:
            variables.append(f"v{i:03d} = {{'index': {i}, 'half': {i / 2}}}")
    cells = [
        "import numpy as np, pandas as pd",
        (
            f"big = pd.DataFrame(np.random.default_rng(8).random(({rows}, 10)), "
            "columns=[f'c{i}' for i in range(10)])"
        ),
        "\n".join(variables),
    ]
    names = ["np", "pd", "big", *(f"v{i:03d}" for i in range(sizes.large_variables))]
    return Workload(
        name="large",
        description=(
            f"a {sizes.large_frame_mb:g} MB DataFrame and {sizes.large_variables} variables"
        ),
        cells=cells,
        names=names,
        small_cell="v000 += 1",
        data_mb=sizes.large_frame_mb,
        group="large",
        bound_names=("big",),
    )


def scaling(sizes: Sizes, megabytes: float) -> Workload:
    floats = int(megabytes * 1_000_000 / 8)
    cells = [
        "import numpy as np",
        f"untouched = np.random.default_rng(9).random({floats})",
        "small = 0",
    ]
    return Workload(
        name=f"scaling-{megabytes:g}MB",
        description=f"{megabytes:g} MB of untouched data plus one small changed variable",
        cells=cells,
        names=["np", "untouched", "small"],
        small_cell="small += 1",
        restore=False,
        data_mb=megabytes,
        group="scaling",
    )


def gigabyte(sizes: Sizes) -> Workload:
    """Several large arrays and frames (issue 15): half the data in three arrays, half in two
    DataFrames, random floats (incompressible), and one small variable the small cell changes."""
    total = sizes.gigabyte_mb * 1_000_000
    array_floats = int(total / 2 / 3 / 8)
    frame_rows = int(total / 2 / 2 / 8 / 8)  # 8 float64 columns
    arrays = [f"a{i}" for i in range(3)]
    frames = [f"f{i}" for i in range(2)]
    cells = [
        "import numpy as np, pandas as pd\nrng = np.random.default_rng(15)",
        *(f"{name} = rng.random({array_floats})" for name in arrays),
        *(
            f"{name} = pd.DataFrame(rng.random(({frame_rows}, 8)), "
            "columns=[f'c{i}' for i in range(8)])"
            for name in frames
        ),
        "small = 0",
    ]
    return Workload(
        name="gigabyte",
        description=f"{sizes.gigabyte_mb:g} MB in three arrays and two DataFrames",
        cells=cells,
        names=["np", "pd", *arrays, *frames, "small"],
        small_cell="small += 1",
        data_mb=sizes.gigabyte_mb,
        group="gigabyte",
        # ipysession-base runs only when asked for (--tools): a change against its base.
        tools=("none", "ipysession", "ipysession-base"),
        bound_names=(*arrays, *frames),
    )


WORKLOAD_GROUPS = ("reference", "small", "large", "scaling")
#: Run only when named: a gigabyte of data takes minutes per trial on a small machine.
OPTIONAL_GROUPS = ("gigabyte",)


def build(groups: list[str], sizes: Sizes) -> list[Workload]:
    """The workloads of the named groups, in a fixed order."""
    built: list[Workload] = []
    for group in WORKLOAD_GROUPS:
        if group not in groups:
            continue
        if group == "reference":
            built.append(reference(sizes))
        elif group == "small":
            built.append(small(sizes))
        elif group == "large":
            built.append(large(sizes))
        else:
            built.extend(scaling(sizes, mb) for mb in sizes.scaling_mb)
    if "gigabyte" in groups:
        built.append(gigabyte(sizes))
    return built
