"""telerad as a user runs it: ``telerad serve`` in a subprocess on free ports, the CLI on
a data dir. Plain functions (tests/conftest.py wraps them in fixtures)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from tests.support import eventually

ROOT = Path(__file__).resolve().parents[1]

_handed_out: set[int] = set()


def _worker() -> tuple[int, int]:
    """This pytest-xdist worker's number and the number of workers ((0, 1) without xdist)."""
    name = os.environ.get("PYTEST_XDIST_WORKER", "")
    count = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1") or 1)
    return (int(name[2:]) if name.startswith("gw") else 0), max(count, 1)


def free_port() -> int:
    """A port nothing listens on, never one this session handed out before (the kernel
    may give a just-closed port again, and two servers of one test would collide).
    Under pytest-xdist each worker takes its own share of the port numbers, so two
    workers never hand out the same port between its probe and its server's bind
    (by port // 2: Linux gives bind() ports of one parity, connect() the other)."""
    worker, workers = _worker()
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        if (port // 2) % workers == worker and port not in _handed_out:
            _handed_out.add(port)
            return port


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

    def healthy() -> bool:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited: {log_path.read_text()}")
        # Readiness only; TLS tests check the certificate themselves.
        return httpx.get(url + "/healthz", timeout=1, verify=False).status_code == 200

    try:
        eventually(healthy, 60, 0.2, "the server's /healthz", ignoring=(httpx.HTTPError,))
    except AssertionError:
        proc.kill()
        raise
    return LiveServer(url, dicom_port, "TELERAD", data_dir, proc, env)


def require_tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is not installed (make install installs it)")
    return path
