"""The reference workload of the workspace issue, shared by tests and benchmarks.

Run as cells in a kernel. ``FINGERPRINT`` computes, inside the kernel, a content fingerprint per
variable so values can be compared across a restart without shipping them to the test.
"""

from __future__ import annotations

REFERENCE_CELLS = [
    "import numpy as np, pandas as pd, json, collections",
    """
class Point:
    def __init__(self, x, y):
        self.x, self.y = x, y
    def __eq__(self, other):
        return isinstance(other, Point) and (self.x, self.y) == (other.x, other.y)
    def norm(self):
        return (self.x ** 2 + self.y ** 2) ** 0.5

def scale(p, k):
    return Point(p.x * k, p.y * k)

square = lambda v: v * v
pt = Point(3, 4)
""",
    """
rng = np.random.default_rng(42)
arr = rng.random(100_000)
df = pd.DataFrame(
    {"a": np.arange(10_000), "b": rng.random(10_000), "c": ["row%d" % i for i in range(10_000)]}
)
mapping = {f"key{i}": i * 1.5 for i in range(2_000)}
ints = list(range(10_000))
counts = collections.Counter("the quick brown fox jumps over the lazy dog")
text = "x" * 500
""",
    "\n".join(f"n{i} = {i}" for i in range(30)),
    "gen = (i * i for i in range(10))",
    """
fh = open("data.txt", "w+")
fh.write("line one\\nline two\\n")
fh.flush()
fh.seek(5)
""",
]

#: Variables that must come back equal (everything picklable in the workload).
PICKLABLE = [
    "pt",
    "arr",
    "df",
    "mapping",
    "ints",
    "counts",
    "text",
    *[f"n{i}" for i in range(30)],
]
IMPORTS = ["np", "pd", "json", "collections"]
CALLABLES = ["Point", "scale", "square"]

FINGERPRINT = """
def __ipys_fp():
    import hashlib, pickle
    out = {}
    for name in %r:
        value = globals()[name]
        try:
            import pandas, numpy
            if isinstance(value, pandas.DataFrame):
                columns = [value[c].tolist() for c in value.columns]
                data = pickle.dumps((list(value.columns), columns))
            elif isinstance(value, numpy.ndarray):
                data = value.tobytes() + str(value.dtype).encode()
            elif type(value).__name__ == "Point":
                data = repr((value.x, value.y)).encode()
            else:
                data = pickle.dumps(value)
        except Exception as exc:
            data = repr(exc).encode()
        out[name] = hashlib.sha256(data).hexdigest()[:16]
    return out
print(repr(__ipys_fp())); del __ipys_fp
"""


def fingerprint_code(names: list[str]) -> str:
    return FINGERPRINT % (names,)
