"""The ``jupyter`` backend: a running Jupyter kernel, bound as a ``BlockingKernelClient``.

Spec
----
- the path of a kernel's connection file (``~`` is expanded);
- a kernel id or any part of a connection file's name, resolved with
  ``jupyter_client.find_connection_file`` in the current directory and Jupyter's runtime
  directory, exactly as ``jupyter console --existing ID`` does (the most recently used match wins);
- or a mapping of connection info (what ``KernelManager.get_connection_info()`` returns).

The whole connection info (ip, the five ports, the HMAC key, CurveZMQ keys where present) is
the secret: a connection file is useless without its key and the key is useless without the
ports. It is stored, encrypted, in ``secrets["connection_info"]``. ``params`` keep only what
may be shown: where the info came from (``source``, ``connection_file``), ``transport``,
``signature_scheme``, ``kernel_name`` and the SSH settings.

Every reconnect reads the connection file again when it is still there: a remote kernel replaced
by its manager with new ports and a new key (written to the same file, as ``jupyter_client``
does on a restart) is picked up by ``%session reconnect NAME``, by the background reconnection
and after a restart of this kernel. When the file is gone (files in the runtime directory are
cleaned up) or unreadable, the stored copy is used.

Options
-------
``path``
    a directory or list of directories searched for a kernel id (default: the current
    directory and ``jupyter --runtime-dir``).
``ssh``
    ``[user@]host[:port]`` (an ``~/.ssh/config`` alias works): reach the kernel through SSH
    tunnels, as ``jupyter console --ssh`` does. The five ports are forwarded from random local
    ports with ``jupyter_client.tunnel_to_kernel`` at every connect, so a reconnect after a
    restart rebuilds the tunnels. Only key or agent authentication is supported (a worker thread
    cannot ask for a password); the connect timeout includes building the tunnels, so allow a few
    seconds. The kernel's ``ip`` is resolved on the SSH server (``127.0.0.1`` there means the
    server itself).
``sshkey``
    the path of the private key to use for ``ssh``.

No separate secrets are accepted (``options["secrets"]`` must be empty).

Because the ip and the ports are secrets too, any of them that turns up in a message (a ZeroMQ
or ssh error) is shown as ``***``; ``describe`` shows the connection file's name, the transport
and the SSH server instead (``kernel kernel-1234.json (tcp) via ssh me@gateway``).

Behaviour
---------
``connect`` first pings the kernel's heartbeat on a socket of its own (a dead kernel or a stale
file fails here, within the timeout, before any channel is started), then starts the client's
channels and waits for a ``kernel_info`` reply (a wrong key shows up here: the kernel ignores
messages it cannot authenticate) and for IOPub to deliver. ``is_alive`` pings the heartbeat on a
socket of its own, so it never takes messages from the channels the user reads, and it is safe
from a monitor thread while the user runs code. ``close`` stops the client's channels; it never
shuts the kernel down: we never stop or restart a kernel we do not own.

The bound object is a ``RemoteKernelClient``, a ``BlockingKernelClient`` whose
``execute_interactive`` cannot hang for ever on a kernel that is gone: without a ``timeout`` it
waits as long as the kernel answers its heartbeat, and raises
:class:`~ipysession.errors.ConnectionLost` (naming the kernel and saying what to run) once the
heartbeat has gone unanswered for ``RemoteKernelClient.heartbeat_grace`` seconds. With a
``timeout`` it behaves exactly as jupyter_client's.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import re
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, cast

from ipysession.connections.backends.base import call_with_timeout, check_options, redact_text
from ipysession.errors import ConnectFailed, ConnectionLost, InvalidSpec
from ipysession.retry import Deadline

__all__ = ["JupyterBackend"]

log = logging.getLogger("ipysession")

_PORTS = ("shell_port", "iopub_port", "stdin_port", "control_port", "hb_port")
# tunnel_to_kernel returns the local ends in this order.
_TUNNEL_ORDER = ("shell_port", "iopub_port", "stdin_port", "hb_port", "control_port")
_PARAM_FIELDS = ("transport", "signature_scheme", "kernel_name")
_BYTES_FIELDS = ("key", "curve_publickey", "curve_secretkey", "curve_serverkey")
_SSH_RE = re.compile(r"^(?:[A-Za-z0-9._+-]+@)?[A-Za-z0-9._-]+(?::[0-9]{1,5})?$")
_STALE_HINT = (
    "The kernel may have stopped, or been restarted with new ports: connect again with its "
    "current connection file"
)


@functools.cache
def _probe_context() -> Any:
    """One ZeroMQ context for heartbeat probes, never shared with a user's client."""
    import zmq

    return zmq.Context()


