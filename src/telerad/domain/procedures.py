"""The procedure catalogue: modality, body part, RVU and subspecialty of a procedure code.

Orders name a procedure by code (OBR-4, ServiceRequest.code); what the router
needs to know about it — RVU for workload, subspecialty for competence — comes
from this catalogue, which is data (a TOML file per reading network). A code the
catalogue does not know keeps what the order said and takes its modality's RVU.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, replace
from importlib import resources
from pathlib import Path
from typing import Any

from telerad.domain.orders import OrderError, Procedure

DEFAULT_RVU = 1.0
_FIELDS = {"scheme", "description", "modality", "body_part", "rvu", "subspecialty"}


@dataclass(frozen=True)
class Catalogue:
    procedures: Mapping[str, Procedure]
    modality_rvu: Mapping[str, float]

    def resolve(
        self, code: str, description: str = "", scheme: str = "", modality: str = ""
    ) -> Procedure:
        """The procedure for ``code``: the catalogue's entry, else what the order said."""
        known = self.procedures.get(code.strip())
        if known is not None:
            # The order's own words win for display; the catalogue for routing facts.
            return replace(
                known,
                description=description or known.description,
                modality=known.modality or modality.upper(),
            )
        modality = modality.strip().upper()
        return Procedure(
            code=code.strip(),
            description=description,
            coding_scheme=scheme,
            modality=modality,
            rvu=self.modality_rvu.get(modality, DEFAULT_RVU),
        )


def parse_catalogue(data: Mapping[str, Any], name: str = "catalogue") -> Catalogue:
    """A catalogue from parsed TOML; errors name the entry and the field."""
    procedures: dict[str, Procedure] = {}
    for code, entry in dict(data.get("procedure", {})).items():
        where = f"{name}: procedure {code!r}"
        if not isinstance(entry, Mapping):
            raise OrderError(f"{where} must be a table")
        unknown = set(entry) - _FIELDS
        if unknown:
            raise OrderError(f"{where}: unknown field(s) {', '.join(sorted(unknown))}")
        rvu = entry.get("rvu", DEFAULT_RVU)
        if not isinstance(rvu, int | float) or isinstance(rvu, bool) or rvu < 0:
            raise OrderError(f"{where}: rvu must be a number ≥ 0, got {rvu!r}")
        procedures[code] = Procedure(
            code=code,
            description=str(entry.get("description", "")),
            coding_scheme=str(entry.get("scheme", "")),
            modality=str(entry.get("modality", "")).upper(),
            body_part=str(entry.get("body_part", "")).upper(),
            rvu=float(rvu),
            subspecialty=str(entry.get("subspecialty", "")),
        )
    modality_rvu: dict[str, float] = {}
    for modality, rvu in dict(data.get("modality_rvu", {})).items():
        if not isinstance(rvu, int | float) or isinstance(rvu, bool) or rvu < 0:
            raise OrderError(f"{name}: modality_rvu.{modality} must be a number ≥ 0")
        modality_rvu[modality.upper()] = float(rvu)
    return Catalogue(procedures, modality_rvu)


def load_catalogue(path: Path | None = None) -> Catalogue:
    """The catalogue in ``path``, or the default one shipped with the platform."""
    if path is None:
        raw = resources.files("telerad.domain").joinpath("default_procedures.toml").read_bytes()
        name = "default_procedures.toml"
    else:
        raw, name = path.read_bytes(), path.name
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise OrderError(f"{name}: not valid TOML: {exc}") from exc
    return parse_catalogue(data, name)
