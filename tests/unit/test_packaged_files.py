"""Every file pyproject.toml ships as package data is in the tree."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_every_package_data_pattern_matches_a_file() -> None:
    setuptools = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    (where,) = setuptools["packages"]["find"]["where"]
    missing = [
        f"{package}: {pattern}"
        for package, patterns in setuptools.get("package-data", {}).items()
        for pattern in patterns
        if not any(p.is_file() for p in (ROOT / where / package).glob(pattern))
    ]
    assert not missing, f"package-data names files that are not in the tree: {missing}"
