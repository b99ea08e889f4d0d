"""Rules files: TOML and JSON, reload on change, a broken edit keeps the last good rules."""

from __future__ import annotations

import json
import os
from datetime import timedelta
from pathlib import Path

import pytest

from telerad.workflow.model import Priority
from telerad.workflow.rules import RulesError, RulesSource, load_rules


def test_toml_and_json_files(tmp_path: Path) -> None:
    toml = tmp_path / "net.toml"
    toml.write_text('network = "west"\n[contracts.7]\nroutine = 720\n[queue]\ncap_rvu = 12\n')
    rules = load_rules(toml)
    assert (rules.network, rules.queue_cap_rvu) == ("west", 12.0)
    assert rules.target(7, Priority.ROUTINE) == timedelta(minutes=720)
    as_json = tmp_path / "net.json"
    as_json.write_text(json.dumps({"network": "west", "pull_pool": {"enabled": True}}))
    assert load_rules(as_json).pull_pool is True


def _touch(path: Path, text: str, tick: int) -> None:
    path.write_text(text)
    os.utime(path, ns=(tick, tick))  # explicit times: no dependence on the clock's resolution


def test_source_reloads_when_the_file_changes(tmp_path: Path) -> None:
    path = tmp_path / "net.toml"
    _touch(path, "[queue]\ncap_rvu = 10\n", 1_000_000_000)
    source = RulesSource(path)
    assert source.current().queue_cap_rvu == 10.0
    assert source.reloads == 0

    _touch(path, "[queue]\ncap_rvu = 15\n", 2_000_000_000)
    assert source.current().queue_cap_rvu == 15.0
    assert (source.reloads, source.error) == (1, None)
    assert source.current().queue_cap_rvu == 15.0
    assert source.reloads == 1  # unchanged file: not read again


def test_a_broken_edit_keeps_the_last_good_rules(tmp_path: Path) -> None:
    path = tmp_path / "net.toml"
    _touch(path, "[queue]\ncap_rvu = 10\n", 1_000_000_000)
    source = RulesSource(path)
    _touch(path, "[queue]\ncap_rvu = 0\n", 2_000_000_000)
    assert source.current().queue_cap_rvu == 10.0
    assert source.error is not None and "queue.cap_rvu: must be positive" in source.error
    _touch(path, "[queue]\ncap_rvu = 11\n", 3_000_000_000)
    assert source.current().queue_cap_rvu == 11.0
    assert source.error is None
    path.unlink()
    assert source.current().queue_cap_rvu == 11.0
    assert source.error is not None


def test_a_broken_file_at_start_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "net.toml"
    path.write_text("[queue]\ncap_rvu = 'lots'\n")
    with pytest.raises(RulesError, match="queue.cap_rvu: must be a number"):
        RulesSource(path)
