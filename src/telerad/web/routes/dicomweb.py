"""DICOMweb routes (placeholder until the DICOMweb adapter lands)."""

from __future__ import annotations

from fastapi import APIRouter

from telerad.bootstrap import Platform


def router(platform: Platform) -> APIRouter:
    return APIRouter(prefix="/dicom-web")
