"""A real service for the healing tests: a small TCP server process on 127.0.0.1 that the
factory backend connects to, started and stopped by the test (stopping closes every socket).

:data:`SERVER` is the server (run as ``python -c SERVER PORT``, password in ``$SVC_PASSWORD``);
:data:`CLIENT` is the client module a kernel imports (``tcpsvc:connect``). The client reconnects
once on a broken socket, as a SQLAlchemy engine with ``pool_pre_ping`` does, and answers
``is_alive`` with a real round trip.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
import time

SERVER = textwrap.dedent(
    """
    import os, socket, sys, threading
    password = os.environ["SVC_PASSWORD"]
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", int(sys.argv[1])))
    srv.listen(16)
    print("ready", flush=True)

    def serve(conn):
        with conn, conn.makefile("rw") as f:
            if f.readline().strip() != "AUTH " + password:
                f.write("DENIED password authentication failed\\n")
                f.flush()
                return
            f.write("OK\\n")
            f.flush()
            for line in f:
                line = line.strip()
                f.write("PONG\\n" if line == "PING" else "ECHO " + line + "\\n")
                f.flush()

    while True:
        conn, _ = srv.accept()
        threading.Thread(target=serve, args=(conn,), daemon=True).start()
    """
)

CLIENT = textwrap.dedent(
    '''
    """Client of the test service (imported by the kernel through the factory backend)."""
    import socket
    import threading


    class Client:
        def __init__(self, host, port, password):
            self._where = (host, port)
            self._password = password
            self._lock = threading.Lock()
            self._sock = self._file = None
            self._open()

        def __repr__(self):
            return f"Client({self._where[0]}:{self._where[1]})"

        def _open(self):
            sock = socket.create_connection(self._where, timeout=5.0)
            f = sock.makefile("rw")
            f.write("AUTH " + self._password + "\\n")
            f.flush()
            answer = f.readline().strip()
            if answer != "OK":
                sock.close()
                raise ConnectionRefusedError(answer or "the service closed the connection")
            self._sock, self._file = sock, f

        def _ask(self, line):
            self._file.write(line + "\\n")
            self._file.flush()
            answer = self._file.readline()
            if not answer:
                raise ConnectionResetError("the service closed the connection")
            return answer.strip()

        def ask(self, text):
            with self._lock:
                try:
                    return self._ask(text)
                except OSError:
                    self._close()
                    self._open()  # once, as a pool's pre-ping does
                    return self._ask(text)

        def is_alive(self):
            with self._lock:
                try:
                    return self._ask("PING") == "PONG"
                except OSError:
                    return False

        def _close(self):
            if self._sock is not None:
                try:
                    self._sock.close()
                except OSError:
                    pass

        def close(self):
            with self._lock:
                self._close()


    def connect(host, port, password):
        return Client(host, port, password)
    '''
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


class Service:
    """The server process: ``start()`` (waits until it listens), ``stop()``; safe twice."""

    def __init__(self, port: int, password: str) -> None:
        self.port = port
        self._password = password
        self._proc: subprocess.Popen[str] | None = None

    def start(self) -> None:
        self.stop()
        env = {**os.environ, "SVC_PASSWORD": self._password}
        deadline = time.monotonic() + 60
        while True:  # the port may linger a moment after the previous process died
            proc = subprocess.Popen(
                [sys.executable, "-c", SERVER, str(self.port)],
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                text=True,
            )
            assert proc.stdout is not None
            if proc.stdout.readline().strip() == "ready":
                self._proc = proc
                return
            proc.wait()
            if time.monotonic() > deadline:
                msg = f"the test service could not listen on 127.0.0.1:{self.port}"
                raise RuntimeError(msg)
            time.sleep(0.2)

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None:
            proc.kill()
            proc.wait()
            if proc.stdout is not None:
                proc.stdout.close()
