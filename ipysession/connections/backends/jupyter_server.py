"""The ``jupyter_server`` backend: a kernel on a Jupyter Server or Enterprise Gateway (HTTP + WS).

This is how users reach remote kernels today: a server holds the kernel, and a client talks to
it over the server's REST API and the kernel's WebSocket. Needs ``websocket-client``
(``pip install 'ipysession[gateway]'``).

Spec
----
The server's URL, with or without a base path: ``https://hub.example.org/user/me``,
``http://127.0.0.1:8888``. A URL that names a kernel (``.../api/kernels/<id>``) attaches to that
kernel. A ``token`` query parameter is taken out of the URL as a secret. Or a mapping
``{"url": ..., "kernel_id": ..., "kernel_name": ...}``.

Options
-------
``kwargs``
    ``kernel_id`` (attach to this kernel; it must exist unless ``kernel_name`` is given too) and
    ``kernel_name`` (the kernel spec to start, such as ``python3``); from
    ``--kwarg kernel_name=python3``.
``secrets``
    ``{"token": ...}``: the server's token, from ``--secret-env token=JUPYTER_TOKEN`` or
    ``--secret-prompt token``. Stored encrypted, sent only in the ``Authorization`` header,
    never in a URL, a message or a repr.

Without ``kernel_id``, ``split_spec`` picks a new kernel id and ``connect`` asks the server to
start the kernel under that id (Jupyter Server honours a requested ``kernel_id``; Enterprise
Gateway takes it as ``KERNEL_ID``). So the record names the same kernel from the start: after a
restart of this kernel, the reconnect attaches to it by id, its variables intact. Only when it is
gone from the server (shut down, or the server restarted without it) is a new one started under
the same id, and ``obj.started`` says so.

Behaviour
---------
``connect`` asks the REST API for the kernel (``GET /api/kernels/<id>``), starts it if it must
(``POST /api/kernels``), opens the kernel's WebSocket and waits for a ``kernel_info`` reply, all
within the timeout. The bound object is a :class:`ServerKernel`: ``execute_interactive(code)``
runs code and shows its output (or hands each IOPub message to ``output_hook``) and returns the
reply, like jupyter_client's; it never waits for ever: a ``timeout`` bounds it, and without one it
raises :class:`~ipysession.errors.ConnectionLost` when the server closes the socket, the kernel
dies or restarts under it, or the server stops answering for ``heartbeat_grace`` seconds.
``is_alive`` asks the REST API whether the kernel is there and not dead, and checks the socket.
``close`` closes the socket, never the kernel: ``obj.shutdown()`` stops it on purpose.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import logging
import re
import sys
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import parse_qsl, urlsplit, urlunsplit

from ipysession.connections.backends.base import check_options, redact_text
from ipysession.errors import ConnectFailed, ConnectionLost, InvalidSpec
from ipysession.retry import Deadline

__all__ = ["JupyterServerBackend", "ServerKernel"]

log = logging.getLogger("ipysession")

_KERNEL_PATH_RE = re.compile(r"^(?P<base>.*?)/api/kernels/(?P<id>[A-Za-z0-9._-]+)/?$")
_ID_RE = re.compile(r"^[A-Za-z0-9._-]{1,128}$")
_NAME_RE = re.compile(r"^[A-Za-z0-9._-]{1,128}$")
_INSTALL_HINT = "Install websocket-client with: pip install 'ipysession[gateway]'"
_PROTOCOL_VERSION = "5.3"


class _HTTPError(Exception):
    def __init__(self, status: int, reason: str) -> None:
        super().__init__(f"HTTP {status} {reason}")
        self.status = status


def _request(
    url: str, token: str | None, method: str, body: Mapping[str, Any] | None, timeout: float
) -> Any:
    """One REST call; the decoded JSON answer. Raises _HTTPError or OSError."""
    import urllib.error
    import urllib.request

    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"token {token}"
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method, headers=headers)  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=max(0.1, timeout)) as answer:  # noqa: S310
            text = answer.read()
    except urllib.error.HTTPError as exc:
        raise _HTTPError(exc.code, str(exc.reason)) from None
    return json.loads(text) if text else None


def _message(
    msg_type: str, content: Mapping[str, Any], session: str, channel: str
) -> dict[str, Any]:
    return {
        "header": {
            "msg_id": uuid.uuid4().hex,
            "msg_type": msg_type,
            "username": "ipysession",
            "session": session,
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(),
            "version": _PROTOCOL_VERSION,
        },
        "parent_header": {},
        "metadata": {},
        "content": dict(content),
        "channel": channel,
        "buffers": [],
    }


def _default_output(msg: Mapping[str, Any]) -> None:
    """Show an IOPub message as a terminal would (inside a kernel, print lands in the cell)."""
    kind = msg.get("msg_type") or msg.get("header", {}).get("msg_type")
    content = msg.get("content", {})
    if kind == "stream":
        stream = sys.stderr if content.get("name") == "stderr" else sys.stdout
        stream.write(content.get("text", ""))
    elif kind in ("execute_result", "display_data"):
        text = content.get("data", {}).get("text/plain")
        if text:
            print(text)
    elif kind == "error":
        print("\n".join(content.get("traceback", [])), file=sys.stderr)


class ServerKernel:
    """A kernel on a Jupyter Server, reached over its WebSocket: what ``%session connect`` binds.

    ``kernel_id``, ``kernel_name`` and ``server_url`` say which kernel; ``started`` is true when
    this connection started it (it was not on the server). Thread-safe for one caller running
    code while another checks :meth:`is_alive`.
    """

    #: seconds between checks of the server while waiting for output without a timeout
    heartbeat_interval = 1.0
    #: seconds the server may go unanswered before a wait without a timeout gives up
    heartbeat_grace = 10.0

    def __init__(
        self,
        *,
        server_url: str,
        kernel_id: str,
        kernel_name: str | None,
        token: str | None,
        socket: Any,
        started: bool,
        target: str,
    ) -> None:
        self.server_url = server_url
        self.kernel_id = kernel_id
        self.kernel_name = kernel_name
        self.started = started
        self.target = target
        self._token = token
        self._socket = socket
        self._session = uuid.uuid4().hex
        self._lock = threading.Lock()  # one execution at a time on the socket
        self._closed = False

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"<ServerKernel {self.kernel_id} on {self.server_url} ({state})>"

    def __reduce__(self) -> tuple[Any, ...]:
        # A live socket with a token: never pickled (nor saved as a variable).
        msg = "a ServerKernel is a live connection; ipysession saves its record instead"
        raise TypeError(msg)

    # --- the REST side ------------------------------------------------------------------------

    def _api(self, method: str, path: str, body: Mapping[str, Any] | None, timeout: float) -> Any:
        return _request(f"{self.server_url}/api{path}", self._token, method, body, timeout)

    def model(self, *, timeout: float = 10.0) -> dict[str, Any]:
        """The server's model of this kernel (``execution_state``, ``last_activity``, ...)."""
        return dict(self._api("GET", f"/kernels/{self.kernel_id}", None, timeout))

    def is_alive(self, *, timeout: float = 5.0) -> bool:
        """Whether the socket is open and the server says the kernel is there and not dead."""
        if self._closed or not getattr(self._socket, "connected", False):
            return False
        try:
            state = self.model(timeout=timeout).get("execution_state")
        except (_HTTPError, OSError, ValueError) as exc:
            log.debug("%s: the server did not answer (%s)", self.target, type(exc).__name__)
            return False
        return state not in ("dead", None)

    def interrupt(self, *, timeout: float = 10.0) -> None:
        self._api("POST", f"/kernels/{self.kernel_id}/interrupt", None, timeout)

    def shutdown(self, *, timeout: float = 30.0) -> None:
        """Stop the kernel on the server (its variables are lost), then close this connection."""
        with contextlib.suppress(_HTTPError):
            self._api("DELETE", f"/kernels/{self.kernel_id}", None, timeout)
        self.close()

    def close(self) -> None:
        """Close the socket; the kernel keeps running on the server. Safe twice."""
        self._closed = True
        with contextlib.suppress(Exception):
            self._socket.close()

    # --- running code -------------------------------------------------------------------------

    def _send(self, msg_type: str, content: Mapping[str, Any], channel: str = "shell") -> str:
        msg = _message(msg_type, content, self._session, channel)
        self._socket.send(json.dumps(msg))
        return str(msg["header"]["msg_id"])

    def _receive(self, wait: float) -> dict[str, Any] | None:
        """The next message, or None after ``wait`` seconds; ConnectionLost if the socket closed."""
        import websocket

        self._socket.settimeout(max(0.01, wait))
        try:
            raw = self._socket.recv()
        except websocket.WebSocketTimeoutException:
            return None
        except (websocket.WebSocketConnectionClosedException, OSError):
            self._closed = True
            msg = "The Jupyter server closed the kernel's connection while running this code"
            raise ConnectionLost(msg, target=self.target, hint=_LOST_HINT) from None
        if isinstance(raw, bytes):
            log.debug("%s: a binary message was skipped", self.target)
            return None
        try:
            message: dict[str, Any] = json.loads(raw)
        except ValueError:
            return None
        return message

    def _check_server(self, silent_since: float | None) -> float | None:
        """Between messages: is the kernel still there? Raises ConnectionLost when it is not."""
        try:
            state = self.model(timeout=self.heartbeat_interval * 2).get("execution_state")
        except _HTTPError as exc:
            if exc.status == 404:
                msg = "The kernel is no longer on the Jupyter server"
                raise ConnectionLost(msg, target=self.target, hint=_LOST_HINT) from None
            return None
        except (OSError, ValueError):
            now = time.monotonic()
            since = silent_since if silent_since is not None else now
            if now - since >= self.heartbeat_grace:
                msg = (
                    f"The Jupyter server did not answer for {self.heartbeat_grace:g} s while "
                    f"running this code"
                )
                raise ConnectionLost(msg, target=self.target, hint=_LOST_HINT) from None
            return since
        if state == "dead":
            msg = "The kernel died on the Jupyter server while running this code"
            raise ConnectionLost(msg, target=self.target, hint=_LOST_HINT)
        return None

    def execute_interactive(
        self,
        code: str,
        *,
        timeout: float | None = None,
        output_hook: Callable[[dict[str, Any]], Any] | None = None,
        silent: bool = False,
        store_history: bool = True,
        user_expressions: Mapping[str, str] | None = None,
        stop_on_error: bool = True,
    ) -> dict[str, Any]:
        """Run ``code``; each IOPub message goes to ``output_hook`` (default: shown). Returns the
        ``execute_reply`` message. Raises :class:`TimeoutError` after ``timeout`` seconds, and
        :class:`~ipysession.errors.ConnectionLost` when the kernel or the server is gone."""
        if self._closed:
            msg = "This connection to the kernel is closed"
            raise ConnectionLost(msg, target=self.target, hint=_LOST_HINT)
        hook = output_hook or _default_output
        deadline = Deadline.after(timeout)
        with self._lock:
            msg_id = self._send(
                "execute_request",
                {
                    "code": code,
                    "silent": silent,
                    "store_history": store_history,
                    "user_expressions": dict(user_expressions or {}),
                    "allow_stdin": False,
                    "stop_on_error": stop_on_error,
                },
            )
            reply: dict[str, Any] | None = None
            idle = False
            silent_since: float | None = None
            last_check = time.monotonic()
            while reply is None or not idle:
                if deadline.expired:
                    msg = f"no reply from the kernel within {timeout:g} s"
                    raise TimeoutError(msg)
                wait = min(self.heartbeat_interval, deadline.remaining())
                got = self._receive(wait)
                if got is None or time.monotonic() - last_check >= self.heartbeat_interval:
                    silent_since = self._check_server(silent_since)
                    last_check = time.monotonic()
                if got is None:
                    continue
                kind = got.get("msg_type") or got.get("header", {}).get("msg_type")
                content = got.get("content") or {}
                if kind == "status" and content.get("execution_state") in ("restarting", "dead"):
                    text = "restarted" if content["execution_state"] == "restarting" else "died"
                    what = f"The kernel {text} on the Jupyter server while running this code"
                    raise ConnectionLost(
                        what + " (its variables are lost)", target=self.target, hint=_LOST_HINT
                    )
                if (got.get("parent_header") or {}).get("msg_id") != msg_id:
                    continue
                channel = got.get("channel")
                if channel == "shell" and kind == "execute_reply":
                    reply = got
                elif channel == "iopub":
                    if kind == "status":
                        idle = content.get("execution_state") == "idle"
                    else:
                        hook(got)
            return reply

    def kernel_info(self, *, timeout: float) -> dict[str, Any]:
        """The ``kernel_info_reply`` content, within ``timeout`` seconds (TimeoutError)."""
        deadline = Deadline.after(timeout)
        with self._lock:
            msg_id = self._send("kernel_info_request", {})
            while True:
                remaining = deadline.remaining()
                if remaining <= 0:
                    msg = f"no kernel_info reply within {timeout:g} s"
                    raise TimeoutError(msg)
                got = self._receive(remaining)
                if got is None:
                    continue
                parent = got.get("parent_header") or {}
                if parent.get("msg_id") == msg_id and got.get("msg_type") == "kernel_info_reply":
                    return dict(got.get("content") or {})


