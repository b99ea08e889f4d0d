"""Shared fixtures: platforms on SQLite and PostgreSQL, and a live server in a subprocess."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from telerad.bootstrap import Platform, open_platform
from telerad.config import Settings

ROOT = Path(__file__).resolve().parents[1]
PG_ADMIN_URL = os.environ.get(
    "TELERAD_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)


_handed_out: set[int] = set()


def free_port() -> int:
    """A port nothing listens on, never one this session handed out before (the kernel
    may give a just-closed port again, and two servers of one test would collide)."""
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        if port not in _handed_out:
            _handed_out.add(port)
            return port


@pytest.fixture
def platform(tmp_path: Path) -> Iterator[Platform]:
    """An embedded platform: SQLite index and blobs under a temporary data dir."""
    p = open_platform(Settings(data_dir=tmp_path / "data", fsync=False))
    yield p
    p.close()


def _pg_available() -> bool:
    try:
        import psycopg

        with psycopg.connect("host=127.0.0.1 user=postgres dbname=postgres", connect_timeout=3):
            return True
    except Exception:
        return False


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A fresh PostgreSQL database on the local server, dropped afterwards."""
    if not _pg_available():
        if os.environ.get("CI"):
            pytest.fail("PostgreSQL is not reachable on 127.0.0.1:5432")
        pytest.skip("PostgreSQL is not reachable on 127.0.0.1:5432")
    import psycopg

    name = "telerad_test_" + uuid.uuid4().hex[:12]
    with psycopg.connect("host=127.0.0.1 user=postgres dbname=postgres", autocommit=True) as c:
        c.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    finally:
        with psycopg.connect("host=127.0.0.1 user=postgres dbname=postgres", autocommit=True) as c:
            c.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def pg_platform(tmp_path: Path, pg_url: str) -> Iterator[Platform]:
    p = open_platform(Settings(data_dir=tmp_path / "data", database_url=pg_url, fsync=False))
    yield p
    p.close()


@dataclass
class LiveServer:
    http_url: str
    dicom_port: int
    aet: str
    data_dir: Path
    process: subprocess.Popen[bytes]
    env: dict[str, str]

    @property
    def dicomweb(self) -> str:
        return self.http_url + "/dicom-web"

    def stop(self) -> None:
        """Terminate the server (killed if it takes more than 10 s)."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()

    def telerad(self, *args: str, input: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
        """Run the CLI against this server's data dir."""
        return subprocess.run(
            [sys.executable, "-m", "telerad.cli.main", *args],
            env=self.env,
            input=input,
            capture_output=True,
            timeout=300,
        )


def run_cli(
    data_dir: Path, *args: str, input: str | None = None
) -> subprocess.CompletedProcess[str]:
    """``telerad ARGS`` as a user runs it, on ``data_dir`` (embedded index, no fsync)."""
    env = dict(os.environ, TELERAD_DATA_DIR=str(data_dir), TELERAD_FSYNC="false", COLUMNS="200")
    env.pop("TELERAD_DATABASE_URL", None)
    return subprocess.run(
        [sys.executable, "-m", "telerad.cli.main", *args],
        env=env,
        input=input,
        capture_output=True,
        text=True,
        timeout=300,
    )


def start_server(
    data_dir: Path, extra_env: dict[str, str] | None = None, args: tuple[str, ...] = ()
) -> LiveServer:
    """``telerad serve ARGS`` on free ports; its console goes to server-<port>.log beside
    the data dir."""
    http_port, dicom_port = free_port(), free_port()
    env = dict(os.environ)
    env.update(
        TELERAD_DATA_DIR=str(data_dir),
        TELERAD_HTTP_PORT=str(http_port),
        TELERAD_DICOM_PORT=str(dicom_port),
        TELERAD_DICOM_TLS_PORT=str(free_port()),  # listened on only with TELERAD_TLS_CERT/KEY
        TELERAD_MLLP_PORT=str(free_port()),
        TELERAD_MLLP_TLS_PORT=str(free_port()),  # listened on only with TELERAD_TLS_CERT/KEY
        TELERAD_DICOM_AET="TELERAD",
        TELERAD_FSYNC="false",
    )
    env.update(extra_env or {})
    log_path = data_dir.parent / f"server-{http_port}.log"
    with open(log_path, "wb") as log:  # the child keeps its own descriptor
        proc = subprocess.Popen(
            [sys.executable, "-m", "telerad.cli.main", "serve", *args],
            env=env,
            stdout=log,
            stderr=log,
        )
    scheme = "https" if env.get("TELERAD_TLS_CERT") else "http"
    url = f"{scheme}://127.0.0.1:{http_port}"
    deadline = time.time() + 60
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited: {log_path.read_text()}")
        try:
            # Readiness only; TLS tests check the certificate themselves.
            if httpx.get(url + "/healthz", timeout=1, verify=False).status_code == 200:
                return LiveServer(url, dicom_port, "TELERAD", data_dir, proc, env)
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    proc.kill()
    raise RuntimeError("server did not become healthy in 60 s")


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
    """One telerad process (SQLite) for the whole session; tests use their own UIDs."""
    data_dir = tmp_path_factory.mktemp("live") / "data"
    data_dir.mkdir()
    server = start_server(data_dir)
    yield server
    server.stop()


def require_tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is not installed (make install installs it)")
    return path
