"""PostgreSQL for tests: a database of its own on the shared server, or a throwaway cluster.

`scratch_database` creates `jqtest_<random>` on the shared server (127.0.0.1:5432, user postgres,
trust) and drops it afterwards. `PgCluster` runs initdb/pg_ctl on a free port in a temporary
directory owned by the `postgres` user (as root, through `runuser`), so outage tests stop and
restart their own server and never the shared one.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg

from tests.support.servers import free_port, wait_for_port

SHARED = "postgresql://postgres@127.0.0.1:5432"


def admin(dsn: str = f"{SHARED}/postgres") -> psycopg.Connection:
    """An autocommit psycopg connection for setting up test data."""
    return psycopg.connect(dsn, autocommit=True)


@contextmanager
def scratch_database(base: str = SHARED, prefix: str = "jqtest") -> Iterator[str]:
    """A new empty database; yields its DSN and drops it (closing leftover sessions) afterwards."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    with admin(f"{base}/postgres") as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"{base}/{name}"
    finally:
        with admin(f"{base}/postgres") as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _bindir() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
    if not found:
        raise RuntimeError("no PostgreSQL binaries under /usr/lib/postgresql/*/bin")
    return Path(found[-1]).parent


class PgCluster:
    """A PostgreSQL cluster of the test's own: start, stop (fast), restart, on a free port."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.bindir = _bindir()
        self.root = Path(tempfile.mkdtemp(prefix="jqpg-"))
        self.data = self.root / "data"
        self.as_postgres = os.geteuid() == 0
        if self.as_postgres:
            shutil.chown(self.root, "postgres", "postgres")
        self.root.chmod(0o700)

    @property
    def base(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}"

    def dsn(self, database: str = "postgres") -> str:
        return f"{self.base}/{database}"

    def _run(self, *args: str) -> None:
        cmd = [str(self.bindir / args[0]), *args[1:]]
        if self.as_postgres:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=120)

    def init(self) -> PgCluster:
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync")
        return self

    def start(self) -> PgCluster:
        opts = (f"-p {self.port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={self.root} "
                "-c fsync=off -c max_connections=20")
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.root / "log"), "-o", opts, "-w", "start")
        wait_for_port(self.port)
        return self

    def stop(self) -> None:
        if (self.data / "postmaster.pid").exists():
            self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")

    def restart(self) -> None:
        self.stop()
        self.start()

    def destroy(self) -> None:
        try:
            self.stop()
        finally:
            shutil.rmtree(self.root, ignore_errors=True)
