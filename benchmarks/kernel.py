"""A real Jupyter kernel driven through jupyter_client, with timing on both ends of a cell.

``BenchKernel`` starts ``ipykernel`` with an environment of our choosing (every tool's state lives
under the benchmark's temp root), runs cells and measures each one twice:

- ``client_ms``: ``perf_counter`` from sending ``execute_request`` to the ``idle`` status that
  closes the request on IOPub (what a frontend waits for);
- ``kernel_ms``: ``execute_reply.header.date`` minus ``execute_reply.metadata.started`` (ipykernel
  stamps ``started`` when it begins handling the request; the reply header is dated when the reply
  is built, after ``post_run_cell`` hooks ran). In ipykernel 7 ``started`` arrives as an ISO string
  while the header date is parsed to a ``datetime`` by jupyter_client, so it is parsed here.

Values come back from the kernel through ``user_expressions`` evaluated by a *silent* request, and
helper code lives in a module the probe registers in ``sys.modules``: silent requests run no
``pre_run_cell``/``post_run_cell`` hooks and bind nothing in the user namespace, so measuring never
changes what the tools under test see.
"""

from __future__ import annotations

import ast
import contextlib
import json
import os
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from queue import Empty
from typing import IO, Any

from jupyter_client import KernelManager

PROBE_MODULE = "_ipysession_bench_probe"
_PROBE_SOURCE = (Path(__file__).with_name("_kernel_probe.py")).read_text(encoding="utf-8")

#: What a cell may take at most before the harness gives up on the kernel (100 MB dumps included).
CELL_TIMEOUT = 900.0
READY_TIMEOUT = 120.0


class KernelError(RuntimeError):
    """A kernel did not start, died, or did not answer in time."""


@dataclass
class ExecResult:
    """One executed cell: its timings, its output and its error, if any."""

    client_ms: float
    kernel_ms: float | None
    status: str
    stdout: str = ""
    stderr: str = ""
    error: str | None = None
    traceback: list[str] = field(default_factory=list)
    user_expressions: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def raise_for_error(self, what: str) -> None:
        if not self.ok:
            raise KernelError(f"{what} failed in the kernel: {self.error}")


