"""The tools compared, each behind the same small adapter.

A tool says how its kernel is started (environment, arguments), how it attaches after start, how a
save and a restore are done, and where its bytes are. The protocol in :mod:`benchmarks.runner`
calls these in the same order for every tool. A tool that cannot run here (not installed, extension
not written yet, fails to load) raises :class:`ToolFailure` and is reported as ``failed: <reason>``,
never dropped.

- ``none``: a plain kernel, the baseline every "added" figure is measured against.
- ``ipysession``: kernel started with ``--IPKernelApp.extensions=['ipysession']``; saves
  automatically after each cell and with ``%session save``; restores itself when
  ``restart_kernel()`` starts the next kernel.
- ``dill``: ``dill.dump_session(path)`` / ``dill.load_session(path)``. The plain dump is attempted
  first (it fails when a generator is in the namespace); then the values ``dill`` cannot pickle are
  deleted and the dump repeated, to get a number at all.
- ``store``: IPython's ``%store NAME`` for every variable, ``%store -r`` after the restart.
- ``kishu``: ``init_kishu(path_to_ipynb)`` inside the kernel (``ENV_KISHU_TEST_MODE=1`` since no
  frontend saves the notebook), which commits after every cell; restore is ``init_kishu`` again in
  the restarted kernel and ``_kishu.checkout(<head commit>)``.
- ``rerun``: nothing saved; restore re-runs every cell of the workload in the restarted kernel.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

from .kernel import BenchKernel, ExecResult, kernel_env
from .workloads import Workload


class ToolFailure(RuntimeError):
    """The tool cannot be measured here; the message says why."""


@dataclass
class Context:
    """Where one tool keeps its state for one workload in one trial, and what it noted."""

    root: Path
    workload: Workload
    notes: list[str] = field(default_factory=list)
    #: Every cell run so far in this kernel, in order (what ``rerun`` replays).
    history: list[str] = field(default_factory=list)
    state: dict[str, object] = field(default_factory=dict)

    @property
    def work(self) -> Path:
        return self.root / "work"

    @property
    def ipythondir(self) -> Path:
        return self.root / "ipython"

    @property
    def notebook(self) -> Path:
        return self.work / f"{self.workload.name}.ipynb"

    def setup(self) -> None:
        self.work.mkdir(parents=True, exist_ok=True)
        self.ipythondir.mkdir(parents=True, exist_ok=True)
        for name, text in self.workload.files.items():
            (self.work / name).write_text(text, encoding="utf-8")
        # Every tool gets the same notebook on disk (Kishu needs one; the others ignore it).
        notebook = nbformat.v4.new_notebook()
        notebook.cells = [nbformat.v4.new_code_cell(cell) for cell in self.workload.cells]
        nbformat.write(notebook, str(self.notebook))


@dataclass
class Saved:
    """A save: client and kernel seconds, or why it failed."""

    seconds: float | None = None
    kernel_seconds: float | None = None
    failed: str | None = None
    automatic: bool = False


def tree_bytes(*paths: Path) -> int:
    """Apparent size of every file under ``paths``."""
    total = 0
    for path in paths:
        if path.is_file():
            total += path.stat().st_size
        elif path.is_dir():
            total += sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    return total


def _seconds(result: ExecResult) -> tuple[float, float | None]:
    kernel = None if result.kernel_ms is None else result.kernel_ms / 1000.0
    return result.client_ms / 1000.0, kernel


def _version(distribution: str) -> str | None:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


class Tool:
    """The adapter every tool implements; the defaults describe a tool that does nothing."""

    name = "tool"
    label = "tool"
    #: Saves by itself after every cell (its per-cell cost is its autosave cost).
    automatic = False
    #: Has a restore step worth measuring after ``restart_kernel()``.
    restores = True
    #: Workload groups this tool runs (``None``: all).
    groups: tuple[str, ...] | None = None
    #: Restores while the kernel starts (before it is ready), not in cells after it.
    restores_at_start = False

    def unavailable(self) -> str | None:
        """Why this tool cannot run here, or ``None``."""
        return None

    def version(self) -> str | None:
        return None

    def env(self, ctx: Context) -> dict[str, str | None]:
        return {}

    def kernel_arguments(self, ctx: Context) -> list[str]:
        return []

    def attach(self, kernel: BenchKernel, ctx: Context) -> None:
        """After the kernel started, before the workload runs."""

    def save(self, kernel: BenchKernel, ctx: Context) -> Saved | None:
        return None

    def restore(self, kernel: BenchKernel, ctx: Context) -> float | None:
        """After ``restart_kernel()`` returned a ready kernel: client seconds spent restoring."""
        return None

    def bytes_on_disk(self, ctx: Context) -> int | None:
        return None

    def pickled_bytes(self, ctx: Context) -> int | None:
        """The serialized size of the variables the tool saved, where it can tell."""
        return None


class NoTool(Tool):
    name = "none"
    label = "plain kernel"
    restores = False


class RerunTool(Tool):
    name = "rerun"
    label = "re-running every cell"

    def restore(self, kernel: BenchKernel, ctx: Context) -> float | None:
        total = 0.0
        for index, cell in enumerate(ctx.history):
            total += kernel.run(cell, f"re-running cell {index + 1}").client_ms / 1000.0
        return total


class DillTool(Tool):
    name = "dill"
    label = "dill.dump_session"

    def unavailable(self) -> str | None:
        if importlib.util.find_spec("dill") is None:
            return "dill is not installed (pip install dill)"
        return None

    def version(self) -> str | None:
        return _version("dill")

    def _path(self, ctx: Context) -> Path:
        return ctx.root / "dill-session.pkl"

    def attach(self, kernel: BenchKernel, ctx: Context) -> None:
        # Import once outside the timed save, as a user who calls dump_session repeatedly would.
        kernel.execute("__import__('dill')", silent=True).raise_for_error("import dill")

    def save(self, kernel: BenchKernel, ctx: Context) -> Saved | None:
        path = str(self._path(ctx))
        plain = kernel.execute(f"__import__('dill').dump_session({path!r})")
        if plain.ok:
            ctx.notes.append("plain dump_session succeeded")
            seconds, kernel_seconds = _seconds(plain)
            return Saved(seconds, kernel_seconds)
        ctx.state["plain_failure"] = plain.error
        ctx.notes.append(f"plain dump_session fails: {plain.error}")
        bad = kernel.probe("unpicklable", ctx.workload.names, "dill")
        if bad:
            kernel.run(f"del {', '.join(sorted(bad))}", "deleting unpicklable values")
            ctx.notes.append(
                "numbers are after deleting what dill cannot pickle: " + ", ".join(sorted(bad))
            )
        pruned = kernel.execute(f"__import__('dill').dump_session({path!r})")
        if not pruned.ok:
            return Saved(failed=f"dump_session fails even after deleting: {pruned.error}")
        seconds, kernel_seconds = _seconds(pruned)
        return Saved(seconds, kernel_seconds)

    def restore(self, kernel: BenchKernel, ctx: Context) -> float | None:
        if not self._path(ctx).exists():
            return None
        result = kernel.run(f"__import__('dill').load_session({str(self._path(ctx))!r})")
        return result.client_ms / 1000.0

    def bytes_on_disk(self, ctx: Context) -> int | None:
        return tree_bytes(self._path(ctx))


class StoreMagicTool(Tool):
    name = "store"
    label = "IPython %store"

    def version(self) -> str | None:
        return _version("ipython")

    def save(self, kernel: BenchKernel, ctx: Context) -> Saved | None:
        # One ``%store NAME`` per variable, as a user would type them; a value that cannot be
        # pickled raises, and storemagic refuses objects defined in __main__ with a warning.
        lines = []
        for name in ctx.workload.names:
            lines += [
                "try:",
                f"    get_ipython().run_line_magic('store', {name!r})",
                "except Exception:",
                f"    print('not stored: {name}')",
            ]
        result = kernel.execute("\n".join(lines))
        if not result.ok:
            return Saved(failed=f"%store fails: {result.error}")
        refused = [ln for ln in result.stdout.splitlines() if ln.startswith("not stored:")]
        warned = result.stdout.count("Proper storage of interactively declared classes")
        if refused or warned:
            ctx.notes.append(
                f"%store raised for {len(refused)} names and refused {warned} defined in __main__"
            )
        seconds, kernel_seconds = _seconds(result)
        return Saved(seconds, kernel_seconds)

    def restore(self, kernel: BenchKernel, ctx: Context) -> float | None:
        return kernel.run("%store -r", "%store -r").client_ms / 1000.0

    def bytes_on_disk(self, ctx: Context) -> int | None:
        return tree_bytes(ctx.ipythondir / "profile_default" / "db")


class KishuTool(Tool):
    name = "kishu"
    label = "Kishu"
    automatic = True

    def unavailable(self) -> str | None:
        if importlib.util.find_spec("kishu") is None:
            return "kishu is not installed (pip install -e '.[bench]' failed or was not run)"
        return None

    def version(self) -> str | None:
        return _version("kishu")

    def env(self, ctx: Context) -> dict[str, str | None]:
        return {"ENV_KISHU_TEST_MODE": "1", "KISHU_PATH_ROOT": str(ctx.root / "kishu-home")}

    def _init(self, kernel: BenchKernel, ctx: Context) -> ExecResult:
        code = f"from kishu import init_kishu\ninit_kishu({str(ctx.notebook)!r})"
        result = kernel.execute(code)
        if not result.ok:
            raise ToolFailure(f"init_kishu fails: {result.error}")
        return result

    def attach(self, kernel: BenchKernel, ctx: Context) -> None:
        self._init(kernel, ctx)

    def save(self, kernel: BenchKernel, ctx: Context) -> Saved | None:
        # Kishu commits after every cell; what a restore needs is the head commit.
        ctx.state["commit"] = kernel.evaluate("_kishu._kishu_branch.get_head().commit_id")
        return Saved(automatic=True)

    def restore(self, kernel: BenchKernel, ctx: Context) -> float | None:
        commit = ctx.state.get("commit")
        if not isinstance(commit, str):
            return None
        init = self._init(kernel, ctx)
        checkout = kernel.run(f"_kishu.checkout({commit!r})", "kishu checkout")
        return (init.client_ms + checkout.client_ms) / 1000.0

    def bytes_on_disk(self, ctx: Context) -> int | None:
        return tree_bytes(*ctx.work.glob("*.kishudb*"), ctx.root / "kishu-home")


class IpysessionTool(Tool):
    name = "ipysession"
    label = "ipysession"
    automatic = True
    extension = "ipysession"
    restores_at_start = True
    #: ``SessionManager.autosave_interval`` to start with (``None``: the default, 5 s).
    autosave_interval: float | None = None

    def connections_setup(self, ctx: Context) -> str:
        """The cell opening three connections (a live kernel, SQLite, one soon unreachable)."""
        from .peers import three_connections

        return three_connections(ctx)

    def connections_break(self, ctx: Context) -> None:
        """After the save, before the restart: shut down the third connection's kernel."""
        from .peers import break_one

        break_one(ctx)

    def unavailable(self) -> str | None:
        try:
            spec = importlib.util.find_spec(f"{self.extension}.extension")
        except ImportError as exc:
            return f"{self.extension} does not import: {exc}"
        if spec is None:
            return f"{self.extension}.extension does not exist yet (the extension is being written)"
        return None

    def version(self) -> str | None:
        return _version("ipysession")

    def env(self, ctx: Context) -> dict[str, str | None]:
        return {
            "IPYSESSION_DIR": str(ctx.root / "ipysession-data"),
            "IPYSESSION_CONFIG_DIR": str(ctx.root / "ipysession-config"),
            "IPYSESSION_LOG_DIR": str(ctx.root / "ipysession-logs"),
            "IPYSESSION_NAME": f"bench-{ctx.workload.name}",
            "IPYSESSION_PASSPHRASE": None,
            # Never touch the real OS keyring: the master key goes to the key file (encrypted
            # sessions all the same), and no keyring backend discovery can stall a start.
            "PYTHON_KEYRING_BACKEND": "keyring.backends.fail.Keyring",
        }

    def kernel_arguments(self, ctx: Context) -> list[str]:
        # The key file, as for a headless user: never the developer's real OS keyring.
        arguments = [
            f"--IPKernelApp.extensions=['{self.extension}']",
            "--SessionManager.key_backend=file",
        ]
        if self.autosave_interval is not None:
            arguments.append(f"--SessionManager.autosave_interval={self.autosave_interval}")
        return arguments

    def _check_loaded(self, kernel: BenchKernel) -> None:
        if self.extension not in kernel.probe("extensions"):
            tail = kernel.log_tail(40).splitlines()
            errors = [ln for ln in tail if "Error" in ln or "error" in ln]
            reason = errors[-1].strip() if errors else (tail[-1].strip() if tail else "no log")
            raise ToolFailure(f"extension did not load: {reason}")

    def attach(self, kernel: BenchKernel, ctx: Context) -> None:
        self._check_loaded(kernel)

    def save(self, kernel: BenchKernel, ctx: Context) -> Saved | None:
        result = kernel.execute("%session save")
        if not result.ok:
            return Saved(failed=f"%session save fails: {result.error}", automatic=True)
        seconds, kernel_seconds = _seconds(result)
        return Saved(seconds, kernel_seconds, automatic=True)

    def restore(self, kernel: BenchKernel, ctx: Context) -> float | None:
        # The extension restored the session while the kernel started (before it was ready),
        # but imports and large values may still be arriving in the background: the restore is
        # done when a cell naming every name of the workload has run (the cell waits for what it
        # names). Each name in its own `try`, so one that did not come back is no error here:
        # the fingerprints after this say which.
        self._check_loaded(kernel)
        cell = "\n".join(
            f"try:\n    {name}\nexcept NameError:\n    pass" for name in ctx.workload.names
        )
        result = kernel.execute(cell)
        if not result.ok:
            raise ToolFailure(f"naming every restored value failed: {result.error}")
        return 0.0

    def bytes_on_disk(self, ctx: Context) -> int | None:
        return tree_bytes(ctx.root / "ipysession-data")

    def pickled_bytes(self, ctx: Context) -> int | None:
        # What `ipysession show --json` reports for the saved session: the serialized size of each
        # variable, as the user's own command line shows it.
        env = kernel_env(**self.env(ctx))
        command = [sys.executable, "-m", "ipysession", "show", f"bench-{ctx.workload.name}"]
        done = subprocess.run(
            [*command, "--json"], env=env, capture_output=True, text=True, timeout=60, check=False
        )
        if done.returncode != 0:
            ctx.notes.append(f"`ipysession show` failed: {done.stderr.strip()[-200:]}")
            return None
        return sum(v["size"] for v in json.loads(done.stdout)["variables"] if v["state"] == "saved")