def _hb_url(info: Mapping[str, Any]) -> str:
    transport = info.get("transport", "tcp")
    ip = info.get("ip", "127.0.0.1")
    port = int(info["hb_port"])
    if transport == "tcp":
        return f"tcp://{ip}:{port}"
    return f"{transport}://{ip}-{port}"


def _ping(info: Mapping[str, Any], timeout: float) -> bool:
    """Send one heartbeat and wait up to ``timeout`` seconds for its echo."""
    import zmq

    sock = _probe_context().socket(zmq.REQ)
    try:
        sock.linger = 0
        sock.connect(_hb_url(info))
        sock.send(b"ping")
        if sock.poll(max(0, int(timeout * 1000)), zmq.POLLIN):
            sock.recv()
            return True
        return False
    finally:
        sock.close(linger=0)


def _text(value: Any, field: str) -> str:
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            msg = f"The connection info field '{field}' is not valid UTF-8"
            raise InvalidSpec(msg) from None
    if isinstance(value, str):
        return value
    msg = f"The connection info field '{field}' must be a string, not {type(value).__name__}"
    raise InvalidSpec(msg)


def _normalize(info: Mapping[str, Any]) -> dict[str, Any]:
    """Validate connection info and make it JSON-serializable (keys as str, no Session)."""
    out: dict[str, Any] = {}
    for port in _PORTS:
        value = info.get(port)
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            msg = f"The connection info has no valid '{port}'"
            raise InvalidSpec(msg, hint="Is this a Jupyter kernel connection file?")
        out[port] = value
    out["ip"] = _text(info.get("ip", "127.0.0.1"), "ip") or "127.0.0.1"
    out["transport"] = _text(info.get("transport", "tcp"), "transport") or "tcp"
    if out["transport"] not in ("tcp", "ipc"):
        msg = f"Unknown kernel transport {out['transport']!r} (expected tcp or ipc)"
        raise InvalidSpec(msg)
    out["signature_scheme"] = _text(info.get("signature_scheme", "hmac-sha256"), "signature_scheme")
    out["key"] = _text(info.get("key", ""), "key")
    for field in _BYTES_FIELDS[1:]:
        if info.get(field):
            out[field] = _text(info[field], field)
    for field, value in info.items():
        if field in out or field == "session":
            continue
        if isinstance(value, (str, int, float, bool)) or value is None:
            out[field] = value
    return out


def _read_file(path: str) -> dict[str, Any]:
    try:
        with open(path, encoding="utf-8") as f:
            info = json.load(f)
    except FileNotFoundError:
        msg = "The Jupyter connection file does not exist"
        raise InvalidSpec(msg, path=path, hint=_STALE_HINT) from None
    except (OSError, ValueError) as exc:
        msg = f"The Jupyter connection file could not be read ({type(exc).__name__})"
        raise InvalidSpec(msg, path=path) from None
    if not isinstance(info, dict):
        msg = "The Jupyter connection file does not hold a JSON object"
        raise InvalidSpec(msg, path=path)
    return info


def _reread(params: Mapping[str, Any], target: str) -> dict[str, Any] | None:
    """The connection file's info now, if the record names a file that is still readable.

    A kernel replaced with new ports and a new key writes them to the same file: reading it on
    every connect is what picks the new kernel up. ``None`` means "use the stored copy".
    """
    path = params.get("connection_file")
    if not path or params.get("ssh"):
        # Through SSH the file named is the remote's copy we were given once: keep the stored info.
        return None
    try:
        info = _normalize(_read_file(str(path)))
    except InvalidSpec as exc:
        log.debug("Connection file of %s not used (%s); using the stored copy", target, exc.what)
        return None
    for field in _PARAM_FIELDS:
        if field in params and field not in info:
            info[field] = params[field]
    return info


