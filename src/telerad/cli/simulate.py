"""``telerad simulate``: a reading day through the routing engine, beside the FIFO baseline.

The day is generated from a seed (``telerad.simulation.scenario``) or read from two
CSV files (``telerad.simulation.trace``); both policies replay the same arrivals and
roster (``telerad.simulation.replay``). The table (or, with ``--json``, one JSON
object on stdout) compares SLA breaches, turnaround percentiles per tier and
utilisation. ``--plots DIR`` writes PNG charts of the day; ``--export-csv DIR``
writes the day as CSV, the format ``--arrivals``/``--roster`` read back.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from telerad.cli.common import console, err, fail

if TYPE_CHECKING:
    from telerad.simulation.figures import Figures, TierFigures
    from telerad.simulation.scenario import Scenario
    from telerad.workflow.rules import Rules

SeedOpt = Annotated[int, typer.Option(help="Seed of the generated day")]


def simulate(
    seed: SeedOpt = 1,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object on stdout")] = False,
    studies: Annotated[
        int | None, typer.Option(min=0, help="Studies in the generated day (20000)")
    ] = None,
    readers: Annotated[
        int | None, typer.Option(min=1, help="Radiologists on the generated roster (120)")
    ] = None,
    arrivals: Annotated[
        Path | None, typer.Option(dir_okay=False, help="Arrivals CSV (with --roster)")
    ] = None,
    roster: Annotated[
        Path | None, typer.Option(dir_okay=False, help="Roster CSV (with --arrivals)")
    ] = None,
    export_csv: Annotated[
        Path | None, typer.Option(file_okay=False, help="Write arrivals.csv and roster.csv here")
    ] = None,
    plots: Annotated[
        Path | None, typer.Option(file_okay=False, help="Write PNG plots of the day here")
    ] = None,
    rules: Annotated[
        Path | None, typer.Option(dir_okay=False, help="Routing rules file (TOML or JSON)")
    ] = None,
) -> None:
    """Replay a reading day through the routing engine and a FIFO worklist, side by side."""
    from telerad.simulation.scenario import DEFAULT_READERS, DEFAULT_STUDIES, generate
    from telerad.simulation.trace import TraceError
    from telerad.workflow.rules import RulesError, default_rules, load_rules

    try:
        network = load_rules(rules) if rules else default_rules()
    except (RulesError, OSError) as exc:
        raise fail(f"rules: {exc}") from exc
    if (arrivals is None) != (roster is None):
        raise fail("--arrivals and --roster go together: a trace is both files")
    if arrivals is not None and roster is not None:
        if studies is not None or readers is not None:
            raise fail("--studies and --readers size a generated day, not a CSV trace")
        try:
            scenario = _load(arrivals, roster)
        except (TraceError, OSError, UnicodeDecodeError) as exc:
            raise fail(str(exc)) from exc
        source = "csv"
    else:
        scenario = generate(
            seed,
            DEFAULT_STUDIES if studies is None else studies,
            DEFAULT_READERS if readers is None else readers,
        )
        source = "generated"
    if export_csv is not None:
        _export(scenario, network, export_csv)

    engine, fifo, seconds = _run(scenario, network)
    from telerad.simulation.figures import report

    result: dict[str, object] = {
        "source": source,
        "seed": scenario.seed,
        "studies": len(scenario.arrivals),
        "readers": len(scenario.readers),
        "rules": network.network,
    }
    result |= report(engine, fifo)
    result["seconds"] = seconds
    if plots is not None:
        from telerad.cli.simulate_plots import write_plots

        written = write_plots(engine, fifo, plots, network.targets)
        result["plots"] = [str(p) for p in written]
    if as_json:
        print(json.dumps(result))
    else:
        _print(result, engine, fifo)


def _load(arrivals: Path, roster: Path) -> Scenario:
    from telerad.simulation.trace import load_scenario

    return load_scenario(
        arrivals.read_text(encoding="utf-8"),
        roster.read_text(encoding="utf-8"),
        arrivals.name,
        roster.name,
    )


def _export(scenario: Scenario, rules: Rules, folder: Path) -> None:
    from telerad.simulation.trace import arrivals_csv, roster_csv

    folder.mkdir(parents=True, exist_ok=True)
    (folder / "arrivals.csv").write_text(arrivals_csv(scenario, rules), encoding="utf-8")
    (folder / "roster.csv").write_text(roster_csv(scenario.readers), encoding="utf-8")


def _clock(hours: float) -> str:
    """Where the replay is: a time of the simulated day, or how far into the drain."""
    if hours < 24:
        return f"{int(hours):02d}:{int(hours * 60) % 60:02d} of the day"
    return f"after the day, +{hours - 24:.1f} h"


def _run(scenario: Scenario, rules: Rules) -> tuple[Figures, Figures, dict[str, float]]:
    """Both policies, with a progress bar on stderr (a terminal only; with ``--json`` too,
    since stdout keeps the one JSON document)."""
    from rich.progress import TaskID

    from telerad.cli.progress import file_progress
    from telerad.simulation.figures import figures
    from telerad.simulation.replay import IneligibleAssignment, Policy, simulate

    results = {}
    seconds = {}
    progress = file_progress("reads", err)
    progress.disable = not err.is_terminal
    with progress:
        for policy in (Policy.ENGINE, Policy.FIFO):
            task = progress.add_task(str(policy), total=len(scenario.arrivals), state=str(policy))

            def advance(
                done: int, total: int, hours: float, task: TaskID = task, name: str = policy
            ) -> None:
                progress.update(task, completed=done, total=total, state=f"{name}, {_clock(hours)}")

            started = time.perf_counter()
            try:
                run = simulate(scenario, rules, policy, progress=advance)
            except IneligibleAssignment as exc:  # a bug in the engine: say so, loudly
                raise fail(f"simulation stopped: {exc}", code=1) from exc
            seconds[str(policy)] = round(time.perf_counter() - started, 2)
            results[policy] = figures(run)
    return results[Policy.ENGINE], results[Policy.FIFO], seconds


def _pct(value: object) -> str:
    return f"{value:.1%}" if isinstance(value, float) else "–"


def _minutes(value: object) -> str:
    return f"{value:.1f}" if isinstance(value, float | int) else "–"


def _causes(tier: TierFigures) -> str:
    """A tier's breaches by cover: reader on duty / none on duty in time / nobody qualified."""
    from telerad.simulation.replay import Cover

    by = tier.breached_by_cover
    return f"{by[Cover.ON_DUTY]} / {by[Cover.OFF_DUTY]} / {by[Cover.NOBODY]}"


