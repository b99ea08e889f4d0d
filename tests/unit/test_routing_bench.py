"""The routing benchmark runs small and reports what it promises (not a timing test)."""

from __future__ import annotations

import pytest
from bench.routing import main, run


def test_a_small_run_reports_every_figure() -> None:
    result = run(studies=300, readers=40, decisions=60, seed=3)
    for key in ("engine", "engine_placed", "worklist_add", "fifo"):
        figures = result[key]
        assert isinstance(figures, dict)
        assert 0 <= figures["median_ms"] <= figures["p90_ms"] <= figures["max_ms"]
    assert result["ineligible_assignments"] == 0
    assert result["held_after_build"] + result["waiting_after_build"] == 300  # type: ignore[operator]


def test_the_command_prints_the_target(capsys: pytest.CaptureFixture[str]) -> None:
    main(["--studies", "200", "--readers", "30", "--decisions", "40"])
    out = capsys.readouterr().out
    assert "routing decision (engine)" in out
    assert "FIFO baseline (oldest eligible)" in out
    assert "target: median ≤ 5 ms per decision" in out
