"""A real PostgreSQL server for the tests: initdb + pg_ctl on a free port in a temporary directory.

`PgServer` runs the Debian server binaries (``/usr/lib/postgresql/<version>/bin``, or ``$PG_BIN``) as the
``postgres`` system user when the suite runs as root (PostgreSQL refuses to run as root), listening on
127.0.0.1 only, with trust authentication. Tests that need it use the fixtures at the bottom
(re-exported by ``tests/conftest.py``): `postgres_server` (one server per session, stopped at its end) and
`postgres_url` (a fresh, empty database per test). Without the binaries they are skipped with the reason;
``.ci/run`` installs them (apt package ``postgresql``).

`stop()`/`start()` on a running server let a test take the database away and bring it back on the same
port (the backend must recover by itself).
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from support import free_port

SERVICE_USER = "postgres"
TEST_DATABASE = "event_gateway_test"


def server_binaries() -> Path | None:
    """The directory holding initdb, pg_ctl and postgres (newest version), or None."""
    candidates = [os.environ["PG_BIN"]] if os.environ.get("PG_BIN") else []
    candidates += sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(p.split("/")[-2])
                         if p.split("/")[-2].isdigit() else 0, reverse=True)
    found = shutil.which("pg_ctl")
    if found:
        candidates.append(str(Path(found).parent))
    for candidate in candidates:
        path = Path(candidate)
        if all((path / name).exists() for name in ("initdb", "pg_ctl", "postgres")):
            return path
    return None


class PgServer:
    """One PostgreSQL cluster in `workdir`, serving 127.0.0.1:`port` as superuser ``postgres``."""

    def __init__(self, bindir: Path, workdir: Path) -> None:
        self.bindir = bindir
        self.workdir = workdir
        self.data = workdir / "data"
        self.logfile = workdir / "server.log"
        self.port = free_port()
        self.user = "postgres"
        self._as_root = os.getuid() == 0
        if self._as_root:
            try:
                account = pwd.getpwnam(SERVICE_USER)
            except KeyError as exc:
                raise RuntimeError(f"running as root needs the [{SERVICE_USER}] system user") from exc
            os.chown(workdir, account.pw_uid, account.pw_gid)
            os.chmod(workdir, 0o700)

    def _run(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        command = [str(self.bindir / args[0]), *args[1:]]
        if self._as_root:
            command = ["runuser", "-u", SERVICE_USER, "--", *command]
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, cwd=str(self.workdir))
        if done.returncode != 0:
            log = self.logfile.read_text(errors="replace") if self.logfile.exists() else ""
            raise RuntimeError(f"{' '.join(command)} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}\n{log}")
        return done

    def init(self) -> None:
        """Create the cluster (UTF-8, C locale, trust authentication for local connections)."""
        self._run("initdb", "-D", str(self.data), "-U", self.user, "-A", "trust", "-E", "UTF8",
                  "--locale=C", "--no-sync")

    def start(self) -> None:
        """Start (or restart after `stop`) on the same port; returns once the server accepts connections."""
        options = (f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.workdir} -c fsync=off "
                   "-c full_page_writes=off -c max_connections=200 -c shared_buffers=32MB")
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.logfile), "-o", options, "-w", "-t", "60", "start")

    def stop(self) -> None:
        """Stop fast (open connections are cut, as when a database server goes down)."""
        self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "-t", "60", "stop")

    def running(self) -> bool:
        """Whether the postmaster is up."""
        command = [str(self.bindir / "pg_ctl"), "-D", str(self.data), "status"]
        if self._as_root:
            command = ["runuser", "-u", SERVICE_USER, "--", *command]
        return subprocess.run(command, capture_output=True).returncode == 0

    def url(self, database: str = "postgres") -> str:
        """A ``postgresql://`` URL of a database on this server."""
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str | None = None) -> str:
        """Create an empty database and return its URL."""
        import psycopg

        name = name or f"t_{uuid.uuid4().hex[:16]}"
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}" TEMPLATE template0')
        return self.url(name)

    def has_database(self, name: str) -> bool:
        """Whether the database exists."""
        import psycopg

        with psycopg.connect(self.url(), autocommit=True) as conn:
            return conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone() is not None

    def reset_database(self, name: str) -> None:
        """Drop every schema but ``public`` (and the system ones) of a database, with what they hold."""
        import psycopg

        with psycopg.connect(self.url(name), autocommit=True) as conn:
            schemas = [row[0] for row in conn.execute(
                "SELECT nspname FROM pg_namespace WHERE nspname <> 'public' AND nspname NOT LIKE 'pg\\_%%' "
                "AND nspname <> 'information_schema'").fetchall()]
            for schema in schemas:
                conn.execute(f'DROP SCHEMA "{schema}" CASCADE')
            conn.execute("DROP TABLE IF EXISTS public.schema_version")

    def drop_database(self, url: str) -> None:
        """Drop a database made by `create_database` (connections to it are cut first)."""
        import psycopg

        name = url.rsplit("/", 1)[-1]
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def start_server(workdir: Path) -> PgServer:
    """Initialise and start a server in `workdir`; `pytest.skip` when the binaries are missing."""
    bindir = server_binaries()
    if bindir is None:
        pytest.skip("PostgreSQL server binaries not found (/usr/lib/postgresql/*/bin; .ci/run installs the "
                    "apt package postgresql)")
    server = PgServer(bindir, workdir)
    server.init()
    server.start()
    return server


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PgServer]:
    """One real PostgreSQL server for the session, stopped (and its directory removed) at its end.

    The directory is made directly under the system temporary directory: pytest's own base directory is
    private to the user running the suite, which the ``postgres`` user could not enter.
    """
    workdir = Path(tempfile.mkdtemp(prefix="event-gateway-pg-"))
    try:
        server = start_server(workdir)
        try:
            yield server
        finally:
            if server.running():
                server.stop()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture
def postgres_url(postgres_server: PgServer) -> Iterator[str]:
    """The URL of an empty database on the session's server.

    One database serves every test (creating one costs ~0.3 s): at the end of a test, every schema it
    made (the backend's ``event_gateway`` and any other) is dropped, so the next test starts empty.
    """
    if not postgres_server.running():  # a test that stopped it failed before starting it again
        postgres_server.start()
    url = postgres_server.url(TEST_DATABASE)
    if not postgres_server.has_database(TEST_DATABASE):
        postgres_server.create_database(TEST_DATABASE)
    yield url
    deadline = time.monotonic() + 10
    while True:
        try:
            if not postgres_server.running():
                postgres_server.start()
            postgres_server.reset_database(TEST_DATABASE)
            return
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
