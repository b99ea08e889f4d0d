"""``telerad simulate`` on the command line: JSON on stdout, PNG plots, CSV out and back in.

In process (typer's runner) to keep the suite fast: a subprocess would spend most of
its time importing the whole command line.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from telerad.cli.main import app

TIERS = {"stroke", "trauma", "stat", "urgent", "routine"}
SMALL = ["--studies", "300", "--readers", "10"]


def simulate(*args: str) -> dict[str, object]:
    result = CliRunner().invoke(app, ["simulate", "--json", *args])
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)  # exactly one JSON document, nothing else
    assert isinstance(out, dict)
    return out


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, object], Path]:
    folder = tmp_path_factory.mktemp("simulate")
    out = simulate(
        "--seed", "1", *SMALL,
        "--plots", str(folder / "plots"), "--export-csv", str(folder / "csv"),
    )  # fmt: skip
    return out, folder


def test_json_has_the_figures_keyed_by_tier(generated: tuple[dict[str, object], Path]) -> None:
    out, _ = generated
    for key in (
        "sla_breach_rate",
        "baseline_sla_breach_rate",
        "p90_tat_minutes",
        "baseline_p90_tat_minutes",
        "p50_tat_minutes",
        "p99_tat_minutes",
    ):
        figures = out[key]
        assert isinstance(figures, dict) and set(figures) == TIERS, key
    rates = out["sla_breach_rate"]
    assert isinstance(rates, dict)
    assert all(0 <= r <= 1 for r in rates.values())
    assert out["seed"] == 1 and out["studies"] == 300 and out["readers"] == 10
    assert out["source"] == "generated" and out["ineligible_assignments"] == 0
    assert 0 < out["mean_utilisation"] <= 1  # type: ignore[operator]
    assert 0 <= out["overall_sla_breach_rate"] <= 1  # type: ignore[operator]
    assert set(out["seconds"]) == {"engine", "fifo"}  # type: ignore[arg-type]


def test_json_counts_breaches_and_unread_studies_by_cover(
    generated: tuple[dict[str, object], Path],
) -> None:
    out, _ = generated
    covers = {"on_duty", "off_duty", "nobody_qualified"}
    for key in ("breaches", "baseline_breaches"):
        breaches = out[key]
        assert isinstance(breaches, dict) and set(breaches) == TIERS, key
        assert all(set(b) == covers for b in breaches.values()), key
    for key in ("on_duty_sla_breach_rate", "baseline_on_duty_sla_breach_rate"):
        rates = out[key]
        assert isinstance(rates, dict) and set(rates) == TIERS, key
    reasons = out["unread_reasons"]
    assert isinstance(reasons, dict) and set(reasons) == covers
    assert sum(reasons.values()) == out["unread"]
    unreadable = out["unreadable"]
    assert isinstance(unreadable, dict)
    assert sum(unreadable.values()) == reasons["nobody_qualified"]
    targets = out["targets"]
    assert isinstance(targets, dict)
    assert set(targets["not_worse_than_fifo"]) == TIERS
    for key in ("stroke_breach_rate_met", "strict_breach_rate_ratio_met"):
        assert isinstance(targets[key], bool), key


def test_the_progress_bar_stays_on_stderr(monkeypatch: pytest.MonkeyPatch) -> None:
    from telerad.cli import common

    monkeypatch.setattr(common.err, "_force_terminal", True)  # as on a terminal
    result = CliRunner().invoke(app, ["simulate", "--json", "--studies", "100", "--readers", "8"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["studies"] == 100  # stdout: the JSON document alone
    assert "reads" in result.stderr and "engine" in result.stderr and "fifo" in result.stderr


def test_plots_are_png_files(generated: tuple[dict[str, object], Path]) -> None:
    out, folder = generated
    plots = [Path(p) for p in out["plots"]]  # type: ignore[attr-defined]
    assert {p.name for p in plots} == {"queue.png", "tat.png", "utilisation.png"}
    for plot in plots:
        assert plot.parent == folder / "plots"
        assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert plot.stat().st_size > 10_000


def test_the_exported_day_replays_to_the_same_figures(
    generated: tuple[dict[str, object], Path],
) -> None:
    out, folder = generated
    csv = folder / "csv"
    header = (csv / "arrivals.csv").read_text().splitlines()[0]
    assert header.startswith("uid,facility_id,jurisdiction,ready_at,priority")
    again = simulate("--arrivals", str(csv / "arrivals.csv"), "--roster", str(csv / "roster.csv"))
    assert again["source"] == "csv" and again["seed"] is None
    for key in ("sla_breach_rate", "baseline_sla_breach_rate", "p90_tat_minutes", "utilisation"):
        assert again[key] == out[key], key


def test_the_table_compares_both_policies() -> None:
    result = CliRunner().invoke(
        app, ["simulate", "--seed", "2", "--studies", "100", "--readers", "8"]
    )
    assert result.exit_code == 0, result.output
    for text in ("engine", "FIFO", "SLA compliance", "stroke", "mean utilisation", "breach rate"):
        assert text in result.stdout
    for text in ("breaches by cover", "never read", "no tier worse than FIFO"):
        assert text in result.stdout


def test_bad_input_is_refused_with_a_reason(tmp_path: Path) -> None:
    runner = CliRunner()
    arrivals = tmp_path / "arrivals.csv"
    arrivals.write_text("uid,facility_id,jurisdiction,ready_at,priority,modality,rvu\n"
                        "a,7,US-CA,2025-03-04T08:00Z,soon,CT,1\n")  # fmt: skip
    roster = tmp_path / "roster.csv"
    roster.write_text("user_id,licences,facility_ids,modalities,shifts\n")
    cases = [
        (["--arrivals", str(arrivals)], "--arrivals and --roster go together"),
        (
            ["--arrivals", str(arrivals), "--roster", str(roster)],
            "arrivals.csv, line 2: priority: unknown value 'soon'",
        ),
        (
            ["--arrivals", str(arrivals), "--roster", str(roster), "--studies", "5"],
            "--studies and --readers size a generated day",
        ),
        (["--rules", str(tmp_path / "missing.toml")], "rules:"),
    ]
    for args, message in cases:
        result = runner.invoke(app, ["simulate", *args])
        assert result.exit_code == 2, (args, result.output)
        assert message in " ".join(result.stderr.split()), (args, result.stderr)
