"""Study list page (placeholder)."""

from __future__ import annotations

from fastapi import APIRouter

from telerad.bootstrap import Platform


def router(platform: Platform) -> APIRouter:
    return APIRouter()