class EagerIpysessionTool(IpysessionTool):
    """ipysession writing after every cell (interval 1 ms): the full autosave cost per cell.

    Run for the scaling series only, where the question is how an autosave's cost grows with
    untouched data; with the default 5 s interval most small cells write nothing.
    """

    name = "ipysession-eager"
    label = "ipysession, autosave every cell"
    autosave_interval = 0.001
    groups = ("scaling",)


class ForegroundIpysessionTool(IpysessionTool):
    """ipysession binding every value before the kernel is ready (``background_restore_bytes
    = 0``): the restore as it was before large values loaded in the background (issue 15), side
    by side with the default in the same run."""

    name = "ipysession-foreground"
    label = "ipysession, background restore off"
    groups = ("large",)

    def kernel_arguments(self, ctx: Context) -> list[str]:
        return [*super().kernel_arguments(ctx), "--SessionManager.background_restore_bytes=0"]


class BaseIpysessionTool(IpysessionTool):
    """ipysession imported from another source tree, side by side with this one in the same run:
    what a change gained, on the same machine at the same moment (timings from separate runs on a
    shared machine do not compare). ``IPYSESSION_BASE_TREE`` names the tree, for example one made
    with ``git worktree add /tmp/base <commit>``; its kernels get it first on ``PYTHONPATH``."""

    name = "ipysession-base"
    label = "ipysession, base tree"

    @staticmethod
    def _tree() -> str | None:
        return os.environ.get(BASE_TREE_VARIABLE) or None

    def unavailable(self) -> str | None:
        tree = self._tree()
        if tree is None:
            return (
                f"set {BASE_TREE_VARIABLE} to a source tree (git worktree add /tmp/base <commit>)"
            )
        if not (Path(tree) / "ipysession" / "extension.py").is_file():
            return f"{BASE_TREE_VARIABLE}={tree} holds no ipysession/extension.py"
        return None

    def version(self) -> str | None:
        tree = self._tree()
        if tree is None:
            return None
        done = subprocess.run(
            ["git", "-C", tree, "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        return f"{_version('ipysession')} at {done.stdout.strip() or tree}"

    def env(self, ctx: Context) -> dict[str, str | None]:
        return {**super().env(ctx), "PYTHONPATH": self._tree()}

    def pickled_bytes(self, ctx: Context) -> int | None:
        return None  # the command line of this tree reads the files: not a base figure


#: The environment variable naming the tree of the ``ipysession-base`` tool.
BASE_TREE_VARIABLE = "IPYSESSION_BASE_TREE"


ALL_TOOLS: dict[str, type[Tool]] = {
    tool.name: tool
    for tool in (
        NoTool,
        IpysessionTool,
        EagerIpysessionTool,
        ForegroundIpysessionTool,
        BaseIpysessionTool,
        DillTool,
        StoreMagicTool,
        KishuTool,
        RerunTool,
    )
}

#: What runs unless ``--tools`` says otherwise: ipysession-base only when asked for.
DEFAULT_TOOLS = tuple(name for name in ALL_TOOLS if name != BaseIpysessionTool.name)
