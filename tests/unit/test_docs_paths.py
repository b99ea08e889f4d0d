"""Every module, file and page the README and docs/ name exists, so they cannot go stale
when code moves: paths in backticks (`services/reading.py`, `src/telerad/...`,
`tests/...`), dotted names in backticks (`telerad.storage.db.audit_repository`) and
relative Markdown links."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "src" / "telerad"
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
#: Top-level folders of the repository that docs name from the root.
REPO_ROOTS = ("src", "tests", "bench", "docs")

_CODE = re.compile(r"`([^`\n]+)`")
_PATH = re.compile(r"[\w.\-/]+")
_DOTTED = re.compile(r"\btelerad(?:\.[A-Za-z_]\w*)+")
_LINK = re.compile(r"\]\(([^)\s]+)\)")


def _package_folders() -> set[str]:
    return {p.name for p in PACKAGE.iterdir() if p.is_dir() and not p.name.startswith("_")}


def _named_paths(text: str) -> set[str]:
    """Repository paths named in backticks: from the root, from ``telerad/`` or from
    the package (``services/reading.py``); bare file names are left alone."""
    folders = _package_folders()
    found = set()
    for span in _CODE.findall(text):
        for token in _PATH.findall(span):
            first = token.split("/", 1)[0]
            if "/" in token and (first in REPO_ROOTS or first == "telerad" or first in folders):
                found.add(token.rstrip("."))
    return found


def _where(path: str) -> Path:
    first = path.split("/", 1)[0]
    if first in REPO_ROOTS:
        return ROOT / path
    if first == "telerad":
        return ROOT / "src" / path
    return PACKAGE / path


def _dotted_names(text: str) -> set[str]:
    return {name for span in _CODE.findall(text) for name in _DOTTED.findall(span)}


def _resolves(dotted: str) -> bool:
    """A module, or an attribute of the longest module prefix that exists."""
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj: object = importlib.import_module(".".join(parts[:cut]))
        except ModuleNotFoundError:
            continue
        for attribute in parts[cut:]:
            if not hasattr(obj, attribute):
                return False
            obj = getattr(obj, attribute)
        return True
    return False


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_every_path_named_exists(doc: Path) -> None:
    missing = sorted(p for p in _named_paths(doc.read_text()) if not _where(p).exists())
    assert not missing, f"{doc.name} names paths that do not exist: {missing}"


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_every_module_named_exists(doc: Path) -> None:
    missing = sorted(n for n in _dotted_names(doc.read_text()) if not _resolves(n))
    assert not missing, f"{doc.name} names modules or attributes that do not exist: {missing}"


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_every_relative_link_leads_somewhere(doc: Path) -> None:
    missing = []
    for target in _LINK.findall(doc.read_text()):
        if re.match(r"[a-z][a-z0-9+.-]*:", target) or target.startswith("#"):
            continue  # a URL, or an anchor in the same page
        path = target.split("#", 1)[0]
        if not (doc.parent / path).exists():
            missing.append(target)
    assert not missing, f"{doc.name} links to files that do not exist: {missing}"


def test_the_scan_sees_what_the_docs_name() -> None:
    """The patterns find the kinds of names the docs use (a guard against a scan that
    silently matches nothing)."""
    text = (
        "`services/reading.py`, `src/telerad/config.py`, `telerad/bootstrap.py`, "
        "`tests/unit/` and `mllp.py`; `/dicom-web/studies`, `<data>/incoming/`; "
        "`telerad.storage.db.audit_repository` (`SqlIndex`)"
    )
    assert _named_paths(text) == {
        "services/reading.py",
        "src/telerad/config.py",
        "telerad/bootstrap.py",
        "tests/unit/",
    }
    assert _dotted_names(text) == {"telerad.storage.db.audit_repository"}
    assert _resolves("telerad.storage.db.audit_repository")
    assert not _resolves("telerad.workflow.engine")
    assert not _where("storage/db/repository.py").exists()
    assert all(_where(p).exists() for p in _named_paths(text))
