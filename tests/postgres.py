"""A throwaway PostgreSQL server for the tests: Debian's `postgresql` binaries, `initdb` and
`pg_ctl` into a temporary directory, on a free loopback port.

Tests that need it skip, with the reason, only when the server binaries are missing
(`.ci/run` installs them). initdb refuses to run as root, so as root the server runs as the
`postgres` system user that Debian's package creates.
"""

from __future__ import annotations

import contextlib
import glob
import itertools
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psycopg

from tests.servers import free_port

_databases = itertools.count(1)


def server_binaries() -> Path | None:
    """The directory holding initdb and pg_ctl, newest version first."""
    for candidate in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        if Path(candidate, "initdb").exists() and Path(candidate, "pg_ctl").exists():
            return Path(candidate)
    found = shutil.which("pg_ctl")
    return Path(found).parent if found and shutil.which("initdb") else None


def _as_server_user(command: list[str]) -> list[str]:
    if os.geteuid() != 0:
        return command
    return ["runuser", "-u", "postgres", "--", *command]


class PostgresServer:
    def __init__(self, binaries: Path, directory: Path) -> None:
        self.binaries = binaries
        self.directory = directory
        self.data = directory / "data"
        self.port = free_port()

    def start(self) -> None:
        if os.geteuid() == 0:
            shutil.chown(self.directory, "postgres", "postgres")
        subprocess.run(
            _as_server_user(
                [str(self.binaries / "initdb"), "-D", str(self.data), "-U", "postgres",
                 "--auth=trust", "--no-sync", "-E", "UTF8"]
            ),
            check=True, capture_output=True,
        )  # fmt: skip
        self.resume()

    def resume(self) -> None:
        """Start the server on its data directory (again, after `stop`)."""
        # Durability is not under test here; fsync off keeps the suite fast.
        options = (
            f"-p {self.port} -k {self.directory} -c listen_addresses=127.0.0.1 "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off "
            "-c max_connections=200"
        )
        subprocess.run(
            _as_server_user(
                [str(self.binaries / "pg_ctl"), "-D", str(self.data), "-o", options,
                 "-l", str(self.directory / "server.log"), "-w", "start"]
            ),
            check=True, capture_output=True,
        )  # fmt: skip

    def stop(self) -> None:
        subprocess.run(
            _as_server_user(
                [str(self.binaries / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "stop"]
            ),
            check=False, capture_output=True,
        )  # fmt: skip

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def new_database(self) -> str:
        """A fresh, empty database: each test gets its own."""
        name = f"test_{os.getpid()}_{next(_databases)}"
        with psycopg.connect(self.url(), autocommit=True) as admin:
            admin.execute(f'CREATE DATABASE "{name}"')  # type: ignore[arg-type]  # our own name
        return self.url(name)


@contextlib.contextmanager
def postgres_server() -> Iterator[PostgresServer | None]:
    """A running server for the session, or None when the binaries are missing."""
    binaries = server_binaries()
    if binaries is None:
        yield None
        return
    with tempfile.TemporaryDirectory(prefix="compliance-pg-") as tmp:
        server = PostgresServer(binaries, Path(tmp))
        try:
            # Inside the try: a run interrupted while the server starts still stops it.
            server.start()
            yield server
        finally:
            server.stop()
