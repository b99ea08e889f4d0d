"""The results benchmark runs end to end (a few signatures) and says whether the
targets were met."""

from __future__ import annotations

import json
from pathlib import Path

from bench import oru


def test_a_few_signatures_are_acknowledged_and_reported(tmp_path: Path) -> None:
    figures = tmp_path / "oru.json"
    assert oru.main(["--signatures", "5", "--json", str(figures)]) == 0
    body = json.loads(figures.read_text())
    for run in ("one_at_a_time", "burst"):
        assert body[run]["signatures"] == 5
        assert 0 < body[run]["median_s"] <= body[run]["p95_s"] <= body[run]["max_s"]
