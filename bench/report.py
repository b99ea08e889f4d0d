"""Figures, targets and the printed table (rich) / JSON file."""

from __future__ import annotations

import json
import os
import platform
import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
from rich.table import Table

SERVERS = ("storescp", "Orthanc", "telerad")
Value = float | str  # a figure, or the reason there is none


@dataclass(frozen=True)
class Measure:
    key: str
    label: str
    unit: str
    # "min": telerad/Orthanc ≥ bound; "max": telerad/Orthanc ≤ bound; "abs_max": telerad ≤ bound;
    # None: reported only.
    kind: str | None = None
    bound: float | None = None
    digits: int = 1

    def target_text(self) -> str:
        if self.kind == "min":
            return f"≥ {self.bound:g}× Orthanc"
        if self.kind == "max":
            return f"≤ {self.bound:g}× Orthanc"
        if self.kind == "abs_max":
            return f"≤ {self.bound:g} {self.unit}"
        return ""


MEASURES = [
    Measure("cstore_ct", "C-STORE CT 512×512 (1 association)", "inst/s", "min", 1.5),
    Measure("cstore_tiny", "C-STORE tiny 8×8 (1 association)", "inst/s", "min", 1.0),
    Measure("stow_ct", "STOW-RS CT (batches of 10)", "inst/s", "min", 1.5),
    Measure("load_studies", "load the QIDO study set (3 in parallel)", "s", digits=1),
    Measure("qido_pid", "QIDO /studies?PatientID=exact", "ms median", "max", 0.25, 2),
    Measure("qido_name", "QIDO /studies?PatientName=prefix*", "ms median", "max", 0.25, 2),
    Measure("qido_date", "QIDO /studies?StudyDate=range&limit=100", "ms median", "max", 0.25, 2),
    Measure("wado_metadata", "WADO-RS CT series metadata", "ms median", "max", 0.5, 1),
    Measure("wado_frames", "WADO-RS frames/1 (native)", "ms median", "max", 1.0, 2),
    Measure("wado_frames_gzip", "WADO-RS frames/1, Accept-Encoding gzip", "ms median", digits=2),
    Measure("qido_as_admin", "QIDO PatientID as a network admin (token)", "ms median", digits=2),
    Measure("qido_as_user", "QIDO PatientID as a facility user (token)", "ms median", digits=2),
    Measure(
        "qido_auth_overhead", "authorisation: facility user / network admin", "×", "abs_max", 1.1, 3
    ),
    Measure("rss_ct_ingest", "server RSS, max during CT ingest", "MB", "abs_max", 500, 0),
]
BY_KEY = {m.key: m for m in MEASURES}


@dataclass
class Results:
    values: dict[str, dict[str, Value]] = field(default_factory=dict)
    details: dict[str, dict[str, Any]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def set(self, key: str, server: str, value: Value, **detail: Any) -> None:
        self.values.setdefault(key, {})[server] = value
        if detail:
            self.details.setdefault(key, {})[server] = detail

    def ratio(self, key: str) -> float | None:
        row = self.values.get(key, {})
        t, o = row.get("telerad"), row.get("Orthanc")
        if isinstance(t, float) and isinstance(o, float) and o > 0:
            return t / o
        return None

    def verdict(self, m: Measure) -> str | None:
        """'pass' / 'fail' / None when there is nothing to judge."""
        if m.kind is None or m.bound is None:
            return None
        if m.kind == "abs_max":
            t = self.values.get(m.key, {}).get("telerad")
            return None if not isinstance(t, float) else ("pass" if t <= m.bound else "fail")
        r = self.ratio(m.key)
        if r is None:
            return None
        ok = r >= m.bound if m.kind == "min" else r <= m.bound
        return "pass" if ok else "fail"

    def table(self, title: str) -> Table:
        table = Table(title=title, show_lines=False)
        table.add_column("measure")
        table.add_column("unit")
        for s in SERVERS:
            table.add_column(s, justify="right")
        table.add_column("telerad/Orthanc", justify="right")
        table.add_column("target")
        table.add_column("result")
        for m in MEASURES:
            row = self.values.get(m.key)
            if row is None:
                continue
            cells = [_cell(row.get(s), m.digits) for s in SERVERS]
            r = self.ratio(m.key)
            verdict = self.verdict(m)
            shown = {"pass": "[green]PASS[/]", "fail": "[red]FAIL[/]", None: ""}[verdict]
            if verdict is None and m.kind is not None:
                shown = "[yellow]n/a[/]"
            table.add_row(
                m.label, m.unit, *cells, "" if r is None else f"{r:.2f}×", m.target_text(), shown
            )
        return table

    def as_json(self, meta: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {"meta": meta, "measures": {}, "notes": self.notes}
        for m in MEASURES:
            if m.key not in self.values:
                continue
            out["measures"][m.key] = {
                "label": m.label,
                "unit": m.unit,
                "values": self.values[m.key],
                "details": self.details.get(m.key, {}),
                "ratio_telerad_orthanc": self.ratio(m.key),
                "target": m.target_text() or None,
                "result": self.verdict(m),
            }
        return out

    def write_json(self, path: Path, meta: dict[str, Any]) -> None:
        path.write_text(json.dumps(self.as_json(meta), indent=2) + "\n")


def _cell(value: Value | None, digits: int) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    return f"[yellow]{value[:40]}[/]"


def _first_line(argv: list[str]) -> str:
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return "not installed"
    text = (out.stdout or out.stderr).strip()
    return text.splitlines()[0] if text else "unknown"


def _dpkg_version(package: str) -> str:
    return _first_line(["dpkg-query", "-W", "-f", "${Version}", package])


def environment() -> dict[str, Any]:
    """Machine and versions, for the record (printed and written to JSON)."""
    from telerad import __version__

    commit = _first_line(
        ["git", "-C", str(Path(__file__).resolve().parents[1]), "rev-parse", "--short", "HEAD"]
    )
    dcmtk = re.sub(r"^\$dcmtk: |\s*\$$", "", _first_line(["storescu", "--version"]))
    return {
        "cpus": os.cpu_count(),
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "python": platform.python_version(),
        "telerad": f"{__version__} ({commit})",
        "orthanc": _dpkg_version("orthanc"),
        "orthanc_dicomweb": _dpkg_version("orthanc-dicomweb"),
        "dcmtk": dcmtk,
    }


def markdown(figures: dict[str, Any]) -> str:
    """The table of a ``--json`` file as Markdown (for docs/benchmarks.md)."""
    head = "| measure | unit | " + " | ".join(SERVERS) + " | telerad/Orthanc | target | result |"
    lines = [head, "|" + "---|" * (len(SERVERS) + 5)]
    for m in MEASURES:
        row = figures["measures"].get(m.key)
        if row is None:
            continue
        cells = []
        for s in SERVERS:
            v = row["values"].get(s)
            cells.append("" if v is None else f"{v:,.{m.digits}f}" if isinstance(v, float) else v)
        ratio = row["ratio_telerad_orthanc"]
        result = {"pass": "PASS", "fail": "**FAIL**", None: ""}[row["result"]]
        lines.append(
            f"| {m.label} | {m.unit} | "
            + " | ".join(cells)
            + f" | {'' if ratio is None else f'{ratio:.2f}×'} | {row['target'] or ''} | {result} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    import sys

    print(markdown(json.loads(Path(sys.argv[1]).read_text())))
