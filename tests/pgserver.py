"""A throwaway PostgreSQL server for the tests: Debian's ``initdb`` and ``pg_ctl``.

One server per test session, in a private temporary folder, reachable only through a
Unix socket in that folder (no TCP at all, so no port another run could hold), with
durability off (``fsync``): its data is thrown away at the end. As root, ``initdb``
refuses to run, so the server runs as the ``postgres`` user (``runuser``); as
anyone else, as that user. Each test gets its own database, copied from a template
that is already migrated, and dropped afterwards.
"""

from __future__ import annotations

import atexit
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

import psycopg

#: Debian 12's PostgreSQL (the ``postgresql`` package); another major version works too.
BIN_DIRS = sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)
SETTINGS = """
listen_addresses = ''
unix_socket_directories = '{socket}'
port = {port}
fsync = off
synchronous_commit = off
full_page_writes = off
max_connections = 200
shared_buffers = 32MB
log_min_messages = warning
"""


def server_binaries() -> Path | None:
    """The folder holding ``initdb`` and ``pg_ctl``, or None when PostgreSQL is absent."""
    for folder in BIN_DIRS:
        if (folder / "initdb").is_file() and (folder / "pg_ctl").is_file():
            return folder
    return None


def socket_name_port() -> int:
    """A port number for the socket's file name, free on 127.0.0.1 too (never 5432)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class PgServer:
    """Started by :meth:`start`, stopped (and its folder removed) by :meth:`stop`."""

    def __init__(self, bindir: Path) -> None:
        self.bindir = bindir
        self.root = Path(tempfile.mkdtemp(prefix="transcribe-pg-"))
        self.data = self.root / "data"
        self.socket = self.root / "socket"
        self.log = self.root / "server.log"
        self.port = socket_name_port()
        self.running = False
        self._as_server: list[str] = []

    def _run(self, *args: str) -> None:
        done = subprocess.run(
            [*self._as_server, *args], capture_output=True, text=True, timeout=120, check=False
        )
        if done.returncode != 0:
            raise RuntimeError(f"{Path(args[0]).name} failed: {done.stderr.strip()[-2000:]}")

    def start(self) -> PgServer:
        owner = None
        if os.geteuid() == 0:  # initdb refuses root: the server belongs to `postgres`
            user = pwd.getpwnam("postgres")
            owner = (user.pw_uid, user.pw_gid)
            self._as_server = ["runuser", "-u", "postgres", "--"]
        self.socket.mkdir(mode=0o700)
        for folder in (self.root, self.socket):
            if owner:
                os.chown(folder, *owner)
        self._run(
            str(self.bindir / "initdb"),
            *("-D", str(self.data), "-U", "postgres", "--auth=trust"),
            *("--encoding=UTF8", "--locale=C", "--no-sync", "--no-instructions"),
        )
        with (self.data / "postgresql.conf").open("a", encoding="utf-8") as conf:
            conf.write(SETTINGS.format(socket=self.socket, port=self.port))
        atexit.register(self.stop)  # even if the session ends without its teardown
        self.running = True
        self._run(
            str(self.bindir / "pg_ctl"),
            *("-D", str(self.data), "-l", str(self.log), "-w", "-t", "60", "start"),
        )
        self._template()
        return self

    def stop(self) -> None:
        """Stop the server (fast, then immediate) and remove everything it wrote."""
        if self.running:
            self.running = False
            for mode in ("fast", "immediate"):
                try:
                    self._run(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", mode, "stop")
                    break
                except (RuntimeError, subprocess.TimeoutExpired):
                    continue
        shutil.rmtree(self.root, ignore_errors=True)

    def url(self, database: str) -> str:
        """No password: the socket is private and the server trusts it."""
        return f"postgresql://postgres@/{database}?host={self.socket}&port={self.port}"

    def admin(self) -> psycopg.Connection:
        return psycopg.connect(self.url("postgres"), autocommit=True)

    def _template(self) -> None:
        """A database at the newest schema, copied for each test (faster than migrating)."""
        from transcribe.store.postgres import PostgresStore

        with self.admin() as admin:
            admin.execute("CREATE DATABASE migrated TEMPLATE template0")
        PostgresStore(self.url("migrated"), migrate=True).close()

    def create_database(self, *, migrated: bool = True) -> str:
        name = f"t_{secrets.token_hex(6)}"
        template = "migrated" if migrated else "template0"
        with self.admin() as admin:
            admin.execute(f"CREATE DATABASE {name} TEMPLATE {template} STRATEGY FILE_COPY")
        return name

    def drop_database(self, name: str) -> None:
        with self.admin() as admin:
            admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
