"""PNG charts of a simulated day (matplotlib, Agg backend, imported only when plotting)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from telerad.workflow.model import Priority

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from telerad.simulation.figures import Figures

COLOURS = {"engine": "#1f77b4", "fifo": "#d62728"}


def write_plots(
    engine: Figures, fifo: Figures, folder: Path, targets: Mapping[Priority, int] | None = None
) -> list[Path]:
    """Queue length over the day, TAT per tier, utilisation per reader: three PNG files."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder.mkdir(parents=True, exist_ok=True)
    written = []
    runs = (("engine", engine), ("FIFO", fifo))

    fig, ax = plt.subplots(figsize=(10, 4))
    for label, f in runs:
        hours = [minutes / 60 for minutes, _ in f.queue]
        ax.plot(hours, [n for _, n in f.queue], label=label, color=COLOURS[f.policy])
    ax.set_xlabel("hours from the start of the day (UTC)")
    ax.set_ylabel("studies ready, not yet opened")
    ax.set_title("Queue length")
    ax.axvline(24, color="grey", linestyle=":", linewidth=1)
    ax.legend()
    written.append(_save(fig, folder / "queue.png"))

    fig, ax = plt.subplots(figsize=(10, 4.5))
    tiers = [t for t in Priority if engine.tiers[t].read or fifo.tiers[t].read]
    for offset, (label, f) in zip((-0.2, 0.2), runs, strict=True):
        data = [f.tats[t] or [0.0] for t in tiers]
        box = ax.boxplot(
            data,
            positions=[i + offset for i in range(len(tiers))],
            widths=0.35,
            whis=(10, 90),
            showfliers=False,
            patch_artist=True,
        )
        for patch in box["boxes"]:
            patch.set_facecolor(COLOURS[f.policy])
            patch.set_alpha(0.5)
        box["boxes"][0].set_label(label)
    for i, tier in enumerate(tiers):
        target = (targets or {}).get(tier)
        if target:
            ax.hlines(target, i - 0.45, i + 0.45, colors="black", linestyles="--", linewidth=1)
    ax.set_xticks(range(len(tiers)), [t.value for t in tiers])
    ax.set_yscale("log")
    ax.set_ylabel("turnaround, minutes (log)")
    ax.set_title("Turnaround per tier (box: p25-p75, whiskers: p10-p90; dashes: usual target)")
    ax.legend(loc="upper left")
    written.append(_save(fig, folder / "tat.png"))

    fig, ax = plt.subplots(figsize=(10, 4))
    for label, f in runs:
        values = sorted(f.utilisation.values(), reverse=True)
        ax.plot(range(1, len(values) + 1), values, label=label, color=COLOURS[f.policy])
    ax.set_xlabel("readers, busiest first")
    ax.set_ylabel("time reading / time signed in")
    ax.set_ylim(0, 1.05)
    ax.set_title("Utilisation per reader (within the day)")
    ax.legend()
    written.append(_save(fig, folder / "utilisation.png"))
    return written


def _save(fig: Figure, path: Path) -> Path:
    import matplotlib.pyplot as plt

    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)
    return path
