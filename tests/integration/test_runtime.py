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
from tests.conftest import run_cli

from telerad.bootstrap import bootstrap, open_platform
from telerad.config import Settings
from telerad.storage.db.syncer import claim, release

LOOPS = {"index-sync", "index-statistics", "reconciliation", "reading-worklist"}


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
        platform.start()  # the rest; nothing twice
        assert sorted(platform.runtime.running) == sorted(LOOPS)
        with pytest.raises(ValueError, match="no such loop: nope"):
            platform.start(only=frozenset({"nope"}))
        platform.stop()
        assert platform.runtime.running == []
        assert not LOOPS & _threads()
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
