"""Store fixtures: every test gets its own freshly migrated database, on SQLite and on PostgreSQL.

PostgreSQL comes from ``LEDGERCRM_TEST_POSTGRES_URL`` (a role that may CREATE DATABASE) or, by default,
from a throwaway cluster that scripts/postgres.sh starts once per test process (each pytest-xdist worker
starts its own, on its own free port) and stops at the end of the session. Without PostgreSQL the
PostgreSQL half of the tests is skipped with the reason, unless ``LEDGERCRM_REQUIRE_POSTGRES=1`` (CI),
which turns the skip into a failure so that a broken setup cannot pass silently.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import NoReturn

import pytest
from sqlalchemy import Engine, create_engine, make_url
from sqlalchemy.pool import NullPool

from offchain.db import default_url, make_engine, migrate

POSTGRES_SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "postgres.sh"
POSTGRES_URL_ENV = "LEDGERCRM_TEST_POSTGRES_URL"
REQUIRE_POSTGRES_ENV = "LEDGERCRM_REQUIRE_POSTGRES"
DIALECTS = ["sqlite", "postgresql"]
START_ATTEMPTS = 3  # a free port can be taken by someone else between our check and the server's bind
# generous: without binaries, as root, the script first installs them with apt-get
START_TIMEOUT = 900


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _unavailable(reason: str) -> NoReturn:
    if os.environ.get(REQUIRE_POSTGRES_ENV) == "1":
        pytest.fail(f"PostgreSQL is required ({REQUIRE_POSTGRES_ENV}=1) but not available: {reason}")
    pytest.skip(f"PostgreSQL is not available: {reason}")


def _start_cluster(directory: Path) -> str:
    error = ""
    for _ in range(START_ATTEMPTS):
        try:
            result = subprocess.run(
                [str(POSTGRES_SCRIPT), "start", str(directory), str(_free_port())],
                capture_output=True,
                text=True,
                timeout=START_TIMEOUT,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            _unavailable(f"{POSTGRES_SCRIPT.name} could not run: {exc}")
        if result.returncode == 0:
            return result.stdout.strip().splitlines()[-1]
        error = result.stderr.strip() or f"{POSTGRES_SCRIPT.name} exited with {result.returncode}"
    _unavailable(error)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """URL of a PostgreSQL database whose role may create and drop databases."""
    external = os.environ.get(POSTGRES_URL_ENV)
    if external:
        yield external
        return
    # As root the server runs as user postgres, which must be able to reach the directory: /tmp is
    # world-traversable, whereas pytest's own tmp dirs are private to us.
    parent = "/tmp" if os.geteuid() == 0 and Path("/tmp").is_dir() else None
    directory = Path(tempfile.mkdtemp(prefix="ledgercrm-pg-", dir=parent))
    try:
        yield _start_cluster(directory)
    finally:
        subprocess.run(
            [str(POSTGRES_SCRIPT), "stop", str(directory)], capture_output=True, timeout=120, check=False
        )
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture
def postgres_url(postgres_server: str) -> Iterator[str]:
    """A new, empty database on the server, dropped after the test.

    A database per test (rather than truncating tables) also tests the migrations from scratch each time,
    and costs a few tens of milliseconds on the throwaway cluster.
    """
    server = make_url(postgres_server)
    name = f"ledgercrm_{uuid.uuid4().hex[:16]}"
    admin = create_engine(server, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    try:
        with admin.connect() as connection:
            connection.exec_driver_sql(f'CREATE DATABASE "{name}"')
        yield server.set(database=name).render_as_string(hide_password=False)
        with admin.connect() as connection:
            # FORCE: a connection leaked by a failing test must not keep the database alive
            connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        admin.dispose()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return default_url(tmp_path)


@pytest.fixture(params=DIALECTS)
def db_url(request: pytest.FixtureRequest) -> str:
    """An empty database URL, once per dialect."""
    url: str = request.getfixturevalue("postgres_url" if request.param == "postgresql" else "sqlite_url")
    return url


def _migrated(url: str) -> Iterator[Engine]:
    engine = make_engine(url)
    try:
        migrate(engine)
        yield engine
    finally:
        engine.dispose()


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    """A migrated store, once per dialect."""
    yield from _migrated(db_url)


@pytest.fixture
def sqlite_engine(sqlite_url: str) -> Iterator[Engine]:
    """A migrated SQLite store, for the tests about SQLite's own settings."""
    yield from _migrated(sqlite_url)
