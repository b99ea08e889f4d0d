"""OHIF viewer mount (placeholder)."""

from __future__ import annotations

from fastapi import FastAPI

from telerad.bootstrap import Platform


def mount(app: FastAPI, platform: Platform) -> None:
    return None
