"""DIMSE listener (placeholder until the DIMSE adapter lands)."""

from __future__ import annotations

from telerad.bootstrap import Platform


def start_dimse_server(platform: Platform) -> object:
    raise NotImplementedError("DIMSE adapter not written yet")
