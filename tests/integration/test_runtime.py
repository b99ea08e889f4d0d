"""The platform's life: built, opened, started, closed — each step in one place (issue 10).

bootstrap() only builds (no statement, no thread, no running marker); open() brings
the data up; start() runs the named background loops; close() stops them and
leaves a clean stop behind, also for every CLI command.
"""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from sqlalchemy import inspect
from tests.conftest import free_port, run_cli

from telerad.bootstrap import bootstrap, open_platform
from telerad.config import Settings
from telerad.storage.db.syncer import claim, release

LOOPS = {
    "index-sync",
    "index-statistics",
    "leadership",
    "reconciliation",
    "reading-worklist",
    "outbox",
}


def _running_markers(data_dir: Path) -> list[Path]:
    return sorted(data_dir.glob(".running-*"))


def _threads() -> set[str]:
    return {t.name for t in threading.enumerate()}


def test_bootstrap_only_builds(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    before = _threads()
    platform = bootstrap(Settings(data_dir=data_dir, fsync=False))
    try:
        assert _threads() - before == set()  # nothing runs
        assert _running_markers(data_dir) == []
        assert "study" not in inspect(platform.engine).get_table_names()  # nothing migrated
        assert platform.runtime.running == []
        assert {loop.name for loop in platform.runtime.loops} == LOOPS
    finally:
        platform.close()
    assert _running_markers(data_dir) == []


def test_open_start_stop_close(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    with open_platform(Settings(data_dir=data_dir, fsync=False)) as platform:
        assert "study" in inspect(platform.engine).get_table_names()
        assert len(_running_markers(data_dir)) == 1
        platform.start(only=frozenset({"index-sync", "reconciliation"}))
        assert platform.runtime.running == ["index-sync", "reconciliation"]
        assert {"index-sync", "reconciliation"} <= _threads()
        assert not platform.leadership.started  # without its loop, everything is local
        platform.start()  # the rest; nothing twice
        assert sorted(platform.runtime.running) == sorted(LOOPS)
        assert platform.leadership.is_leader  # alone on its database: it decides
        with pytest.raises(ValueError, match="no such loop: nope"):
            platform.start(only=frozenset({"nope"}))
        platform.stop()
        assert platform.runtime.running == []
        assert not LOOPS & _threads()
        assert not platform.leadership.is_leader
        assert platform.leadership.leader() is None  # the lease given up: another may take it
    assert _running_markers(data_dir) == []
    assert claim(data_dir).unclean_since is None  # a clean stop: nothing to recover
    release(data_dir)


def test_cli_commands_leave_a_clean_stop(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    for args in (
        ("facility", "add", "North"),
        ("facility", "list"),
        ("node", "list"),
        ("audit", "verify"),
        ("reader", "show", "nobody"),  # refused: still closed
    ):
        run_cli(data_dir, *args)
        assert _running_markers(data_dir) == [], args


def test_one_process_decides_the_lease_passes_when_it_expires(tmp_path: Path) -> None:
    from datetime import UTC, datetime, timedelta

    from telerad.services.leadership import Leadership
    from telerad.storage.db.lease_repository import SqlLeases

    with open_platform(Settings(data_dir=tmp_path / "data", fsync=False)) as platform:
        now = [datetime.now(UTC)]
        store = SqlLeases(platform.engine)
        a = Leadership(store, "http://a", clock=lambda: now[0])
        b = Leadership(store, "http://b", clock=lambda: now[0])
        lost: list[str] = []
        a.on_loss.append(lambda: lost.append("a"))
        assert a.renew() and not b.renew()
        lease = b.leader()
        assert lease is not None and (lease.holder, lease.address) == (a.me, "http://a")
        now[0] += timedelta(seconds=5)
        assert a.renew() and not b.renew()  # renewed in time: still a's
        now[0] += timedelta(seconds=11)  # a stopped renewing (killed): the lease expires
        assert b.leader() is None
        assert b.renew() and b.is_leader
        assert not a.renew() and lost == ["a"]  # a finds out and steps down
        b.step_down()
        assert a.renew()  # given up: taken at once


def test_a_process_that_does_not_decide_forwards_or_says_to_retry(tmp_path: Path) -> None:
    from datetime import UTC, datetime, timedelta

    from fastapi.testclient import TestClient

    from telerad.storage.db.lease_repository import SqlLeases
    from telerad.web.app import create_app

    with open_platform(Settings(data_dir=tmp_path / "data", fsync=False)) as platform:
        nobody_listens = f"http://127.0.0.1:{free_port()}"
        leases = SqlLeases(platform.engine)
        assert leases.acquire("reading", "elsewhere", nobody_listens, datetime.now(UTC),
                              timedelta(minutes=5))  # fmt: skip
        platform.leadership.started = True  # this process keeps its lease loop: not the holder
        client = TestClient(create_app(platform))
        r = client.get("/api/worklist")
        assert r.status_code == 503 and r.headers["retry-after"] == "5"
        assert "moving to another process" in r.text
        # A forwarded request is never forwarded again.
        looped = client.get("/board", headers={"X-Telerad-Forwarded": "1"})
        assert looped.status_code == 503
        # What any process answers itself is not forwarded.
        health = client.get("/healthz")  # 503 here only because no listener runs
        assert "moving to another process" not in health.text
        assert client.get("/dicom-web/studies").status_code in (200, 204)
        platform.leadership.started = False
