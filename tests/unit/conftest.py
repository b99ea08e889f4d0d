"""The unit tier does no I/O: a test here that opens a socket, connects to a database,
starts a process or asks for a temporary directory fails, whatever the code under test
does with the error. Such a test belongs in tests/integration (in-process databases,
sockets, files) or tests/e2e (processes); see docs/testing.md.
"""

from __future__ import annotations

import os
import socket
import sqlite3
import subprocess
from collections.abc import Callable, Iterator
from typing import Any

import pytest

MOVE = "unit tests do no I/O: move this test to tests/integration (see docs/testing.md)"


class UnitTierIO(RuntimeError):
    """Raised where a unit test reached for I/O (and recorded, should the code swallow it)."""


def _forbidden(what: str, attempts: list[str]) -> Callable[..., Any]:
    def refuse(*args: Any, **kwargs: Any) -> Any:
        attempts.append(what)
        raise UnitTierIO(f"{what}: {MOVE}")

    return refuse


@pytest.fixture(autouse=True)
def _no_io(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    attempts: list[str] = []
    guarded: list[tuple[Any, str, str]] = [
        (socket.socket, "connect", "socket connect"),
        (socket.socket, "connect_ex", "socket connect"),
        (socket.socket, "bind", "socket bind"),
        (socket.socket, "sendto", "socket sendto"),
        (socket, "getaddrinfo", "name lookup"),
        (socket, "gethostbyname", "name lookup"),
        (sqlite3, "connect", "SQLite connection"),
        (sqlite3.dbapi2, "connect", "SQLite connection"),
        (subprocess.Popen, "_execute_child", "subprocess"),
        (os, "system", "subprocess"),
        (os, "fork", "fork"),
        (os, "posix_spawn", "subprocess"),
        (os, "posix_spawnp", "subprocess"),
    ]
    try:
        import psycopg
    except ImportError:  # pragma: no cover - psycopg is a dependency
        pass
    else:
        guarded += [(psycopg, "connect", "PostgreSQL connection")]
        guarded += [(psycopg.Connection, "connect", "PostgreSQL connection")]
    for owner, name, what in guarded:
        monkeypatch.setattr(owner, name, _forbidden(what, attempts))
    yield
    monkeypatch.undo()  # before the check, so that a failing test's teardown may do I/O
    if attempts:
        pytest.fail(f"{', '.join(sorted(set(attempts)))}: {MOVE}", pytrace=False)


@pytest.fixture
def tmp_path() -> None:
    pytest.fail(f"a temporary directory: {MOVE}", pytrace=False)


@pytest.fixture
def tmp_path_factory() -> None:
    pytest.fail(f"temporary directories: {MOVE}", pytrace=False)
