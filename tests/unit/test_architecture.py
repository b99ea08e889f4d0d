"""The house rule: domain and workflow import nothing from adapters, storage, web or frameworks."""

from pathlib import Path

import pytest
from importlinter.cli import lint_imports

ROOT = Path(__file__).resolve().parents[2]


def test_import_contracts_hold(capsys: pytest.CaptureFixture[str]) -> None:
    # In this process (grimp reads the sources; no cache written), as `lint-imports` runs them.
    code = lint_imports(config_filename=str(ROOT / "pyproject.toml"), no_cache=True)
    out = capsys.readouterr()
    assert code == 0, out.out + out.err
    assert "KEPT" in out.out
