"""``telerad template``: import (MRRT, TOML, JSON; refusals exit 1 naming the element),
list (shipped and imported) and show, over an embedded platform."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from telerad.bootstrap import open_platform
from telerad.cli.common import console, err
from telerad.cli.main import app
from telerad.config import Settings
from telerad.domain.audit import EventID
from telerad.domain.template_codec import to_dict

SAMPLES = Path(__file__).parent.parent / "data" / "templates"

LUNG = """
[template]
id = "ct-lung-screening"
title = "LDCT lung screening (network)"
version = "2022.2"
modalities = ["CT"]
min_age = 50
max_age = 77
procedure_codes = ["71271"]

[[section]]
id = "findings"
title = "Findings"

[[section.field]]
id = "size"
label = "Nodule size"
type = "{kind}"
unit = "mm"

[[section]]
id = "impression"
title = "Impression"
"""


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "data"
    monkeypatch.setenv("TELERAD_DATA_DIR", str(path))
    monkeypatch.setenv("TELERAD_FSYNC", "false")
    monkeypatch.delenv("TELERAD_DATABASE_URL", raising=False)
    monkeypatch.setenv("COLUMNS", "250")
    # The CLI's consoles were made when it was first imported (by any test of this
    # worker): they are told the width here, so tables do not wrap their cells.
    for shown in (console, err):
        monkeypatch.setattr(shown, "_width", 250)
    return path


def _run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.output


def test_import_list_and_show(data_dir: Path, tmp_path: Path) -> None:
    code, out = _run("template", "list")
    assert code == 0, out
    assert "ct-head" in out and "mg-breast" in out and "MG (F)" in out
    assert "CT ages 50-80" in out and "any (fallback)" in out and "imported" not in out

    code, out = _run("template", "import", str(SAMPLES / "ct-head-clean.html"))
    assert code == 0, out
    assert "imported tlr-cthead-1 version 3 (CT Head Without Contrast): 4 sections" in out
    assert "procedure 70450 was ct-head's" in out

    lung = tmp_path / "lung.toml"
    lung.write_text(LUNG.format(kind="number"))
    code, out = _run("template", "import", str(lung))
    assert code == 0, out
    assert "replacing the shipped version 1" in out
    code, out = _run("template", "import", str(lung))
    assert code == 0 and "already imported: nothing changed" in out

    code, out = _run("template", "list")
    assert code == 0, out
    line = next(row for row in out.splitlines() if "ct-lung-screening" in row)
    assert "2022.2" in line and "imported by cli:" in line and "(replaces shipped 1)" in line
    assert "ages 50-77" in line

    code, out = _run("template", "show", "ct-lung-screening")
    assert code == 0, out
    assert "Findings" in out and "Nodule size number mm" in out
    code, out = _run("template", "show", "no-such")
    assert code == 1 and "no template 'no-such'" in out

    with open_platform(Settings(data_dir=data_dir, fsync=False)) as platform:
        stored = platform.templates.store.get("ct-lung-screening")
        assert stored is not None and stored.source == LUNG.format(kind="number")
        assert platform.templates.choose("71271", "CT", "M", 60).template.version == "2022.2"
        imports = [r for r in platform.audit.repository.records() if r.event_id == "110107"]
        assert len(imports) == 2 and EventID.IMPORT.code == "110107"


def test_refusals_exit_1_naming_the_element(data_dir: Path, tmp_path: Path) -> None:
    code, out = _run("template", "import", str(SAMPLES / "broken-empty-select.html"))
    assert code == 1
    assert 'broken-empty-select.html: <select id="fracture" name="fracture"> at line 7' in out
    assert "has no <option>" in out
    slider = tmp_path / "lung.toml"
    slider.write_text(LUNG.format(kind="slider"))
    code, out = _run("template", "import", str(slider))
    assert code == 1
    assert "lung.toml: section 'findings', field 'size': unknown type 'slider'" in out
    bad = tmp_path / "form.toml"
    bad.write_text("[template\n")
    code, out = _run("template", "import", str(bad))
    assert code == 1 and "form.toml: not valid TOML" in out
    code, out = _run("template", "import", str(tmp_path / "nothing.toml"))
    assert code == 1 and "nothing.toml: no such file" in out


def test_the_format_may_be_given_and_json_is_the_same_form(data_dir: Path, tmp_path: Path) -> None:
    with open_platform(Settings(data_dir=data_dir, fsync=False)) as platform:
        shipped = platform.templates.get("us-abdomen")
        assert shipped is not None
    data = to_dict(shipped)
    data["template"]["version"] = "2"
    data["template"]["title"] = "US abdomen (ours)"
    path = tmp_path / "us-abdomen.txt"
    path.write_text(json.dumps(data))
    code, out = _run("template", "import", str(path))
    assert code == 1 and "no template format for this extension" in out
    code, out = _run("template", "import", str(path), "--format", "json")
    assert code == 0, out
    assert "imported us-abdomen version 2 (US abdomen (ours))" in out