_LOST_HINT = (
    "`%session reconnect NAME` connects again (to the same kernel, by id, if the server still "
    "has it); `%session connections` shows its state"
)


def _split_url(text: str) -> tuple[str, str | None, str | None]:
    """``(server URL without token or kernel path, token, kernel id)``."""
    parts = urlsplit(text.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        msg = "The jupyter_server backend needs the server's http:// or https:// URL"
        raise InvalidSpec(
            msg, hint="For example: %session connect rk jupyter_server http://host:8888"
        )
    token = None
    for name, value in parse_qsl(parts.query, keep_blank_values=True):
        if name != "token":
            msg = f"The server URL takes no query parameter but token (not {name!r})"
            raise InvalidSpec(msg, hint="Give kernel_id and kernel_name with --kwarg")
        token = value
    path = parts.path.rstrip("/")
    kernel_id = None
    found = _KERNEL_PATH_RE.match(path)
    if found:
        path, kernel_id = found.group("base"), found.group("id")
    url = urlunsplit((parts.scheme, parts.netloc, path, "", ""))
    return url, token, kernel_id


class JupyterServerBackend:
    """A kernel held by a Jupyter Server or Enterprise Gateway, as a :class:`ServerKernel`."""

    kind = "jupyter_server"
    requires = ("websocket",)

    def split_spec(
        self, spec: str | Mapping[str, Any] | None, options: Mapping[str, Any]
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        check_options(self.kind, options, ("kwargs",))
        fields: dict[str, Any] = {}
        if isinstance(spec, Mapping):
            unknown = sorted(set(spec) - {"url", "kernel_id", "kernel_name"})
            if unknown:
                msg = f"Unknown field(s) in the jupyter_server spec: {', '.join(unknown)}"
                raise InvalidSpec(msg, hint="It takes 'url', 'kernel_id' and 'kernel_name'")
            fields.update({k: v for k, v in spec.items() if k != "url"})
            spec = spec.get("url")
        if not isinstance(spec, str) or not spec.strip():
            msg = "The jupyter_server backend needs the server's URL"
            raise InvalidSpec(
                msg, hint="For example: %session connect rk jupyter_server http://host:8888"
            )
        kwargs = options.get("kwargs") or {}
        if not isinstance(kwargs, Mapping) or set(kwargs) - {"kernel_id", "kernel_name"}:
            msg = (
                "The jupyter_server backend takes --kwarg kernel_id=ID and --kwarg kernel_name=NAME"
            )
            raise InvalidSpec(msg)
        fields.update(kwargs)
        url, token, path_id = _split_url(spec)
        secrets_in = options.get("secrets") or {}
        if set(secrets_in) - {"token"}:
            msg = "The jupyter_server backend takes one secret: token"
            raise InvalidSpec(msg, hint="--secret-env token=JUPYTER_TOKEN")
        token = secrets_in.get("token", token)
        kernel_id = fields.get("kernel_id") or path_id
        kernel_name = fields.get("kernel_name")
        if kernel_id is not None and not (isinstance(kernel_id, str) and _ID_RE.match(kernel_id)):
            msg = "A kernel id is letters, digits, '.', '_' and '-'"
            raise InvalidSpec(msg)
        if kernel_name is not None and not (
            isinstance(kernel_name, str) and _NAME_RE.match(kernel_name)
        ):
            msg = "A kernel name is letters, digits, '.', '_' and '-' (such as python3)"
            raise InvalidSpec(msg)
        params: dict[str, Any] = {
            "url": url,
            # A kernel named by id must be there; otherwise the id is ours and starting is allowed.
            "kernel_id": kernel_id or str(uuid.uuid4()),
            "kernel_name": kernel_name,
            "start": kernel_id is None or kernel_name is not None,
        }
        return params, ({"token": str(token)} if token else {})

    def describe(self, params: Mapping[str, Any], secrets: Mapping[str, Any]) -> str:
        kernel = str(params.get("kernel_id", "?"))
        name = f" ({params['kernel_name']})" if params.get("kernel_name") else ""
        return redact_text(f"kernel {kernel[:8]}{name} on {params.get('url', '?')}", secrets)

    def connect(
        self, params: Mapping[str, Any], secrets: Mapping[str, Any], *, timeout: float
    ) -> Any:
        target = self.describe(params, secrets)
        deadline = Deadline.after(timeout)
        try:
            import websocket
        except ImportError:
            msg = "The jupyter_server backend needs websocket-client, which is not installed"
            raise ConnectFailed(msg, target=target, hint=_INSTALL_HINT) from None
        url = str(params.get("url", ""))
        token = secrets.get("token")
        kernel_id = str(params.get("kernel_id", ""))
        started = False

        def remaining() -> float:
            return max(0.1, deadline.remaining())

        def failed(what: str, exc: BaseException | None, hint: str | None = None) -> ConnectFailed:
            text = f" ({type(exc).__name__}: {exc})" if exc is not None else ""
            return ConnectFailed(redact_text(what + text, secrets), target=target, hint=hint)

        try:
            try:
                model = _request(f"{url}/api/kernels/{kernel_id}", token, "GET", None, remaining())
            except _HTTPError as exc:
                if exc.status != 404:
                    raise
                if not params.get("start"):
                    msg = f"The Jupyter server has no kernel {kernel_id}"
                    raise ConnectFailed(
                        msg, target=target, hint="Give --kwarg kernel_name=NAME to start one"
                    ) from None
                body: dict[str, Any] = {"kernel_id": kernel_id, "env": {"KERNEL_ID": kernel_id}}
                if params.get("kernel_name"):
                    body["name"] = params["kernel_name"]
                model = _request(f"{url}/api/kernels", token, "POST", body, remaining())
                started = True
        except ConnectFailed:
            raise
        except _HTTPError as exc:
            hint = (
                "Check the token (--secret-env token=ENVVAR)" if exc.status in (401, 403) else None
            )
            what = "The Jupyter server refused the request"
            raise failed(what, exc, hint) from None
        except Exception as exc:  # noqa: BLE001 - reported redacted, never chained
            what = "Could not reach the Jupyter server"
            raise failed(what, exc, "Is it running, and is the URL right?") from None
        if model.get("id") != kernel_id:
            # A server that ignores the requested id: this kernel is new on every reconnect.
            log.warning("%s: the server started kernel %s instead", target, model.get("id"))
            kernel_id = str(model.get("id"))
        ws_url = re.sub(r"^http", "ws", url) + f"/api/kernels/{kernel_id}/channels"
        ws_url += f"?session_id={uuid.uuid4().hex}"
        header = [f"Authorization: token {token}"] if token else []
        try:
            sock = websocket.create_connection(ws_url, header=header, timeout=remaining())
        except Exception as exc:  # noqa: BLE001 - reported redacted, never chained
            what = "Could not open the kernel's WebSocket"
            raise failed(what, exc) from None
        kernel = ServerKernel(
            server_url=url,
            kernel_id=kernel_id,
            kernel_name=model.get("name"),
            token=token,
            socket=sock,
            started=started,
            target=target,
        )
        try:
            kernel.kernel_info(timeout=remaining())
        except Exception as exc:  # noqa: BLE001 - reported redacted, never chained
            kernel.close()
            what = "The kernel did not answer a kernel_info request"
            raise failed(what, exc) from None
        log.debug("Connected to %s%s", target, " (started it)" if started else "")
        return kernel

    def is_alive(self, obj: Any, *, timeout: float) -> bool:
        if not isinstance(obj, ServerKernel):
            return False
        try:
            return obj.is_alive(timeout=timeout)
        except Exception as exc:  # noqa: BLE001 - a failed check means not alive
            log.debug("Kernel check failed (%s)", type(exc).__name__)
            return False

    def close(self, obj: Any) -> None:
        if isinstance(obj, ServerKernel):
            obj.close()