def _parse_date(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value
    if isinstance(value, str):
        with contextlib.suppress(ValueError):
            return datetime.fromisoformat(value.replace("Z", "+00:00"))
    return None


def kernel_side_ms(reply: dict[str, Any]) -> float | None:
    """``header.date - metadata.started`` of an ``execute_reply``, in milliseconds."""
    end = _parse_date(reply.get("header", {}).get("date"))
    start = _parse_date(reply.get("metadata", {}).get("started"))
    if end is None or start is None:
        return None
    return (end - start).total_seconds() * 1000.0


#: Fields of ``/proc/<pid>/status`` read after save and after restore: the peak resident set
#: (``VmHWM``), and the resident set now split into anonymous memory (``RssAnon``: the heap, the
#: data) and pages mapped from files (``RssFile``: shared libraries and extension modules, clean
#: pages shared with the page cache).
MEMORY_FIELDS = ("VmHWM", "RssAnon", "RssFile")


def read_status_kib(pid: int | None, fields: tuple[str, ...] = MEMORY_FIELDS) -> dict[str, int]:
    """The ``fields`` of ``/proc/<pid>/status`` in KiB; empty when the process is gone."""
    if pid is None:
        return {}
    try:
        text = Path(f"/proc/{pid}/status").read_text(encoding="ascii")
    except OSError:
        return {}
    values: dict[str, int] = {}
    for line in text.splitlines():
        name, _, rest = line.partition(":")
        if name in fields:
            values[name] = int(rest.split()[0])
    return values


class BenchKernel:
    """One kernel process (and its restarts), isolated by environment and working directory."""

    def __init__(
        self,
        home: Path,
        *,
        env: dict[str, str],
        cwd: Path,
        extra_arguments: list[str] | None = None,
    ) -> None:
        self.home = home
        self.env = env
        self.cwd = cwd
        self.extra_arguments = list(extra_arguments or [])
        home.mkdir(parents=True, exist_ok=True)
        self.log_path = home / "kernel.log"
        self._log: IO[bytes] | None = None
        self.km = KernelManager(
            kernel_name="python3",
            connection_file=str(home / f"kernel-{uuid.uuid4()}.json"),
        )
        self.kc: Any = None
        #: Launch to the reply of the first cell, of the latest start or restart.
        self.first_cell_s: float | None = None

    # --- lifecycle ----------------------------------------------------------------------------

    def start(self) -> float:
        """Start the kernel; seconds from launch to the first ``kernel_info_reply``.

        Also sets :attr:`first_cell_s` (see :meth:`_wait_ready`).
        """
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - closed by shutdown()
        t0 = time.perf_counter()
        self.km.start_kernel(
            env=self.env,
            cwd=str(self.cwd),
            extra_arguments=self.extra_arguments,
            stdout=self._log,
            stderr=self._log,
        )
        self.kc = self.km.blocking_client()
        self.kc.start_channels()
        return self._wait_ready(t0)

    def restart(self) -> tuple[float, float]:
        """``KernelManager.restart_kernel()`` (graceful): seconds of the call, then until ready.

        The call covers the old kernel's shutdown (jupyter_client polls for its exit every
        100 ms, so this part is quantized) and the launch of the new process; the second figure
        is from that launch to the first ``kernel_info_reply``. Also sets :attr:`first_cell_s`,
        from the same launch.
        """
        t0 = time.perf_counter()
        self.km.restart_kernel(now=False)
        t1 = time.perf_counter()
        return t1 - t0, self._wait_ready(t1)

    def _wait_ready(self, launched: float) -> float:
        """Poll ``kernel_info`` every 20 ms; return seconds from ``launched`` to the first reply.

        ``BlockingKernelClient.wait_for_ready`` would do, but it waits up to 1 s per round and
        starts over when IOPub is not connected yet, which quantizes start times. Here the first
        reply marks the kernel ready; IOPub is then checked (the status message of one of these
        requests must come back on it) before any cell runs, polling as often.

        Then one ``pass`` cell, the first cell the kernel runs, and :attr:`first_cell_s` from
        ``launched`` to its reply: a tool may leave work to the first cell after a start (ipysession
        shows its restore summary there), so launch to ready alone would leave that out. It runs
        before the probe is installed, so every kernel has had the same harness requests by then.
        """
        deadline = time.monotonic() + READY_TIMEOUT
        sent: set[str] = set()
        ready: float | None = None
        while ready is None:
            sent.add(self.kc.kernel_info())
            until = time.monotonic() + 0.02
            while ready is None and time.monotonic() < until:
                try:
                    msg = self.kc.get_shell_msg(timeout=0.005)
                except Empty:
                    continue
                if msg.get("msg_type") == "kernel_info_reply":
                    ready = time.perf_counter()
            self._check_starting(deadline)
        # A status published before IOPub's subscription took effect is lost: waiting on one
        # request for long would add its wait (0 or all of it) to the first cell's time.
        subscribed = False
        while not subscribed:
            sent.add(self.kc.kernel_info())
            until = time.monotonic() + 0.02
            while not subscribed and time.monotonic() < until:
                try:
                    msg = self.kc.get_iopub_msg(timeout=0.005)
                except Empty:
                    continue
                subscribed = msg.get("parent_header", {}).get("msg_id") in sent
            self._check_starting(deadline)
        # Not silent and stored in history, as a user's cell: silent requests skip cell hooks.
        # The replies left from the polls are skipped by execute() and dropped after.
        self.execute("pass").raise_for_error("the first cell")
        self.first_cell_s = time.perf_counter() - launched
        self._drain()
        self.install_probe()
        return ready - launched

    def _check_starting(self, deadline: float) -> None:
        if not self.km.is_alive():
            raise KernelError(f"kernel died while starting; {self.log_tail()}")
        if time.monotonic() > deadline:
            raise KernelError(f"kernel not ready in {READY_TIMEOUT:g} s; {self.log_tail()}")

    def shutdown(self) -> None:
        """Stop channels and kernel; safe to call twice."""
        if self.kc is not None:
            with contextlib.suppress(Exception):
                self.kc.stop_channels()
            self.kc = None
        if self.km.has_kernel:
            with contextlib.suppress(Exception):
                self.km.shutdown_kernel(now=False)
        if self._log is not None:
            self._log.close()
            self._log = None
        with contextlib.suppress(OSError):
            Path(self.km.connection_file).unlink()

    def __enter__(self) -> BenchKernel:
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()

    @property
    def pid(self) -> int | None:
        provisioner = self.km.provisioner
        pid = getattr(provisioner, "pid", None)
        if pid is None:
            process = getattr(provisioner, "process", None)
            pid = getattr(process, "pid", None)
        return pid

    def memory_kib(self) -> dict[str, int]:
        """``VmHWM``, ``RssAnon`` and ``RssFile`` of the kernel process, read at one moment."""
        return read_status_kib(self.pid)

    def log_tail(self, lines: int = 15) -> str:
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""
        kept = [
            ln
            for ln in text.splitlines()
            if ln.strip() and "Kernel is running over TCP" not in ln and "CurveZMQ" not in ln
        ]
        return "\n".join(kept[-lines:])

    # --- execution ----------------------------------------------------------------------------

    def _drain(self) -> None:
        """Drop the replies and status messages of the ``kernel_info`` polls."""
        for getter in (self.kc.get_shell_msg, self.kc.get_iopub_msg):
            while True:
                try:
                    getter(timeout=0.05)
                except Empty:
                    break

    def execute(
        self,
        code: str,
        *,
        silent: bool = False,
        user_expressions: dict[str, str] | None = None,
        timeout: float = CELL_TIMEOUT,
    ) -> ExecResult:
        """Run one cell; block until its ``idle`` status and its reply have both arrived."""
        if self.kc is None:
            raise KernelError("kernel is not running")
        t0 = time.perf_counter()
        msg_id = self.kc.execute(
            code,
            silent=silent,
            store_history=not silent,
            user_expressions=user_expressions or {},
            allow_stdin=False,
            stop_on_error=False,
        )
        deadline = time.monotonic() + timeout
        stdout: list[str] = []
        stderr: list[str] = []
        error: str | None = None
        traceback: list[str] = []
        t_idle: float | None = None
        while t_idle is None:
            msg = self._get(self.kc.get_iopub_msg, deadline, code)
            if msg.get("parent_header", {}).get("msg_id") != msg_id:
                continue
            kind = msg["msg_type"]
            content = msg["content"]
            if kind == "status" and content.get("execution_state") == "idle":
                t_idle = time.perf_counter()
            elif kind == "stream":
                (stdout if content.get("name") == "stdout" else stderr).append(content["text"])
            elif kind == "error":
                error = f"{content.get('ename')}: {content.get('evalue')}"
                traceback = list(content.get("traceback", []))
        while True:
            reply = self._get(self.kc.get_shell_msg, deadline, code)
            if reply.get("parent_header", {}).get("msg_id") == msg_id:
                break
        content = reply["content"]
        status = content.get("status", "error")
        if status != "ok" and error is None:
            error = f"{content.get('ename')}: {content.get('evalue')}"
        return ExecResult(
            client_ms=(t_idle - t0) * 1000.0,
            kernel_ms=kernel_side_ms(reply),
            status=status,
            stdout="".join(stdout),
            stderr="".join(stderr),
            error=error,
            traceback=traceback,
            user_expressions=content.get("user_expressions", {}) or {},
        )

    def _get(self, getter: Any, deadline: float, code: str) -> dict[str, Any]:
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise KernelError(f"no answer in time for cell {code[:60]!r}")
            try:
                return getter(timeout=min(remaining, 1.0))  # type: ignore[no-any-return]
            except Exception as exc:
                if not self.km.is_alive():
                    raise KernelError(f"kernel died; {self.log_tail()}") from exc

    def run(self, code: str, what: str = "cell") -> ExecResult:
        """Run a cell that must succeed."""
        result = self.execute(code)
        result.raise_for_error(what)
        return result

    def evaluate(self, expression: str) -> Any:
        """The value of a Python expression in the kernel (its repr must be a literal)."""
        result = self.execute("", silent=True, user_expressions={"value": expression})
        answer = result.user_expressions.get("value", {})
        if answer.get("status") != "ok":
            raise KernelError(
                f"could not evaluate {expression!r}: {answer.get('ename')}: {answer.get('evalue')}"
            )
        return ast.literal_eval(answer["data"]["text/plain"])

    def probe(self, function: str, *args: Any) -> Any:
        """Call a function of the probe module with JSON arguments; JSON comes back."""
        payload = json.dumps(args)
        text = self.evaluate(f"__import__({PROBE_MODULE!r}).call({function!r}, {payload!r})")
        return json.loads(text)

    def install_probe(self) -> None:
        # Two statements that bind no name in the user namespace.
        module = f"__import__('sys').modules[{PROBE_MODULE!r}]"
        code = (
            f"{module} = __import__('types').ModuleType({PROBE_MODULE!r})\n"
            f"exec(compile({_PROBE_SOURCE!r}, '<ipysession-bench-probe>', 'exec'), "
            f"{module}.__dict__)\n"
        )
        self.execute(code, silent=True).raise_for_error("installing the benchmark probe")

    def fingerprints(self, names: list[str]) -> dict[str, str | None]:
        """Content fingerprint of each name in the user namespace (``None``: not defined)."""
        result: dict[str, str | None] = self.probe("fingerprints", names)
        return result


def kernel_env(base: dict[str, str] | None = None, **overrides: str | None) -> dict[str, str]:
    """The harness's environment minus anything that would leak state in, plus ``overrides``.

    ``None`` removes a variable.
    """
    env = dict(os.environ if base is None else base)
    for name in list(env):
        if name.startswith(("IPYSESSION_", "KISHU_", "JPY_")) or name in {
            "IPYTHONDIR",
            "ENV_KISHU_TEST_MODE",
            "TEST_NOTEBOOK_PATH",
            # Users' Pythons cache bytecode; without it every import recompiles from source and
            # start-up figures measure the compiler, not the tools.
            "PYTHONDONTWRITEBYTECODE",
        }:
            del env[name]
    for name, value in overrides.items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    return env