def _unread(f: Figures) -> str:
    from telerad.simulation.replay import Cover

    unread = f.studies - f.read
    nobody = f.unread_by_cover[Cover.NOBODY]
    return f"{unread} ({nobody} nobody qualified)" if unread else "0"


def _print(result: dict[str, object], engine: Figures, fifo: Figures) -> None:
    from telerad.workflow.model import Priority

    seed = f", seed {result['seed']}" if result["seed"] is not None else ""
    title = (
        f"Simulated day: {result['studies']} studies, {result['readers']} readers "
        f"({result['source']}{seed})"
    )
    caption = (
        "breaches by cover: a qualified reader on shift before the deadline / qualified "
        "readers, none on shift in time / nobody on the roster qualified"
    )
    table = Table(title=title, caption=caption)
    table.add_column("")
    table.add_column("engine", justify="right")
    table.add_column("FIFO", justify="right")
    table.add_row("SLA compliance", _pct(1 - engine.breach_rate), _pct(1 - fifo.breach_rate))
    table.add_row("SLA breach rate", _pct(engine.breach_rate), _pct(fifo.breach_rate))
    for tier in Priority:
        e, f = engine.tiers[tier], fifo.tiers[tier]
        table.add_row(
            f"  {tier} ({e.studies}) breach",
            _pct(e.breach_rate) if e.studies else "–",
            _pct(f.breach_rate) if f.studies else "–",
        )
    for tier in Priority:
        e, f = engine.tiers[tier], fifo.tiers[tier]
        table.add_row(f"  {tier} breaches by cover", _causes(e), _causes(f))
    for tier in Priority:
        e, f = engine.tiers[tier], fifo.tiers[tier]
        table.add_row(
            f"  {tier} TAT p50 / p90 / p99 (min)",
            " / ".join(_minutes(e.tat[q]) for q in (50, 90, 99)),
            " / ".join(_minutes(f.tat[q]) for q in (50, 90, 99)),
        )
    table.add_row(
        "mean stroke TAT (min)",
        _minutes(engine.tiers[Priority.STROKE].mean_tat),
        _minutes(fifo.tiers[Priority.STROKE].mean_tat),
    )
    table.add_row("mean utilisation", _pct(engine.mean_utilisation), _pct(fifo.mean_utilisation))
    table.add_row("never read", _unread(engine), _unread(fifo))
    table.add_row("most waiting at once", str(engine.max_queue), str(fifo.max_queue))
    table.add_row("reassignments", str(engine.reassignments), "–")
    seconds = result["seconds"]
    assert isinstance(seconds, dict)
    table.add_row("run time (s)", f"{seconds['engine']:.1f}", f"{seconds['fifo']:.1f}")
    console.print(table)
    targets = result["targets"]
    assert isinstance(targets, dict)
    ratio = result["breach_rate_ratio"]
    verdict = {True: "[green]met[/green]", False: "[red]missed[/red]"}
    console.print(
        f"breach rate vs FIFO: {ratio if ratio is not None else '–'}× "
        f"(target ≤ {targets['breach_rate_ratio_max']}×) "
        f"{verdict[bool(targets['breach_rate_ratio_met'])]}; stroke p90 "
        f"{_minutes(engine.tiers[Priority.STROKE].tat[90])} min "
        f"(target ≤ {targets['stroke_p90_tat_minutes_max']:g}) "
        f"{verdict[bool(targets['stroke_p90_met'])]}"
    )
    worse = targets["not_worse_than_fifo"]
    assert isinstance(worse, dict)
    behind = [f"{t} {k}" for t, ok in worse.items() for k in ("breach", "p90") if not ok[k]]
    console.print(
        f"no tier worse than FIFO: {verdict[not behind]}"
        + (f" ({', '.join(behind)} worse)" if behind else "")
        + f"; stroke breaches {_pct(engine.tiers[Priority.STROKE].breach_rate)} "
        f"(target ≤ {targets['stroke_breach_rate_max']:.0%}) "
        f"{verdict[bool(targets['stroke_breach_rate_met'])]}; breach rate ≤ "
        f"{targets['strict_breach_rate_ratio_max']}× FIFO "
        f"{verdict[bool(targets['strict_breach_rate_ratio_met'])]}"
    )
    if engine.unreadable:
        needs = ", ".join(f"{need} ({n})" for need, n in list(engine.unreadable.items())[:5])
        more = len(engine.unreadable) - 5
        console.print(
            f"nobody on the roster may read: {needs}" + (f" and {more} more" if more > 0 else "")
        )
    if "plots" in result:
        console.print(f"plots: {', '.join(str(p) for p in result['plots'])}")  # type: ignore[attr-defined]
