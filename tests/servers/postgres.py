"""A private PostgreSQL cluster on a free 127.0.0.1 port, with a password role.

Uses Debian's ``postgresql`` package (``scripts/system-deps`` installs it for ``make test``).
``initdb`` refuses to run as root, so under root the cluster belongs to the ``postgres`` system
user the package creates, and every PostgreSQL command runs through ``runuser``. Connections from
the tests go over TCP with a password (``scram-sha-256``), as users' do; only the fixture's own
``psql`` uses the Unix socket, in a directory only the cluster's owner can enter.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from tests.servers.process import Server, ServerUnavailable, accepts, free_port, tail, wait_until

BIN = Path(os.environ.get("IPYSESSION_TEST_PG_BIN", "/usr/lib/postgresql/15/bin"))
SYSTEM_USER = "postgres"
INSTALL_HINT = "install Debian's postgresql package (scripts/system-deps does, as root)"


@dataclass(frozen=True)
class PostgresInfo:
    host: str
    port: int
    user: str
    password: str
    database: str

    def url(self, *, driver: str = "postgresql+psycopg", password: bool = True) -> str:
        secret = f":{self.password}" if password else ""
        return f"{driver}://{self.user}{secret}@{self.host}:{self.port}/{self.database}"


class PostgresServer(Server):
    """``initdb`` once, then ``pg_ctl start``/``stop`` as often as a test needs."""

    name = "PostgreSQL"

    def __init__(self, *, password: str, user: str = "tester", database: str = "shop") -> None:
        self.port = free_port()
        self.info = PostgresInfo("127.0.0.1", self.port, user, password, database)
        # Not under pytest's tmp dir: that is 0700 root, which the postgres user cannot enter.
        self.dir = Path(tempfile.mkdtemp(prefix="ipys-pg-"))
        self.data = self.dir / "data"
        self.log = self.dir / "server.log"
        self._runas: list[str] = []
        if os.geteuid() == 0:
            try:
                entry = pwd.getpwnam(SYSTEM_USER)
            except KeyError:
                msg = f"PostgreSQL: running as root, and no {SYSTEM_USER!r} user; {INSTALL_HINT}"
                raise ServerUnavailable(msg) from None
            os.chown(self.dir, entry.pw_uid, entry.pw_gid)
            self._runas = ["runuser", "-u", SYSTEM_USER, "--"]
        try:
            self._initdb()
        except BaseException:
            self.close()
            raise

    def _run(self, *argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*self._runas, *argv], capture_output=True, text=True, check=False, timeout=300
        )

    def _initdb(self) -> None:
        initdb = BIN / "initdb"
        if not initdb.exists():
            msg = f"PostgreSQL: {initdb} does not exist; {INSTALL_HINT}"
            raise ServerUnavailable(msg)
        pwfile = self.dir / "pw"
        pwfile.write_text(self.info.password + "\n")
        if self._runas:
            shutil.chown(pwfile, SYSTEM_USER)
        done = self._run(
            str(initdb), "-D", str(self.data), "-U", self.info.user, f"--pwfile={pwfile}",
            "--auth-host=scram-sha-256", "--auth-local=trust", "-E", "UTF8", "--no-sync",
        )  # fmt: skip
        pwfile.unlink()
        if done.returncode != 0:
            msg = f"PostgreSQL: initdb failed ({done.returncode}): {done.stderr.strip()[-800:]}"
            raise ServerUnavailable(msg)
        self.start()
        created = self._run(
            str(BIN / "psql"), "-h", str(self.dir), "-p", str(self.port), "-U", self.info.user,
            "-d", "postgres", "-c", f"CREATE DATABASE {self.info.database}",
        )  # fmt: skip
        if created.returncode != 0:
            msg = f"PostgreSQL: CREATE DATABASE failed: {created.stderr.strip()[-800:]}"
            raise ServerUnavailable(msg)

    def _options(self) -> str:
        return (
            f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.dir} "
            "-c fsync=off -c max_connections=50"
        )

    def running(self) -> bool:
        return (self.data / "postmaster.pid").exists() and accepts(self.port)

    def start(self) -> None:
        if self.running():
            return
        done = self._run(
            str(BIN / "pg_ctl"), "-D", str(self.data), "-l", str(self.log), "-w", "-t", "120",
            "-o", self._options(), "start",
        )  # fmt: skip
        if done.returncode != 0:
            msg = (
                f"PostgreSQL: pg_ctl start on port {self.port} failed ({done.returncode}): "
                f"{done.stderr.strip()[-400:]}; its log ends:\n{tail(self.log)}"
            )
            raise ServerUnavailable(msg)
        wait_until(lambda: accepts(self.port), f"PostgreSQL on port {self.port}", log=self.log)

    def stop(self) -> None:
        if not (self.data / "postmaster.pid").exists():
            return
        # Fast shutdown: open sessions are cut, as when a database server restarts under users.
        self._run(str(BIN / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop")

    def close(self) -> None:
        if self.data.exists():
            self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)
