"""The pynetdicom installed is the one the DIMSE adapter's overrides were written for."""

from __future__ import annotations

import hashlib
import importlib
import inspect
import re
import tomllib
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pytest

from telerad.adapters.dimse.gate import GatedACSE
from telerad.adapters.dimse.tuned_ae import TunedAE
from telerad.adapters.dimse.tuned_association import TunedAssociation
from telerad.adapters.dimse.tuned_dimse import FastDIMSE
from telerad.adapters.dimse.tuned_dul import TunedDUL
from telerad.adapters.dimse.tuned_transport import (
    TunedAssociationServer,
    TunedRequestHandler,
    TunedSocket,
)
from telerad.adapters.dimse.upstream import OVERRIDDEN, PYNETDICOM_VERSION

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = "telerad.adapters.dimse"
BEFORE_BUMPING = (
    "before changing the pinned version, re-read every pynetdicom method listed in "
    "src/telerad/adapters/dimse/upstream.py against its override there, carry over "
    "what changed, then update PYNETDICOM_VERSION, the pin in pyproject.toml and the "
    "fingerprints"
)
#: telerad's subclasses of pynetdicom's classes.
TUNED = (
    TunedSocket,
    TunedAssociationServer,
    TunedRequestHandler,
    TunedDUL,
    FastDIMSE,
    TunedAssociation,
    TunedAE,
    GatedACSE,
)


def _fingerprint(name: str) -> str:
    module, cls, method = name.rsplit(".", 2)
    function = getattr(getattr(importlib.import_module(module), cls), method)
    return hashlib.sha256(inspect.getsource(function).encode()).hexdigest()[:16]


def test_the_installed_pynetdicom_is_the_one_the_overrides_were_written_for() -> None:
    installed = version("pynetdicom")
    assert installed == PYNETDICOM_VERSION, (
        f"pynetdicom {installed} is installed, but telerad's overrides of it were "
        f"written for {PYNETDICOM_VERSION}: {BEFORE_BUMPING}"
    )


def test_pyproject_pins_exactly_that_version() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pins = [d for d in project["dependencies"] if re.match(r"pynetdicom\b", d)]
    assert pins == [f"pynetdicom=={PYNETDICOM_VERSION}"], (
        f"pyproject.toml has {pins}, upstream.py says {PYNETDICOM_VERSION}: {BEFORE_BUMPING}"
    )


@pytest.mark.parametrize("name", sorted(OVERRIDDEN))
def test_an_overridden_method_is_the_source_it_was_written_against(name: str) -> None:
    place, expected = OVERRIDDEN[name]
    found = _fingerprint(name)
    assert found == expected, (
        f"pynetdicom's {name} is not the source telerad's {PACKAGE}.{place} was "
        f"written against (fingerprint {found}, expected {expected}): re-read it "
        f"against that override, carry over what changed, then update its "
        f"fingerprint in upstream.py"
    )


def _upstream_definer(cls: type, name: str) -> type | None:
    """The pynetdicom class whose ``name`` a method of ``cls`` overrides, if any."""
    for base in cls.__mro__[1:]:
        if name in vars(base):
            return base if base.__module__.startswith("pynetdicom") else None
    return None


def test_every_override_of_pynetdicom_is_fingerprinted() -> None:
    missing = []
    for cls in TUNED:
        for name, value in vars(cls).items():
            if not inspect.isfunction(value):
                continue
            base = _upstream_definer(cls, name)
            if base is not None:
                key = f"{base.__module__}.{base.__qualname__}.{name}"
                if key not in OVERRIDDEN:
                    missing.append(f"{key} (overridden by {cls.__qualname__})")
    assert not missing, f"add to upstream.OVERRIDDEN: {missing}"


def _resolve(place: str) -> list[Any]:
    """The overrides a place names: ``module.Class.method[, method…]``."""
    first, *more = (part.strip() for part in place.split(","))
    module, cls_name, method = first.rsplit(".", 2)
    cls = getattr(importlib.import_module(f"{PACKAGE}.{module}"), cls_name)
    return [vars(cls)[m] for m in (method, *more)]


@pytest.mark.parametrize("name", sorted(OVERRIDDEN))
def test_the_named_override_exists(name: str) -> None:
    place, _ = OVERRIDDEN[name]
    assert all(inspect.isfunction(f) for f in _resolve(place)), place
