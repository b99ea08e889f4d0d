"""Shared fixtures: platforms on SQLite and PostgreSQL, each on a copy of a database
migrated once per session, and a live server in a subprocess. In-process platforms hash
passwords with argon2id at its cheapest parameters (see ``_cheap_password_hashes``).

The helpers behind them (``start_server``, ``run_cli``, ``free_port``…) live in
tests/servers.py and are importable from here as before.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from tests.fakes.world import CHEAP_HASHER
from tests.servers import (  # noqa: F401 - re-exported for the tests that import them here
    ROOT,
    LiveServer,
    free_port,
    require_tool,
    run_cli,
    start_server,
)

from telerad.bootstrap import Platform, open_platform
from telerad.config import Settings
from telerad.services import auth as auth_service
from telerad.storage.db.database import make_engine, migrate, sqlite_path

PG_ADMIN_URL = os.environ.get(
    "TELERAD_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
PG_ADMIN = "host=127.0.0.1 user=postgres dbname=postgres"


@pytest.fixture(autouse=True)
def _cheap_password_hashes(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """Platforms built in this process hash with argon2id at its cheapest, as the unit
    tier's fakes do: the same hashes and checks in microseconds, where argon2-cffi's
    defaults (64 MiB, 3 passes, 4 lanes) take 0.2 s to seconds on two busy cores, on every
    platform (its dummy hash), account and sign-in. Servers in subprocesses keep the
    defaults, and so does a test marked ``real_password_hashing``."""
    if request.node.get_closest_marker("real_password_hashing") is None:
        monkeypatch.setattr(auth_service, "PasswordHasher", lambda: CHEAP_HASHER)


# -- SQLite: one migrated index per session, copied into each test's data dir --------
def _index_file(data_dir: Path) -> Path:
    path = sqlite_path(Settings(data_dir=data_dir).resolved_database_url)
    assert path is not None
    return path


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An embedded index migrated to the newest revision, once per session (per
    pytest-xdist worker). Copying it costs a millisecond; migrating, a tenth of a second."""
    index = _index_file(tmp_path_factory.mktemp("template") / "data")
    index.parent.mkdir(parents=True)
    engine = make_engine(f"sqlite:///{index}")
    migrate(engine)
    with engine.connect() as conn:  # everything in the main file: nothing left in the WAL
        conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    engine.dispose()
    return index


def migrated_data_dir(data_dir: Path, template: Path) -> Path:
    """``data_dir`` holding a copy of the migrated index: opening a platform on it finds
    the schema at head (Alembic has nothing to run)."""
    index = _index_file(data_dir)
    index.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(template, index)
    return data_dir


@pytest.fixture
def platform(tmp_path: Path, sqlite_template: Path) -> Iterator[Platform]:
    """An embedded platform: SQLite index and blobs under a temporary data dir."""
    data_dir = migrated_data_dir(tmp_path / "data", sqlite_template)
    p = open_platform(Settings(data_dir=data_dir, fsync=False))
    yield p
    p.close()


# -- PostgreSQL: CREATE DATABASE … TEMPLATE a database migrated once per session -------
def _pg_available() -> bool:
    try:
        import psycopg

        with psycopg.connect(PG_ADMIN, connect_timeout=3):
            return True
    except Exception:
        return False


def _require_pg() -> None:
    if not _pg_available():
        if os.environ.get("CI"):
            pytest.fail("PostgreSQL is not reachable on 127.0.0.1:5432")
        pytest.skip("PostgreSQL is not reachable on 127.0.0.1:5432")


def _pg_execute(statement: str) -> None:
    import psycopg

    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(statement)  # type: ignore[arg-type]  # composed here from our own names


def _pg_url(name: str) -> str:
    return f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A fresh, empty PostgreSQL database on the local server, dropped afterwards."""
    _require_pg()
    name = "telerad_test_" + uuid.uuid4().hex[:12]
    _pg_execute(f'CREATE DATABASE "{name}"')
    try:
        yield _pg_url(name)
    finally:
        _pg_execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def pg_template() -> Iterator[str]:
    """A PostgreSQL database migrated to the newest revision, once per session. Its
    name is this session's own (several sessions and xdist workers share the server)."""
    _require_pg()
    name = f"telerad_template_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    _pg_execute(f'CREATE DATABASE "{name}"')
    try:
        engine = make_engine(_pg_url(name))
        migrate(engine)
        engine.dispose()  # a template may have no connection while it is copied
        yield name
    finally:
        _pg_execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def pg_migrated_url(pg_template: str) -> Iterator[str]:
    """A PostgreSQL database copied from the migrated template, dropped afterwards."""
    name = "telerad_test_" + uuid.uuid4().hex[:12]
    _pg_execute(f'CREATE DATABASE "{name}" TEMPLATE "{pg_template}"')
    try:
        yield _pg_url(name)
    finally:
        _pg_execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def pg_platform(tmp_path: Path, pg_migrated_url: str) -> Iterator[Platform]:
    p = open_platform(
        Settings(data_dir=tmp_path / "data", database_url=pg_migrated_url, fsync=False)
    )
    yield p
    p.close()


# -- servers in subprocesses ---------------------------------------------------------
@pytest.fixture
def server_factory() -> Iterator[Callable[..., LiveServer]]:
    """Start extra servers (own data dirs, own settings); all are stopped afterwards."""
    started: list[LiveServer] = []

    def factory(
        data_dir: Path, extra_env: dict[str, str] | None = None, args: tuple[str, ...] = ()
    ) -> LiveServer:
        server = start_server(data_dir, extra_env, args)
        started.append(server)
        return server

    yield factory
    for server in started:
        server.stop()


@pytest.fixture(scope="session")
def live_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """One telerad process (SQLite) for the whole session (per pytest-xdist worker);
    tests use their own UIDs."""
    data_dir = tmp_path_factory.mktemp("live") / "data"
    data_dir.mkdir()
    server = start_server(data_dir)
    yield server
    server.stop()