def _find(spec: str, search: Any) -> str:
    from jupyter_client.connect import find_connection_file

    if search is not None and not isinstance(search, (str, list)):
        msg = "The jupyter option 'path' must be a directory or a list of directories"
        raise InvalidSpec(msg)
    try:
        return str(find_connection_file(str(Path(spec).expanduser()), path=search))
    except OSError:
        msg = f"No Jupyter connection file matches {spec!r}"
        raise InvalidSpec(
            msg,
            hint=(
                "Give the path of the kernel's connection file, or its kernel id; "
                "`jupyter --runtime-dir` shows where running kernels keep theirs"
            ),
        ) from None


class JupyterBackend:
    """A remote (or local) Jupyter kernel as a started ``BlockingKernelClient``."""

    kind = "jupyter"

    # --- spec ---------------------------------------------------------------------------------

    def split_spec(
        self, spec: str | Mapping[str, Any] | None, options: Mapping[str, Any]
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        check_options(self.kind, options, ("path", "ssh", "sshkey"))
        if options.get("secrets"):
            msg = "The jupyter backend takes no separate secrets: the connection file is the secret"
            raise InvalidSpec(msg)
        connection_file: str | None = None
        if isinstance(spec, Mapping):
            raw: Mapping[str, Any] = spec
            source = "connection info"
        elif isinstance(spec, str) and spec.strip():
            connection_file = _find(spec.strip(), options.get("path"))
            raw = _read_file(connection_file)
            source = spec.strip()
        else:
            msg = "The jupyter backend needs a connection file, a kernel id or connection info"
            raise InvalidSpec(
                msg, hint="For example: %session connect remote jupyter kernel-1234.json"
            )
        info = _normalize(raw)
        params: dict[str, Any] = {"source": source, "connection_file": connection_file}
        for field in _PARAM_FIELDS:
            if field in info:
                params[field] = info.pop(field)
        ssh = options.get("ssh")
        if ssh:
            if not isinstance(ssh, str) or not _SSH_RE.match(ssh):
                msg = "The ssh option must look like [user@]host[:port]"
                raise InvalidSpec(msg)
            params["ssh"] = ssh
        sshkey = options.get("sshkey")
        if sshkey:
            if not isinstance(sshkey, str):
                msg = "The sshkey option must be the path of a private key file"
                raise InvalidSpec(msg)
            params["sshkey"] = str(Path(sshkey).expanduser())
        return params, {"connection_info": info}

    def describe(self, params: Mapping[str, Any], secrets: Mapping[str, Any]) -> str:
        source = str(params.get("source") or params.get("connection_file") or "connection info")
        if "/" in source or os.sep in source:
            source = Path(source).name
        text = f"kernel {source} ({params.get('transport', 'tcp')})"
        if params.get("ssh"):
            text += f" via ssh {params['ssh']}"
        return redact_text(text, secrets)

    # --- connection ---------------------------------------------------------------------------

    def _connection_info(
        self, params: Mapping[str, Any], secrets: Mapping[str, Any], target: str
    ) -> dict[str, Any]:
        stored = secrets.get("connection_info")
        fresh = _reread(params, target)
        if fresh is not None:
            return fresh
        try:
            if isinstance(stored, Mapping):
                info = _normalize(
                    {**stored, **{f: params[f] for f in _PARAM_FIELDS if f in params}}
                )
            elif params.get("connection_file"):
                info = _normalize(_read_file(str(params["connection_file"])))
            else:
                msg = "The record holds no connection info"
                raise InvalidSpec(msg)
        except InvalidSpec as exc:
            raise ConnectFailed(
                redact_text(exc.what, secrets), path=exc.path, target=target, hint=exc.hint
            ) from None
        return info

    def _tunnel(
        self, info: dict[str, Any], params: Mapping[str, Any], timeout: float, target: str
    ) -> dict[str, Any]:
        server = str(params["ssh"])
        keyfile = params.get("sshkey") or None

        def build() -> tuple[Any, ...]:
            from jupyter_client.connect import tunnel_to_kernel
            from jupyter_client.ssh.tunnel import try_passwordless_ssh

            if not try_passwordless_ssh(server, keyfile):
                msg = f"SSH to {server} asks for a password"
                raise ConnectFailed(
                    msg,
                    target=target,
                    hint="Only key or agent authentication works here: add a key (ssh-add)",
                )
            return tuple(tunnel_to_kernel(cast(Any, dict(info)), server, keyfile))

        try:
            ports = call_with_timeout(build, timeout, name="ipysession-ssh-tunnel")
        except ConnectFailed:
            raise
        except Exception as exc:  # noqa: BLE001 - ssh and pexpect raise anything
            text = f"Could not build SSH tunnels through {server} ({type(exc).__name__}: {exc})"
            msg = redact_text(text, info)
            raise ConnectFailed(msg, target=target) from None
        tunneled = dict(info)
        tunneled["ip"] = "127.0.0.1"
        tunneled.update(zip(_TUNNEL_ORDER, ports, strict=True))
        return tunneled

    def connect(
        self, params: Mapping[str, Any], secrets: Mapping[str, Any], *, timeout: float
    ) -> Any:
        deadline = Deadline.after(timeout)
        target = self.describe(params, secrets)
        info = self._connection_info(params, secrets, target)
        if params.get("ssh"):
            info = self._tunnel(info, params, timeout, target)
        try:
            alive = _ping(info, deadline.remaining())
        except Exception as exc:  # noqa: BLE001 - reported redacted, never chained
            text = redact_text(f"{type(exc).__name__}: {exc}", secrets)
            msg = f"Could not reach the kernel's heartbeat ({text})"
            raise ConnectFailed(msg, target=target, hint=_STALE_HINT) from None
        if not alive:
            msg = f"The kernel did not answer its heartbeat within {timeout:g} s"
            raise ConnectFailed(msg, target=target, hint=_STALE_HINT)

        client = _client_class()()
        client.target = target
        try:
            client.load_connection_info(cast(Any, info))
            client.start_channels()
            _handshake(client, deadline, timeout)
        except Exception as exc:  # noqa: BLE001 - reported redacted, never chained
            self.close(client)
            text = redact_text(f"{type(exc).__name__}: {exc}", [info, secrets])
            msg = f"The kernel did not complete the connection ({text})"
            raise ConnectFailed(msg, target=target, hint=_STALE_HINT) from None
        log.debug("Connected to %s", target)
        return client

    def is_alive(self, obj: Any, *, timeout: float) -> bool:
        try:
            if not getattr(obj, "channels_running", False):
                return False
            return _ping(obj.get_connection_info(), timeout)
        except Exception as exc:  # noqa: BLE001 - a failed probe means not alive
            log.debug("Heartbeat probe failed (%s)", type(exc).__name__)
            return False

    def close(self, obj: Any) -> None:
        # Stop our channels only: never shutdown() a kernel we do not own.
        stop = getattr(obj, "stop_channels", None)
        if not callable(stop):
            return
        try:
            stop()
        except Exception as exc:  # noqa: BLE001 - close() never raises
            log.debug("Stopping a kernel client's channels failed (%s)", type(exc).__name__)


def _await_reply(channel: Any, msg_id: str, deadline: Deadline) -> dict[str, Any] | None:
    """The ``kernel_info_reply`` to ``msg_id`` on the shell channel, or None at the deadline."""
    from queue import Empty

    while True:
        remaining = deadline.remaining()
        if remaining <= 0:
            return None
        try:
            msg: dict[str, Any] = channel.get_msg(timeout=remaining)
        except Empty:
            return None
        parent = msg.get("parent_header") or {}
        if parent.get("msg_id") == msg_id and msg.get("msg_type") == "kernel_info_reply":
            return msg


def _drain(channel: Any) -> None:
    """Drop the messages already received (``get_msgs()`` would block: it polls forever)."""
    from queue import Empty

    while True:
        try:
            channel.get_msg(timeout=0)
        except Empty:
            return


def _handshake(client: Any, deadline: Deadline, timeout: float) -> None:
    """Wait for a kernel_info reply, then for IOPub to deliver (ZeroMQ subscriptions join late)."""
    from queue import Empty

    replied = False
    while not deadline.expired:
        reply = _await_reply(client.shell_channel, client.kernel_info(), deadline)
        if reply is None:
            break
        if not replied:
            replied = True
            handle = getattr(client, "_handle_kernel_info_reply", None)
            if callable(handle):
                handle(reply)
        try:
            client.iopub_channel.get_msg(timeout=min(0.2, deadline.remaining()))
        except Empty:
            continue
        _drain(client.iopub_channel)  # the status messages of our requests
        return
    if not replied:
        msg = (
            f"the kernel answered its heartbeat but not a kernel_info request within "
            f"{timeout:g} s; the connection key or signature scheme may be wrong"
        )
        raise TimeoutError(msg)
    log.debug("Kernel replied to kernel_info but IOPub delivered nothing before the deadline")


# --- the bound client ---------------------------------------------------------------------------


@functools.cache
def _client_class() -> type[Any]:
    """:class:`RemoteKernelClient`, built on first use (jupyter_client is imported lazily)."""
    from jupyter_client.blocking.client import BlockingKernelClient

    class RemoteKernelClient(BlockingKernelClient):
        """A ``BlockingKernelClient`` whose ``execute_interactive`` notices a dead kernel.

        Without a ``timeout`` it waits as long as the kernel answers its heartbeat (checked on a
        socket of its own every ``heartbeat_interval`` seconds) and raises
        :class:`~ipysession.errors.ConnectionLost` after ``heartbeat_grace`` seconds without an
        answer, instead of waiting for ever for a reply that cannot come.
        """

        #: seconds between heartbeat checks while waiting for output
        heartbeat_interval = 1.0
        #: seconds without a heartbeat answer after which the kernel counts as lost
        heartbeat_grace = 10.0
        #: what messages call the kernel (set by the backend: its description, no secret)
        target = "remote kernel"

        def execute_interactive(
            self, code: str, *args: Any, timeout: float | None = None, **kwargs: Any
        ) -> dict[str, Any]:
            if timeout is not None:
                reply: dict[str, Any] = super().execute_interactive(
                    code, *args, timeout=timeout, **kwargs
                )
                return reply
            return _watched(self, lambda t: super(RemoteKernelClient, self).execute_interactive(
                code, *args, timeout=t, **kwargs
            ))  # fmt: skip

    RemoteKernelClient.__module__ = __name__
    return RemoteKernelClient


def _watched(client: Any, run: Any) -> dict[str, Any]:
    """``run(None)`` (execute_interactive without a timeout), abandoned with ConnectionLost when
    the kernel's heartbeat goes unanswered for ``client.heartbeat_grace`` seconds.

    jupyter_client's loop polls with no deadline; it runs on a worker thread here while this
    thread checks the heartbeat. A lost kernel stops the channels, so the worker ends too. A call
    the user interrupted (KeyboardInterrupt in this thread) leaves its worker reading the rest of
    that request's output: the next call waits for it first, so no two readers share the channels.
    """
    import contextvars
    import threading

    pending = getattr(client, "_ipysession_pending", None)
    if pending is not None:
        _wait_beating(client, pending)
    done = threading.Event()
    box: dict[str, Any] = {}

    def work() -> None:
        try:
            box["reply"] = run(None)
        except BaseException as exc:  # noqa: BLE001 - handed to the caller
            box["error"] = exc
        finally:
            done.set()

    # The cell's context goes along: ipykernel keeps the parent header (which cell an output
    # belongs to) in a context variable, and the output hook publishes under it.
    context = contextvars.copy_context()
    worker = threading.Thread(
        target=context.run, args=(work,), name="ipysession-remote-execute", daemon=True
    )
    client._ipysession_pending = done
    worker.start()
    _wait_beating(client, done)
    client._ipysession_pending = None
    if "error" in box:
        raise box["error"]
    return cast("dict[str, Any]", box["reply"])


def _wait_beating(client: Any, done: Any) -> None:
    """Wait for ``done`` while the kernel answers its heartbeat; ConnectionLost when it does not."""
    info = client.get_connection_info()
    silent_since: float | None = None
    while not done.wait(client.heartbeat_interval):
        if _ping(info, client.heartbeat_interval):
            silent_since = None
            continue
        now = time.monotonic()
        silent_since = silent_since if silent_since is not None else now
        if now - silent_since >= client.heartbeat_grace:
            client._ipysession_pending = None
            msg = (
                f"The remote kernel stopped answering its heartbeat for "
                f"{client.heartbeat_grace:g} s while running this code; it has died or "
                f"been replaced, and this result will not come"
            )
            hint = (
                "`%session reconnect NAME` connects again (re-reading its connection "
                "file); `%session connections` shows its state"
            )
            client.stop_channels()
            raise ConnectionLost(msg, target=client.target, hint=hint)
